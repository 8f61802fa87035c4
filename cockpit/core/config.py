"""Crew file (TOML) -> validated pydantic models.

Everything that can be wrong with a crew is found here, before a single request is sent: a crew
started at 11 PM must not fail at 3 AM because of a typo. Every error names the file, a line and
the field, so the user can go straight to it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cockpit.core.spec import (
    DEFAULT_CHECK_RETRIES,
    DEFAULT_MAX_TURNS,
    DEFAULT_MAX_WAKEUPS,
    AgentSpec,
    Checks,
    Format,
    McpServer,
    check_schema,
    mcp_server_of,
    valid_tool_ref,
)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_HOST_WAIT = 600.0
"""Ten minutes: an Ollama restart or update takes seconds, and a model reload after a GPU
out-of-memory restart is bounded by Ollama's own OLLAMA_LOAD_TIMEOUT of five minutes; twice
that leaves a margin without letting a crew sit all night on a machine that is gone."""
EMBEDDED_HOST = "embedded"
TEMPLATE_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
AGENT_NAME_RE = re.compile(r"^[a-z0-9_-]+$")

# Ollama's Options and Runner fields (api/types.go). Ollama ignores unknown keys silently, so a
# misspelt option would otherwise have no effect at all; we reject it instead.
OLLAMA_OPTIONS: dict[str, type | tuple[type, ...]] = {
    **dict.fromkeys(
        ["num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx", "num_batch",
         "num_gpu", "main_gpu", "num_thread", "draft_num_predict"],
        int,
    ),
    **dict.fromkeys(
        ["top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty",
         "frequency_penalty"],
        (int, float),
    ),
    "use_mmap": bool,
    "stop": list,
}


_NORMAL_HOST = re.compile(r"https?://[a-z0-9.-]+:[0-9]{1,5}")
"""What `_parse_host` returns for a plain host (and returns unchanged when given): a viewer
reading a logged crew then skips importing the ollama client, 0.3 s of its start-up."""


def parse_host(host: str | None) -> str:
    """Normalise a host the way ollama-python's `_parse_host` does.

    `None`/"" -> http://127.0.0.1:11434, "1.2.3.4" -> http://1.2.3.4:11434, ":5" -> port 5 on
    127.0.0.1, "http://x" -> port 80, "https://x" -> port 443. A path is kept.
    """
    if host == EMBEDDED_HOST or (host is not None and _NORMAL_HOST.fullmatch(host)):
        return host  # already in the client's form (a logged crew): no need to import it
    from ollama._client import _parse_host  # the client's own rules, so we agree with it

    return str(_parse_host(host))


def _host_pool(hosts: list[str]) -> list[str]:
    pool = [parse_host(host) for host in hosts]
    if len(set(pool)) != len(pool):
        raise ValueError("the same host is listed twice")
    if EMBEDDED_HOST in pool and len(pool) > 1:
        raise ValueError('"embedded" cannot be part of a pool')
    return pool


def default_host() -> str:
    """OLLAMA_HOST if set, else Ollama's default address."""
    env = os.environ.get("OLLAMA_HOST", "").strip()
    return parse_host(env) if env else DEFAULT_HOST


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Strict):
    """One `[[agents]]` table."""

    name: str
    """Unique within the crew; lowercase letters, digits, `_` and `-`."""
    model: str | None = None
    """Overrides the crew's model."""
    host: str | None = None
    """Overrides the crew's host."""
    hosts: list[str] | None = Field(default=None, min_length=1)
    """A pool of hosts for this agent; overrides the crew's host or hosts."""
    host_wait: float | None = Field(default=None, ge=0)
    """Overrides the crew's host_wait."""
    system: str = ""
    """System prompt; may use `{{key}}` to read the board."""
    task: str
    """The user message that starts the agent; may use `{{key}}`."""
    after: list[str] = Field(default_factory=list)
    """Agents that must finish before this one starts."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Ollama options (temperature, seed, num_predict, ...)."""
    retries: int | None = Field(default=None, ge=0)
    """Overrides the crew's retries."""
    stall_timeout: float | None = Field(default=None, gt=0)
    """Overrides the crew's stall_timeout."""
    tools: list[str] = Field(default_factory=list)
    """Tools the agent may call: "board", "messages", "mcp:NAME" (all of a server's tools) or
    "NAME.TOOL" (one of them)."""
    approve: list[str] | None = None
    """Overrides the crew's approve patterns."""
    approval_timeout: float | None = Field(default=None, gt=0)
    """Overrides the crew's approval_timeout."""
    max_turns: int | None = Field(default=None, ge=1)
    """Overrides the crew's max_turns."""
    max_wakeups: int | None = Field(default=None, ge=0)
    """Overrides the crew's max_wakeups."""
    format: Format | None = None
    """Ollama's structured output: "json", or a JSON schema the answer must match."""
    checks: Checks | None = None
    """What the final answer must satisfy (see `Checks`)."""
    check_retries: int | None = Field(default=None, ge=0)
    """Overrides the crew's check_retries."""

    @field_validator("tools")
    @classmethod
    def _tool_refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            if not valid_tool_ref(ref):
                raise ValueError(f"unknown tool {ref!r}: use \"board\", \"messages\", "
                                 "\"mcp:NAME\" or \"NAME.TOOL\"")
        if len(set(value)) != len(value):
            raise ValueError("a tool is listed twice")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: Format | None) -> Format | None:
        if isinstance(value, dict):
            check_schema(value)
        return value

    @field_validator("name")
    @classmethod
    def _name_charset(cls, value: str) -> str:
        if not AGENT_NAME_RE.match(value):
            raise ValueError(f"agent name {value!r} may only use a-z, 0-9, '_' and '-'")
        return value

    @field_validator("host")
    @classmethod
    def _normalise_host(cls, value: str | None) -> str | None:
        return None if value is None else parse_host(value)

    @field_validator("hosts")
    @classmethod
    def _normalise_hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _host_pool(value)

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        for key, value in options.items():
            expected = OLLAMA_OPTIONS.get(key)
            if expected is None:
                raise ValueError(f"unknown Ollama option {key!r}")
            if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
                names = expected.__name__ if isinstance(expected, type) else "number"
                raise ValueError(f"option {key!r} must be {names}, not {value!r}")
        return options


class CrewConfig(_Strict):
    """A whole crew file."""

    name: str
    """Shown in the session list and the title bar."""
    host: str = Field(default_factory=default_host)
    """Ollama address; default OLLAMA_HOST, else http://127.0.0.1:11434. "embedded" for the
    bundled engine."""
    hosts: list[str] | None = Field(default=None, min_length=1)
    """A pool of Ollama hosts: each request goes to one that has the model, preferring one
    where it is loaded and the crew has the fewest requests in flight. Replaces `host`."""
    host_wait: float = Field(default=DEFAULT_HOST_WAIT, ge=0)
    """Seconds an agent waits for an unreachable host (refused, reset, DNS, connect timeout)
    before it fails. These attempts do not count against `retries`."""
    model: str | None = None
    """Default model for agents that name none."""
    retries: int = Field(default=3, ge=0)
    """Retries after a connection error, a 5xx, a 503 busy or a stall."""
    stall_timeout: float = Field(default=60.0, gt=0)
    """Seconds without a new chunk before the reply is cut off and retried."""
    retry_backoff: float = Field(default=1.0, ge=0)
    """First retry delay in seconds; doubles on each further retry, capped at 30 s."""
    state: dict[str, Any] = Field(default_factory=dict)
    """The initial shared board. Nested tables become dotted keys."""
    agents: list[AgentConfig] = Field(min_length=1)
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id -> keys, for the TUI."""
    mcp: list[McpServer] = Field(default_factory=list)
    """`[[mcp]]` tool servers, started with the crew."""
    approve: list[str] = Field(default_factory=list)
    """Glob patterns of tool names (`board_write`, `files.*`) whose calls wait for a decision."""
    approval_timeout: float | None = Field(default=None, gt=0)
    """Seconds a call waits for a decision before it is denied with a reason the model sees;
    unset, it waits until someone decides."""
    max_turns: int = Field(default=DEFAULT_MAX_TURNS, ge=1)
    """Tool-calling turns in a row before the agent is stopped with a reason."""
    max_wakeups: int = Field(default=DEFAULT_MAX_WAKEUPS, ge=0)
    """Times a message may wake a finished agent."""
    check_retries: int = Field(default=DEFAULT_CHECK_RETRIES, ge=0)
    """Correction turns an answer that fails its checks is given."""

    @field_validator("host")
    @classmethod
    def _normalise_host(cls, value: str) -> str:
        return parse_host(value)

    @field_validator("hosts")
    @classmethod
    def _normalise_hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _host_pool(value)

    def agent(self, name: str) -> AgentConfig:
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(name)

    def model_for(self, agent: AgentConfig) -> str:
        model = agent.model or self.model
        assert model is not None, "validated by load_crew"
        return model

    def hosts_for(self, agent: AgentConfig) -> list[str]:
        """The agent's pool, in the order written: its own `hosts` or `host`, else the crew's."""
        if agent.hosts:
            return list(agent.hosts)
        if agent.host:
            return [agent.host]
        return list(self.hosts) if self.hosts else [self.host]

    def host_for(self, agent: AgentConfig) -> str:
        """The agent's first host (its only one, unless it has a pool)."""
        return self.hosts_for(agent)[0]

    def all_hosts(self) -> set[str]:
        """Every host some agent talks to ("embedded" among them if any uses the engine)."""
        return {host for agent in self.agents for host in self.hosts_for(agent)}

    def host_wait_for(self, agent: AgentConfig) -> float:
        return self.host_wait if agent.host_wait is None else agent.host_wait

    def retries_for(self, agent: AgentConfig) -> int:
        return self.retries if agent.retries is None else agent.retries

    def stall_timeout_for(self, agent: AgentConfig) -> float:
        return self.stall_timeout if agent.stall_timeout is None else agent.stall_timeout

    def spec(self, name: str) -> AgentSpec:
        """The agent `name` resolved: its values, else the crew's."""
        agent = self.agent(name)
        return AgentSpec(
            name=name, model=self.model_for(agent), hosts=self.hosts_for(agent),
            retries=self.retries_for(agent), stall_timeout=self.stall_timeout_for(agent),
            host_wait=self.host_wait_for(agent), backoff=self.retry_backoff,
            options=dict(agent.options), tools=list(agent.tools),
            approve=list(self.approve if agent.approve is None else agent.approve),
            approval_timeout=(self.approval_timeout if agent.approval_timeout is None
                              else agent.approval_timeout),
            max_turns=self.max_turns if agent.max_turns is None else agent.max_turns,
            max_wakeups=self.max_wakeups if agent.max_wakeups is None else agent.max_wakeups,
            format=agent.format, checks=agent.checks,
            check_retries=(self.check_retries if agent.check_retries is None
                           else agent.check_retries),
        )

    def mcp_server(self, name: str) -> McpServer:
        for server in self.mcp:
            if server.name == name:
                return server
        raise KeyError(name)

    def ancestors(self, name: str) -> set[str]:
        """Every agent that has finished before `name` starts (transitively)."""
        seen: set[str] = set()
        todo = list(self.agent(name).after)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.agent(current).after)
        return seen


class ConfigError(Exception):
    """A crew file problem. `str()` is the full user-facing message, one problem per line."""

    def __init__(self, path: Path | str, problems: list[tuple[int | None, str, str]]) -> None:
        self.path = Path(path)
        self.problems = problems
        lines = []
        for line, field, message in problems:
            where = f"{self.path}:{line}" if line else str(self.path)
            lines.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        super().__init__("\n".join(lines))


def template_keys(text: str) -> list[str]:
    """The `{{key}}` names used in a prompt, in order."""
    return [match.group(1) for match in TEMPLATE_RE.finditer(text)]


def render_template(text: str, board: Mapping[str, Any]) -> str:
    """Fill `{{key}}` from the board. A missing key raises KeyError: never an empty string."""

    def value_of(match: re.Match[str]) -> str:
        value = board_lookup(board, match.group(1))
        if isinstance(value, str):
            return value
        import json

        return json.dumps(value, ensure_ascii=False)

    return TEMPLATE_RE.sub(value_of, text)


def board_lookup(board: Mapping[str, Any], key: str) -> Any:
    """The board's value at `key`, or inside a structured value: `outputs.plan.steps` reads
    `steps` of the JSON object `outputs.plan` (list items by index). KeyError if absent."""
    if key in board:
        return board[key]
    head, _, rest = key.rpartition(".")
    while head:
        if head in board:
            value = board[head]
            for part in rest.split("."):
                if isinstance(value, dict) and part in value:
                    value = value[part]
                elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                    value = value[int(part)]
                else:
                    raise KeyError(key)
            return value
        head, _, tail = head.rpartition(".")
        rest = f"{tail}.{rest}"
    raise KeyError(key)


def flatten_state(state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`[state.release] version = "2"` becomes the board key `release.version`."""
    flat: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            flat.update(flatten_state(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _LineFinder:
    """Finds the line of a field in TOML source; tomllib does not keep positions.

    The source is cut into sections at each `[table]` / `[[array]]` header. A field is looked up
    as `key =` inside the section (and its sub-tables) that the pydantic location points to.
    """

    HEADER_RE = re.compile(r"^\s*\[(\[?)\s*([^\]]+?)\s*\]")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (first line index, table name, is array-of-tables); the top level has name "".
        self.sections: list[tuple[int, str, bool]] = [(0, "", False)]
        for index, line in enumerate(self.lines):
            match = self.HEADER_RE.match(line)
            if match:
                name = match.group(2).replace('"', "").replace("'", "").replace(" ", "")
                self.sections.append((index, name, bool(match.group(1))))

    def _region(self, position: int) -> tuple[int, int, str]:
        """Lines of section `position` plus its sub-tables: (start, end, name)."""
        start, name, _ = self.sections[position]
        end = len(self.lines)
        for index, other, _ in self.sections[position + 1:]:
            if not name or not other.startswith(f"{name}."):
                end = index
                break
        return start, end, name

    def _key(self, key: str, start: int, end: int) -> int | None:
        pattern = re.compile(rf"(^|[{{,])\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for index in range(start, end):
            if pattern.search(self.lines[index]):
                return index + 1
        return None

    def find(self, loc: Iterable[int | str]) -> int | None:
        parts = [str(p) if not isinstance(p, int) else p for p in loc]
        if not parts:
            return None
        if len(parts) > 1 and isinstance(parts[0], str) and isinstance(parts[1], int):
            arrays = [i for i, (_, name, array) in enumerate(self.sections)
                      if array and name == parts[0]]
            if parts[1] >= len(arrays):
                return self._key(parts[0], 0, len(self.lines))
            start, end, _ = self._region(arrays[parts[1]])
            keys = [p for p in parts[2:] if isinstance(p, str)]
        else:
            start, end, _ = self._region(0)
            end = self.sections[1][0] if len(self.sections) > 1 else len(self.lines)
            keys = [p for p in parts if isinstance(p, str)]
            if keys and self._key(keys[0], start, end) is None:
                tables = [i for i, (_, name, _) in enumerate(self.sections) if name == keys[0]]
                if tables:
                    start, end, _ = self._region(tables[0])
                    keys = keys[1:]
        line = start + 1 if start else None
        for key in keys:
            found = self._key(key, start, end)
            if found is None:
                break
            line, start = found, found - 1
        return line


def _field_name(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    """`('agents', 1, 'after')` -> `agents[1] (writer).after`."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            label = f"[{part}]"
            if i == 1 and loc[0] == "agents":
                agents = data.get("agents")
                if isinstance(agents, list) and part < len(agents):
                    name = agents[part].get("name") if isinstance(agents[part], dict) else None
                    if name:
                        label += f" ({name})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def load_crew(path: Path | str) -> CrewConfig:
    """Read, parse and validate a crew file. Raises ConfigError naming file, line and field."""
    return parse_crew(read_crew_text(path), path)


def read_crew_text(path: Path | str) -> str:
    """A crew file's text, or ConfigError; apart from `load_crew` for the reload, which keeps
    the text to find the lines of problems only the updated crew has."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [(None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, [(None, "", f"cannot read: {error}")]) from None


def parse_crew(text: str, path: Path | str = "<crew>") -> CrewConfig:
    """Validate crew TOML text; `path` is only used in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(error))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        line = int(match.group(1)) if match else None
        raise ConfigError(path, [(line, "", f"invalid TOML: {message}")]) from None
    finder = _LineFinder(text)
    try:
        crew = CrewConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = tuple(item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r} (check the spelling)"
            elif item["type"] == "missing":
                message = "is required"
            problems.append((finder.find(loc), _field_name(loc, data), message))
        raise ConfigError(path, problems) from None
    problems = _crew_problems(crew, finder)
    if problems:
        raise ConfigError(path, problems)
    return crew.model_copy(update={"state": flatten_state(crew.state)})


def crew_problems(crew: CrewConfig, text: str = "",
                  positions: Sequence[int | None] | None = None,
                  ) -> list[tuple[int | None, str, str]]:
    """`parse_crew`'s cross-field checks on a crew built in code (the crew as a reload updates
    it). `positions[i]` is where agent i is in the file `text` (None: not in it), so problems
    name the file's line and index."""
    return _crew_problems(crew, _LineFinder(text), positions)


def _crew_problems(crew: CrewConfig, finder: _LineFinder,
                   positions: Sequence[int | None] | None = None,
                   ) -> list[tuple[int | None, str, str]]:
    """Cross-field checks pydantic cannot express: names, dependencies, templates, models."""
    problems: list[tuple[int | None, str, str]] = []
    names = [agent.name for agent in crew.agents]

    def add(index: int, field: str, message: str) -> None:
        at = index if positions is None else positions[index]
        line = None
        if at is not None:
            line = finder.find(("agents", at, field) if field else ("agents", at))
        label = (f"agents[{at}]" if at is not None else "agents") + \
            f" ({crew.agents[index].name})" + (f".{field}" if field else "")
        problems.append((line, label, message))

    mcp_names = [server.name for server in crew.mcp]
    for index, server in enumerate(crew.mcp):
        if mcp_names.index(server.name) != index:
            problems.append((finder.find(("mcp", index, "name")), f"mcp[{index}].name",
                             f"duplicate server name {server.name!r}"))
    if crew.hosts and "host" in crew.model_fields_set:
        problems.append((finder.find(("hosts",)), "hosts",
                         "set `host` or `hosts`, not both (a pool replaces the single host)"))
    for index, agent in enumerate(crew.agents):
        if agent.host and agent.hosts:
            add(index, "hosts", "set `host` or `hosts`, not both (a pool replaces the single host)")
        if names.index(agent.name) != index:
            add(index, "name", f"duplicate agent name {agent.name!r}")
        if agent.model is None and crew.model is None:
            add(index, "model", "no model: set `model` here or at the top of the crew file")
        servers = {server.name for server in crew.mcp}
        for ref in agent.tools:
            needed = mcp_server_of(ref)
            if needed is not None and needed not in servers:
                add(index, "tools", f"{ref!r}: no [[mcp]] server named {needed!r}")
        for dependency in agent.after:
            if dependency not in names:
                add(index, "after", f"no agent named {dependency!r}")
            elif dependency == agent.name:
                add(index, "after", "an agent cannot wait for itself")
    if problems:
        return problems

    cycle = _find_cycle(crew)
    if cycle:
        index = names.index(cycle[0])
        add(index, "after", "dependency cycle: " + " -> ".join(cycle))
        return problems

    board = set(flatten_state(crew.state))
    for index, agent in enumerate(crew.agents):
        provided = board | {f"outputs.{name}" for name in crew.ancestors(agent.name)}
        for field in ("system", "task"):
            for key in template_keys(getattr(agent, field)):
                if key in provided or _structured_output(crew, key, provided):
                    continue
                if key.startswith("outputs.") and key.removeprefix("outputs.") in names:
                    other = key.removeprefix("outputs.")
                    message = (f"{{{{{key}}}}} is only on the board after {other!r} finishes; "
                               f"add {other!r} to `after`")
                else:
                    message = f"{{{{{key}}}}}: no such key in [state] or an earlier agent's outputs"
                add(index, field, message)
    return problems


def _structured_output(crew: CrewConfig, key: str, provided: set[str]) -> bool:
    """`outputs.plan.steps`, where `plan` is an earlier agent with a `format`: its output is
    JSON, and the path is looked up when the template is filled."""
    parts = key.split(".")
    if len(parts) < 3 or parts[0] != "outputs" or f"outputs.{parts[1]}" not in provided:
        return False
    return crew.agent(parts[1]).format is not None


def _find_cycle(crew: CrewConfig) -> list[str] | None:
    """A dependency cycle as a path that returns to its start, or None."""
    graph = {agent.name: agent.after for agent in crew.agents}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dependency in graph[name]:
            if state.get(dependency) == 1:
                return stack[stack.index(dependency):] + [dependency]
            if dependency not in state:
                found = visit(dependency)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in graph:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None
