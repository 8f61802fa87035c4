"""The crew file hot-reloads: an edit reaches the running crew, as far as a running crew can
take it.

What can change is decided in one place (`crew_diff`), as a readable diff and the crew as
updated, and what changed is logged (`crew_updated`, with that crew) before it applies, so the
live view, replay and resume all run the same crew. An agent that has started is never
changed under its feet: its conversation was built from its settings, so an edit to it is
reported as ignored. An edit that does not validate is logged as `crew_rejected` and the crew
goes on unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cockpit.core.commands import CommandError
from cockpit.core.config import (
    AgentConfig,
    ConfigError,
    CrewConfig,
    crew_problems,
    parse_crew,
    read_crew_text,
)
from cockpit.core.text import one_line

if TYPE_CHECKING:
    from watchfiles import Change

    from cockpit.core.supervisor import Supervisor

Batch = set[tuple["Change", str]]

VALUE_WIDTH = 40
"""Characters of an old or new value a diff line shows."""
CONTEXT = 10
"""Characters kept before the first difference of two long strings, so the excerpt shows the
change rather than the start both share."""
KEPT = ("a running crew keeps its agents' names, its tool servers and its crew-wide settings; "
        "restart the session for those")
"""The hint added to an edit that only fails because of what the running crew kept."""


@dataclass(frozen=True)
class Diff:
    """What an edit of the crew file does to the running crew."""

    crew: CrewConfig
    """The crew as updated: the edit's changes that apply, the rest as it was. Agents keep
    their order; new ones come last, in file order."""
    lines: list[str] = field(default_factory=list)
    """One readable line per change, `+` added, `~` changed, `!` ignored."""
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """Agents not yet started whose settings change."""

    @property
    def ignored(self) -> list[str]:
        return [line for line in self.lines if line.startswith("!")]

    def __bool__(self) -> bool:
        return bool(self.lines)


def crew_diff(old: CrewConfig, new: CrewConfig, started: Collection[str]) -> Diff:
    """Compare the running crew `old` with the edited file `new`. Agents in `started` (started
    or ended) are kept as they are; a removed or renamed agent is kept too (the log, the board
    and its dependents know it by name); crew-wide settings and `[[mcp]]` servers stay."""
    lines: list[str] = []
    added: list[str] = []
    changed: list[str] = []
    edited = {agent.name: agent for agent in new.agents}
    known = {agent.name for agent in old.agents}
    missing = [agent for agent in old.agents if agent.name not in edited]
    fresh = [agent for agent in new.agents if agent.name not in known]
    renamed = _renames(old, new, missing, fresh)
    agents: list[AgentConfig] = []
    for agent in old.agents:
        name = agent.name
        if name not in edited:
            if name in renamed:
                lines.append(f"! agent {name} renamed to {renamed[name]} ignored: agents keep "
                             "their names while the crew runs")
            else:
                lines.append(f"! agent {name} removed ignored: a running crew keeps its agents")
            agents.append(agent)
            continue
        fields = _changed_fields(agent, edited[name])
        if fields and name in started:
            lines += [f"! {name}.{key} ignored: {name} has started" for key in fields]
        elif fields:
            lines += [f"~ {name}.{key}: {_change(getattr(agent, key), getattr(edited[name], key))}"
                      for key in fields]
            changed.append(name)
            agents.append(edited[name])
            continue
        agents.append(agent)
    for agent in fresh:
        if agent.name in renamed.values():
            continue
        after = f" (after {', '.join(agent.after)})" if agent.after else ""
        lines.append(f"+ agent {agent.name}{after}")
        added.append(agent.name)
        agents.append(agent)
    for key in CrewConfig.model_fields:
        if key not in ("agents", "mcp") and getattr(old, key) != getattr(new, key):
            lines.append(f"! {key} ignored: crew-wide settings stay while the crew runs")
    mcp = _mcp_change(old, new)
    if mcp:
        lines.append(f"! mcp ignored ({mcp}): tool servers stay while the crew runs")
    crew = old.model_copy(update={"agents": agents}) if added or changed else old
    return Diff(crew, lines, added, changed)


def check_update(diff: Diff, new: CrewConfig, path: Path | str,
                 source: str = "") -> ConfigError | None:
    """The problems of the crew as updated that the file alone does not have (a dependency on
    a renamed agent the crew kept under its old name, a tool of a server it does not run), or
    None. `source`, the file's text, gives their lines."""
    index = {agent.name: i for i, agent in enumerate(new.agents)}
    problems = crew_problems(diff.crew, source,
                             [index.get(agent.name) for agent in diff.crew.agents])
    if not problems:
        return None
    return ConfigError(path, [*problems, (None, "", KEPT)] if diff.ignored else problems)


def _renames(old: CrewConfig, new: CrewConfig, missing: list[AgentConfig],
             fresh: list[AgentConfig]) -> dict[str, str]:
    """Old name -> new name, for the agents that look renamed rather than removed: the same
    settings under another name, else another name in the same place of the file."""
    renamed: dict[str, str] = {}
    taken: set[str] = set()
    for agent in missing:
        same = next((other for other in fresh if other.name not in taken
                     and _settings(other) == _settings(agent)), None)
        if same is not None:
            renamed[agent.name] = same.name
            taken.add(same.name)
    names = [agent.name for agent in new.agents]
    for position, agent in enumerate(old.agents):
        if agent in missing and agent.name not in renamed and position < len(names):
            other = names[position]
            if other not in taken and any(f.name == other for f in fresh):
                renamed[agent.name] = other
                taken.add(other)
    return renamed


def _settings(agent: AgentConfig) -> dict[str, Any]:
    return agent.model_dump(exclude={"name"})


def _changed_fields(old: AgentConfig, new: AgentConfig) -> list[str]:
    return [key for key in AgentConfig.model_fields if getattr(old, key) != getattr(new, key)]


def _change(old: Any, new: Any) -> str:
    """`"Write the notes…" → "Write short notes…"`: the two values on one line, long strings
    from shortly before where they first differ."""
    if isinstance(old, str) and isinstance(new, str):
        start = 0
        while start < min(len(old), len(new)) and old[start] == new[start]:
            start += 1
        start = max(0, start - CONTEXT) if start > CONTEXT * 2 else 0
        return f"{_excerpt(old, start)} → {_excerpt(new, start)}"
    return f"{_value(old)} → {_value(new)}"


def _excerpt(text: str, start: int) -> str:
    lead = "…" if start else ""
    return json.dumps(lead + one_line(text[start:], VALUE_WIDTH), ensure_ascii=False)


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, str):
        return _excerpt(value, 0)
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_defaults=True)
    return one_line(json.dumps(value, ensure_ascii=False, sort_keys=True), VALUE_WIDTH * 3 // 2)


def _mcp_change(old: CrewConfig, new: CrewConfig) -> str:
    """`added web; changed files`, or "" when the servers are the same (order aside)."""
    before = {server.name: server for server in old.mcp}
    after = {server.name: server for server in new.mcp}
    parts = []
    for verb, names in (("added", [n for n in after if n not in before]),
                        ("removed", [n for n in before if n not in after]),
                        ("changed", [n for n in after if n in before and after[n] != before[n]])):
        if names:
            parts.append(f"{verb} {', '.join(names)}")
    return "; ".join(parts)


async def reload_crew(path: Path | str, supervisor: Supervisor) -> None:
    """Read the crew file once and hand it to the supervisor: `crew_updated` if it changes
    the crew, `crew_rejected` if it does not validate, nothing if it changes nothing. A file
    that is not there is not an edit (an editor may be between deleting and writing it)."""
    path = Path(path)
    try:
        text = read_crew_text(path)
        new = parse_crew(text, path)
    except ConfigError as error:
        if path.exists():
            await supervisor.reject_crew(error, path=path)
        return
    # ConfigError: logged as crew_rejected by update_crew; CommandError: not started yet
    with contextlib.suppress(ConfigError, CommandError):
        await supervisor.update_crew(new, path=path, source=text)


async def watch_crew(path: Path, supervisor: Supervisor, *, stop: asyncio.Event | None = None,
                     debounce_ms: int = 50, ready: asyncio.Event | None = None) -> None:
    """Reload the crew file each time it is written, until `stop` is set (or the task is
    cancelled). Start it once the session has started.

    The file's directory is watched, filtered to the file: editors and atomic writers replace a
    file by renaming another over it, which a watch on the file itself stops seeing after the
    first time (REFERENCE.md E). Writes within `debounce_ms` of each other are read once. The
    file is read once the watch is in place, so an edit made before then is not lost; `ready`
    is set after that read.
    """
    if stop is not None and stop.is_set():
        return
    path = Path(path).absolute()
    name = path.name

    def ours(change: Change, changed: str) -> bool:
        return Path(changed).name == name

    batches = _awatch(path.parent, ours, debounce_ms, stop)
    async with contextlib.aclosing(batches):
        waiting = asyncio.ensure_future(anext(batches))
        try:
            # The watch is in place once `waiting` has taken its first step, which the loop
            # runs before this task's next one.
            await asyncio.sleep(0)
            await reload_crew(path, supervisor)
            if ready is not None:
                ready.set()
            while True:
                try:
                    await waiting
                except StopAsyncIteration:
                    return
                waiting = asyncio.ensure_future(anext(batches))
                await reload_crew(path, supervisor)
        finally:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)


def _awatch(directory: Path, keep: Callable[[Change, str], bool], step_ms: int,
            stop: asyncio.Event | None) -> AsyncGenerator[Batch, None]:
    """`watchfiles.awatch` on one directory (not its subdirectories). Its `step`, not its
    `debounce`, is the latency: changes are yielded once none came for `step` ms."""
    from watchfiles import awatch

    return awatch(directory, watch_filter=keep, step=step_ms, stop_event=stop,
                  recursive=False)
