"""The event log's tables and how an event becomes a row of them.

Everything that knows the SQL layout lives here: the schema and its migrations, the statements
the writer and readers share, the row types, `encode` and `decode` (an event as an `events`
row and back: the one row codec, with the token hot path kept off pydantic), and how the events
that open, resume or end a session update its `sessions` row. The writer (eventlog.py) and
the readers (logreader.py) only run it.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

import aiosqlite

from cockpit.core.events import EVENT_ADAPTER, BaseEvent, TokenStreamed, event_classes

SCHEMA_VERSION = 2
"""2 added `sessions.hostname` and `sessions.proc_start` (which process owns a session)."""

SCHEMA = """
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    crew        TEXT NOT NULL,
    agents      INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    outcome     TEXT,
    pid         INTEGER,
    hostname    TEXT,
    proc_start  REAL
);
CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    session  TEXT NOT NULL,
    agent    TEXT,
    seq      INTEGER NOT NULL,
    ts       REAL NOT NULL,
    type     TEXT NOT NULL,
    data     TEXT NOT NULL,
    UNIQUE (session, seq)
);
CREATE INDEX events_by_session ON events (session, id);
"""

INSERT_EVENT = "INSERT INTO events (session, agent, seq, ts, type, data) VALUES (?, ?, ?, ?, ?, ?)"
SELECT_EVENTS = "SELECT id, session, agent, seq, ts, type, data FROM events"
Row = tuple[int, str, "str | None", int, float, str, str]
"""A stored event as `SELECT_EVENTS` returns it."""
Encoded = tuple[str, "str | None", int, float, str, str]
"""An event as an `events` row without its id (see `encode`)."""
SESSION_TYPES = frozenset({"session_started", "session_resumed", "session_finished",
                           "agent_restarted", "agent_woken", "crew_updated"})
"""Types that change a session's row: a restart, a wake-up, or agents joining the crew reopen
a session that had ended (as the fold does), and a crew update counts the agents anew."""
MIGRATIONS = {
    1: "ALTER TABLE sessions ADD COLUMN hostname TEXT; "
       "ALTER TABLE sessions ADD COLUMN proc_start REAL;",
}
"""Schema N -> N + 1, run in one transaction when a writer opens an older log."""


def encode(event: BaseEvent) -> Encoded:
    """One event as an `events` row (without id)."""
    if isinstance(event, TokenStreamed):  # the hot path: skip pydantic serialisation
        data = f'{{"text": {encode_basestring(event.text)}, "chunks": {event.chunks}}}'
    else:
        data = json.dumps(event.data(), ensure_ascii=False)
    return (event.session, event.agent, event.seq, event.ts, getattr(event, "type"), data)  # noqa: B009


_CLASSES = event_classes()


def decode(row: Row) -> BaseEvent:
    """A stored row as its event. What our own writer encoded is not validated again
    (`model_construct` is ~10x faster, and replaying a million events needs it); a type this
    version does not know is validated, so it fails with pydantic's clear message."""
    row_id, session, agent, seq, ts, type_, data = row
    fields = json.loads(data)
    cls = _CLASSES.get(type_)
    if cls is None:
        fields.update(id=row_id, session=session, agent=agent, seq=seq, ts=ts, type=type_)
        event: BaseEvent = EVENT_ADAPTER.validate_python(fields)
        return event
    return cls.model_construct(id=row_id, session=session, agent=agent, seq=seq, ts=ts,
                               type=type_, **fields)


async def update_session(db: aiosqlite.Connection, session: str, ts: float, type_: str,
                         data: Any) -> None:
    """Apply one event of `SESSION_TYPES` to its `sessions` row, in the open transaction."""
    if type_ == "session_started":
        await db.execute(
            "INSERT OR IGNORE INTO sessions (id, crew, agents, started_at, pid, hostname, "
            "proc_start) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session, data["crew"], len(data["config"].get("agents", [])), ts, data["pid"],
             data.get("hostname"), data.get("proc_start")),
        )
    elif type_ == "session_resumed":
        await db.execute(
            "UPDATE sessions SET pid = ?, hostname = ?, proc_start = ?, ended_at = NULL, "
            "outcome = NULL WHERE id = ?",
            (data["pid"], data.get("hostname"), data.get("proc_start"), session),
        )
    elif type_ in ("agent_restarted", "agent_woken"):
        await db.execute(
            "UPDATE sessions SET ended_at = NULL, outcome = NULL WHERE id = ?", (session,))
    elif type_ == "crew_updated":  # agents that join a crew reopen it if it had ended
        if data.get("added"):
            await db.execute(
                "UPDATE sessions SET agents = ?, ended_at = NULL, outcome = NULL WHERE id = ?",
                (len(data["config"].get("agents", [])), session))
    else:
        await db.execute(
            "UPDATE sessions SET ended_at = ?, outcome = ? WHERE id = ?",
            (ts, data["outcome"], session),
        )
