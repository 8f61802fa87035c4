"""Rebuilding a session from its log, to continue it (`cockpit resume`) after q, Ctrl-C or a
crash.

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
from cockpit.core.state import SessionState, fold


class ResumeError(Exception):
    """The session cannot be resumed; the message says why and what to do."""


@dataclass
class Resumable:
    crew: CrewConfig
    state: SessionState
    crew_path: str | None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id is running (ours counts). A zombie, killed but not yet
    reaped by its parent, is not: right after `kill -9` it still answers signal 0."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): signal 0 is all we know


def outcome_of(row: SessionRow) -> str:
    """The logged outcome, else `running` (its process is alive) or `crashed`."""
    if row.outcome:
        return row.outcome
    return "running" if row.pid and pid_alive(row.pid) else "crashed"


def resumable(row: SessionRow) -> bool:
    return outcome_of(row) in ("interrupted", "crashed")


async def load_resumable(log: EventLog, ref: str) -> Resumable:
    """The crew and folded state of session `ref`, or a ResumeError saying why not."""
    session = await log.resolve(ref)
    row = next(r for r in await log.sessions() if r.id == session)
    outcome = outcome_of(row)
    if outcome == "running" and row.pid != os.getpid():
        raise ResumeError(f"session {session} is still running in process {row.pid}; "
                          f"quit it there first (or `kill {row.pid}`), then resume")
    if outcome in ("finished", "failed"):
        raise ResumeError(f"session {session} already ended ({outcome}); nothing to resume. "
                          "`cockpit report` explains it, `cockpit replay` shows it again")
    crew, crew_path = await log.crew(session)
    state = fold([event async for event in log.iter_events(session)])
    if state.all_ended:
        raise ResumeError(f"session {session}: every agent has ended; nothing to resume")
    return Resumable(crew, state, crew_path)
