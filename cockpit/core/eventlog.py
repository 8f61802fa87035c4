"""The SQLite event log: the durable record of every session.

One aiosqlite connection and one writer task. `append()` never blocks the caller; the writer
gathers events for up to FLUSH_INTERVAL seconds or FLUSH_EVENTS events and commits them in one
transaction (WAL, synchronous=NORMAL: one fsync-free commit per batch instead of per token).
`flush()` is the durability barrier: it returns once everything appended before it is committed,
and commands await it so an intervention is on disk before the key press "returns".

The connection is always closed (`async with EventLog.open(...)`): aiosqlite's thread is not a
daemon, and a leaked connection hangs the interpreter at exit (REFERENCE.md D.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import aiosqlite
import pydantic

from cockpit.core.config import CrewConfig
from cockpit.core.events import BaseEvent, SessionStarted, TokenStreamed, event_from_row

SCHEMA_VERSION = 1
FLUSH_INTERVAL = 0.05
FLUSH_EVENTS = 400

SCHEMA = """
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    crew        TEXT NOT NULL,
    agents      INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    outcome     TEXT,
    pid         INTEGER
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


def default_db_path() -> Path:
    """`COCKPIT_DB`, else `$XDG_DATA_HOME/cockpit/cockpit.db` (~/.local/share by default)."""
    env = os.environ.get("COCKPIT_DB")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "cockpit" / "cockpit.db"


def encode(event: BaseEvent) -> tuple[str, str | None, int, float, str, str]:
    """One event as an `events` row (without id)."""
    if isinstance(event, TokenStreamed):  # the hot path: skip pydantic serialisation
        data = f'{{"text": {encode_basestring(event.text)}, "chunks": {event.chunks}}}'
    else:
        data = json.dumps(event.data(), ensure_ascii=False)
    return (event.session, event.agent, event.seq, event.ts, getattr(event, "type"), data)  # noqa: B009


class _Flush:
    """A marker in the write queue; its future resolves when everything before it is committed."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


class EventLog:
    """Append-only event store with a batching writer. Use `async with EventLog.open(path)`."""

    def __init__(self, path: Path, connection: aiosqlite.Connection) -> None:
        self.path = path
        self._db = connection
        self._pending: deque[BaseEvent | _Flush | None] = deque()  # None: close after this
        self._has_items = asyncio.Event()
        self._urgent = asyncio.Event()
        self._failure: LogError | None = None
        self._writer: asyncio.Task[None] | None = None
        self.readonly = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: Path | str, *, create: bool = True,
                   readonly: bool = False) -> AsyncIterator[EventLog]:
        """Open (creating if allowed) the log, start its writer, and always close it.

        `readonly` (replay, reports) opens SQLite in read-only mode with no writer: nothing
        can be written, whatever the caller does.
        """
        log = await cls._connect(Path(path), create=create and not readonly, readonly=readonly)
        try:
            yield log
        finally:
            await log.close()

    @classmethod
    async def _connect(cls, path: Path, *, create: bool, readonly: bool = False) -> EventLog:
        path = path.expanduser()
        if not path.exists():
            if not create:
                raise LogError(f"{path}: no such event log")
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as error:
                raise LogError(f"{path}: cannot create the event log: {error}") from None
        try:
            connection = await (aiosqlite.connect(f"file:{path}?mode=ro", uri=True) if readonly
                                else aiosqlite.connect(path))
        except sqlite3.Error as error:
            raise LogError(f"{path}: cannot open the event log: {error}") from None
        log = cls(path, connection)
        log.readonly = readonly
        try:
            await log._prepare()
        except BaseException:
            await connection.close()
            raise
        if not readonly:
            log._writer = asyncio.create_task(log._write_loop(),
                                              name=f"eventlog-writer {path.name}")
        return log

    async def _prepare(self) -> None:
        try:
            await self._db.execute("PRAGMA busy_timeout = 10000")
            async with self._db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise LogError(
                    f"{self.path}: written by a newer cockpit (schema {version}, this one "
                    f"reads {SCHEMA_VERSION}); upgrade cockpit"
                )
            if self.readonly:
                if version == 0:
                    raise LogError(f"{self.path}: not a readable event log: no cockpit schema")
                return
            await self._db.execute("PRAGMA journal_mode = WAL")
            await self._db.execute("PRAGMA synchronous = NORMAL")
            if version == 0:
                async with self._db.execute("SELECT count(*) FROM sqlite_master") as cursor:
                    row = await cursor.fetchone()
                if row and row[0]:
                    raise LogError(f"{self.path}: this SQLite file is not a cockpit event log")
                await self._db.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
                await self._db.commit()
        except sqlite3.DatabaseError as error:
            raise LogError(f"{self.path}: not a readable event log: {error}") from None

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the connection, whatever happens."""
        try:
            if self._writer is not None and not self._writer.done():
                self._put(None)
                self._urgent.set()
                await asyncio.shield(self._writer)
        finally:
            if self._writer is not None and not self._writer.done():
                self._writer.cancel()
            await self._db.close()

    # -- writing -----------------------------------------------------------------------------

    def append(self, event: BaseEvent) -> None:
        """Queue an event for the next batch. Raises LogError if the writer has failed."""
        if self._failure is not None:
            raise self._failure
        if self.readonly:
            raise LogError(f"{self.path}: opened read-only; nothing can be written")
        self._pending.append(event)
        self._has_items.set()
        if len(self._pending) >= FLUSH_EVENTS:
            self._urgent.set()

    def _put(self, item: BaseEvent | _Flush | None) -> None:
        self._pending.append(item)
        self._has_items.set()

    async def flush(self) -> None:
        """Return once every event appended so far is committed."""
        if self._failure is not None:
            raise self._failure
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(_Flush(future))
        self._urgent.set()
        await future

    async def _write_loop(self) -> None:
        while True:
            while not self._pending:
                self._has_items.clear()
                await self._has_items.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FLUSH_INTERVAL):
                        await self._urgent.wait()
            self._urgent.clear()
            items = list(self._pending)
            self._pending.clear()
            rows = [encode(item) for item in items if isinstance(item, BaseEvent)]
            flushes = [item.future for item in items if isinstance(item, _Flush)]
            try:
                if rows:
                    await self._commit(rows)
            except (sqlite3.Error, OSError) as error:
                self._failure = LogError(f"{self.path}: writing the event log failed: {error}")
                for future in flushes:
                    if not future.done():
                        future.set_exception(self._failure)
                self._drain_failed()
                return
            for future in flushes:
                if not future.done():
                    future.set_result(None)
            if None in items:
                return

    def _drain_failed(self) -> None:
        """After a write failure, fail every waiting flush instead of hanging it."""
        assert self._failure is not None
        while self._pending:
            item = self._pending.popleft()
            if isinstance(item, _Flush) and not item.future.done():
                item.future.set_exception(self._failure)

    async def _commit(self, rows: list[tuple[str, str | None, int, float, str, str]]) -> None:
        await self._db.executemany(INSERT_EVENT, rows)
        for session, _agent, _seq, ts, type_, data in rows:
            if type_ in ("session_started", "session_resumed", "session_finished"):
                await self._update_session(session, ts, type_, json.loads(data))
        await self._db.commit()

    async def _update_session(self, session: str, ts: float, type_: str, data: Any) -> None:
        if type_ == "session_started":
            await self._db.execute(
                "INSERT OR IGNORE INTO sessions (id, crew, agents, started_at, pid) "
                "VALUES (?, ?, ?, ?, ?)",
                (session, data["crew"], len(data["config"].get("agents", [])), ts, data["pid"]),
            )
        elif type_ == "session_resumed":
            await self._db.execute(
                "UPDATE sessions SET pid = ?, ended_at = NULL, outcome = NULL WHERE id = ?",
                (data["pid"], session),
            )
        else:
            await self._db.execute(
                "UPDATE sessions SET ended_at = ?, outcome = ? WHERE id = ?",
                (ts, data["outcome"], session),
            )

    # -- reading -----------------------------------------------------------------------------


    async def sessions(self) -> list[SessionRow]:
        """Every session, oldest first, with the time of its last event."""
        query = (
            "SELECT s.id, s.crew, s.agents, s.started_at, s.ended_at, s.outcome, s.pid, "
            "(SELECT ts FROM events e WHERE e.session = s.id ORDER BY e.id DESC LIMIT 1) "
            "FROM sessions s ORDER BY s.started_at, s.id"
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
        return [event_from_row(*row) for row in await self.rows(session, after_id, limit)]

    async def events_before(self, session: str, before_id: int | None = None,
                            limit: int = 500) -> list[BaseEvent]:
        """The page of events just before `before_id` (the newest if None), in log order."""
        async with self._db.execute(
            f"{SELECT_EVENTS} WHERE session = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (session, before_id if before_id is not None else 2**62, limit),
        ) as cursor:
            rows = list(await cursor.fetchall())
        return [event_from_row(*row) for row in reversed(rows)]

    async def crew(self, session: str) -> tuple[CrewConfig, str | None]:
        """The crew, and its file, that the session's `session_started` recorded: what resume
        runs again and what replay lays its panes out for."""
        started = await self.events(session, 0, 1)
        if not started or not isinstance(started[0], SessionStarted):
            raise LogError(f"{self.path}: session {session} has no start event")
        try:
            return CrewConfig.model_validate(started[0].config), started[0].crew_path
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
