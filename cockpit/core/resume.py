"""Rebuilding a session from its log, to continue it (`cockpit resume`) after q, Ctrl-C, a
crash or a failure.

The log is the only input: the crew is the config that `session_started` recorded, and the
state is the fold of every committed event. A reply cut off mid-way is the sum of its logged
tokens, so the runner continues exactly that text (REFERENCE.md A.4: a final assistant message
is continued), and nothing that was logged is generated twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cockpit.core.config import CrewConfig
from cockpit.core.eventlog import EventLog, SessionRow
from cockpit.core.process import owner_alive
from cockpit.core.state import SessionState, fold


class ResumeError(Exception):
    """The session cannot be resumed; the message says why and what to do."""


@dataclass
class Resumable:
    crew: CrewConfig
    state: SessionState
    crew_path: str | None
    only: list[str] | None = None

    @property
    def complete(self) -> bool:
        """Every agent finished or was stopped, and only `session_finished` is missing (a
        crash right before it). Resuming just closes the session."""
        return self.state.outcome is None and not any(
            self.state.goes_on(name) for name in self.state.agents)


def outcome_of(row: SessionRow) -> str:
    """The logged outcome, else `running` (its process is alive) or `crashed`."""
    if row.outcome:
        return row.outcome
    return "running" if owner_alive(row.pid, row.hostname, row.proc_start) else "crashed"


def resumable(row: SessionRow) -> bool:
    return outcome_of(row) in ("interrupted", "crashed", "failed")


async def load_resumable(log: EventLog, ref: str, only: list[str] | None = None) -> Resumable:
    """The crew and folded state of session `ref`, or a ResumeError saying why not."""
    session = await log.resolve(ref)
    row = next(r for r in await log.sessions() if r.id == session)
    outcome = outcome_of(row)
    if outcome == "running" and row.pid == os.getpid():
        outcome = "crashed"  # this process owned it, and its supervisor is gone
    if outcome == "running":
        where = f"process {row.pid}" + (f" on {row.hostname}" if row.hostname else "")
        raise ResumeError(f"session {session} is still running in {where}; "
                          f"quit it there first (or `kill {row.pid}`), then resume")
    if outcome == "finished":
        raise ResumeError(f"session {session} already ended (finished); nothing to resume. "
                          "`cockpit report` explains it, `cockpit replay` shows it again")
    crew, crew_path = await log.crew(session)
    state = fold([event async for event in log.iter_events(session)])
    if only:
        unknown = [name for name in only if name not in state.agents]
        if unknown:
            raise ResumeError(f"session {session} has no agent named {unknown[0]!r} "
                              f"(its agents: {', '.join(state.agents)})")
    found = Resumable(crew, state, crew_path, only)
    if found.complete:
        return found
    if not any(state.goes_on(name, only) for name in state.agents):
        which = "of the --only agents " if only else ""
        raise ResumeError(f"session {session}: none {which}can continue: finished and stopped "
                          "agents stay so (`R` in the TUI restarts a stopped one)")
    return found

