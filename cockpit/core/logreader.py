"""The reading half of the event log: sessions and their events, page by page.

`cockpit sessions`, resume, export, report and replay only read; the writer (eventlog.py) only
appends. `LogReader` holds the queries over an open connection and is the base of `EventLog`,
so a log opened read-only and one being written are read the same way. `LogError`, the error
every part of the log raises for the user, lives here at the root of that hierarchy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import pydantic

from cockpit.core.config import CrewConfig
from cockpit.core.events import BaseEvent, CrewUpdated, SessionStarted
from cockpit.core.logschema import SELECT_EVENTS, Row, decode


class LogError(Exception):
    """The log cannot be opened, read or written. The message is for the user."""


@dataclass(frozen=True)
class SessionRow:
    """One row of `cockpit sessions`."""

    id: str
    crew: str
    agents: int
    started_at: float
    ended_at: float | None
    outcome: str | None
    pid: int | None
    last_ts: float | None
    hostname: str | None = None
    proc_start: float | None = None


class LogReader:
    """Queries over an open event log; `EventLog` sets `path`, `version` and the connection."""

    path: Path
    version: int
    _db: aiosqlite.Connection

    async def sessions(self) -> list[SessionRow]:
        """Every session, oldest first, with the time of its last event."""
        owner = "s.hostname, s.proc_start" if self.version >= 2 else "NULL, NULL"
        query = (
            "SELECT s.id, s.crew, s.agents, s.started_at, s.ended_at, s.outcome, s.pid, "
            "(SELECT ts FROM events e WHERE e.session = s.id ORDER BY e.id DESC LIMIT 1), "
            f"{owner} FROM sessions s ORDER BY s.started_at, s.id"
        )
        async with self._db.execute(query) as cursor:
            return [SessionRow(*row) for row in await cursor.fetchall()]

    async def resolve(self, ref: str) -> str:
        """A session id from `last` or an id (a unique prefix is accepted)."""
        args: tuple[str, ...] = ()
        if ref == "last":
            query = "SELECT id FROM sessions ORDER BY started_at DESC, id DESC LIMIT 1"
        else:
            query, args = "SELECT id FROM sessions WHERE id = ? OR id LIKE ? LIMIT 3", (
                ref, ref.replace("%", "").replace("_", r"\_") + "%")
        async with self._db.execute(query, args) as cursor:
            rows = [row[0] for row in await cursor.fetchall()]
        if ref in rows:
            return ref
        if not rows:
            what = "no sessions yet" if ref == "last" else f"no session {ref!r}"
            raise LogError(f"{self.path}: {what}")
        if len(rows) > 1:
            raise LogError(f"{self.path}: {ref!r} matches several sessions; give more of the id")
        return str(rows[0])

    async def rows(self, session: str, after_id: int = 0, limit: int = 1000) -> list[Row]:
        """One page of a session's stored rows (see `SELECT_EVENTS`), in log order, with ids
        above `after_id`. Replay reads these raw: decoding is its hot path."""
        async with self._db.execute(
            f"{SELECT_EVENTS} WHERE session = ? AND id > ? ORDER BY id LIMIT ?",
            (session, after_id, limit),
        ) as cursor:
            return list(await cursor.fetchall())  # type: ignore[arg-type]

    async def events(self, session: str, after_id: int = 0, limit: int = 1000) -> list[BaseEvent]:
        """One page of a session's events, in log order, with ids above `after_id`."""
        return [decode(row) for row in await self.rows(session, after_id, limit)]

    async def events_before(self, session: str, before_id: int | None = None,
                            limit: int = 500) -> list[BaseEvent]:
        """The page of events just before `before_id` (the newest if None), in log order."""
        async with self._db.execute(
            f"{SELECT_EVENTS} WHERE session = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (session, before_id if before_id is not None else 2**62, limit),
        ) as cursor:
            rows: list[Row] = list(await cursor.fetchall())  # type: ignore[arg-type]
        return [decode(row) for row in reversed(rows)]

    async def crew(self, session: str) -> tuple[CrewConfig, str | None]:
        """The crew as last updated (the last `crew_updated`, else what `session_started`
        recorded), and its file: what resume runs again and what replay lays its panes out
        for."""
        started = await self.events(session, 0, 1)
        if not started or not isinstance(started[0], SessionStarted):
            raise LogError(f"{self.path}: session {session} has no start event")
        config = started[0].config
        async with self._db.execute(
            f"{SELECT_EVENTS} WHERE session = ? AND type = 'crew_updated' "
            "ORDER BY id DESC LIMIT 1", (session,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None:
            updated = decode(row)  # type: ignore[arg-type]
            if isinstance(updated, CrewUpdated):
                config = updated.config
        try:
            return CrewConfig.model_validate(config), started[0].crew_path
        except pydantic.ValidationError as error:
            raise LogError(f"{self.path}: session {session}: its logged crew no longer "
                           f"validates ({error.error_count()} errors)") from None

    async def iter_events(self, session: str, page: int = 2000) -> AsyncIterator[BaseEvent]:
        """All of a session's events, read page by page so memory stays flat."""
        after = 0
        while True:
            batch = await self.events(session, after, page)
            for event in batch:
                yield event
            if len(batch) < page:
                return
            after = batch[-1].id or after
