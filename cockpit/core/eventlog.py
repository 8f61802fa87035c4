"""The SQLite event log: the durable record of every session.

One aiosqlite connection and one writer task. `append()` never blocks the caller; the writer
gathers events for up to FLUSH_INTERVAL seconds or FLUSH_EVENTS events and commits them in one
`BEGIN IMMEDIATE` transaction (WAL, synchronous=NORMAL: one fsync-free commit per batch instead
of per token). `flush()` is the durability barrier: it returns once everything appended before it
is committed, and commands await it so an intervention is on disk before the key press "returns".

The log never loses an acknowledged event and never fails silently (REFERENCE-2.md L):
- A commit that fails for a reason that can pass (another process holds the write lock, the disk
  is full, an I/O error) is rolled back and retried with backoff; its batch stays in memory and
  new events queue behind it. After `stuck_after` seconds of failing, `stuck` names the cause and
  the health listeners hear it (the supervisor pauses the agents); they hear None once a commit
  lands again. A waiting `flush()` just waits.
- A log file deleted, moved away or replaced under the process (WAL writes on into the orphaned
  file, which is gone at close), an error that cannot pass (a corrupt file), or a `close()` that
  cannot land its batch within `close_grace` seconds is fatal: what no log file holds is saved to
  a rescue file beside the log, and `failure`, a LogError saying what was not written and where it
  went, is raised by `append`, `flush` and `close`.

The connection is always closed (`async with EventLog.open(...)`): aiosqlite's thread is not a
daemon, and a leaked connection hangs the interpreter at exit (REFERENCE.md D.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import aiosqlite
import pydantic

from cockpit.core.config import CrewConfig
from cockpit.core.events import (
    BaseEvent,
    SessionStarted,
    TokenStreamed,
    event_from_row,
    export_record,
)

SCHEMA_VERSION = 2
"""2 added `sessions.hostname` and `sessions.proc_start` (which process owns a session)."""
FLUSH_INTERVAL = 0.05
FLUSH_EVENTS = 400
STUCK_AFTER = 3.0
"""Seconds of failing commits before the log reports itself stuck."""
RETRY_FIRST = 0.5
RETRY_MAX = 5.0
"""A failed commit is retried after RETRY_FIRST seconds, doubling up to RETRY_MAX."""
CHECK_EVERY = 2.0
"""Seconds between checks, while idle, that the file at the path is still the open log (it is
also checked before every batch)."""
CLOSE_GRACE = 30.0
"""Seconds `close()` keeps retrying a stuck batch before it rescues it and gives up."""
GIVE_UP_WAIT = 10.0
"""After `close_grace`: how long the commit attempt in flight may still take."""
WRITE_BUSY_TIMEOUT = 2.0
"""The writer's wait for another process's write lock, per attempt: short, so a long lock is
noticed and reported (and retried) instead of blocking silently."""
READ_BUSY_TIMEOUT = 10.0
"""Opening, and read-only connections: patient."""

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
                           "agent_restarted"})
"""Types that change a session's row: a restart reopens a session that had ended."""
MIGRATIONS = {
    1: "ALTER TABLE sessions ADD COLUMN hostname TEXT; "
       "ALTER TABLE sessions ADD COLUMN proc_start REAL;",
}
"""Schema N -> N + 1, run in one transaction when a writer opens an older log."""

# SQLite primary result codes (sqlite3.h); extended codes keep them in their low byte.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY = 5, 6, 7, 8
SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL = 10, 13, 14, 15
SQLITE_READONLY_DBMOVED = 1032


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


def default_db_path() -> Path:
    """`COCKPIT_DB`, else `$XDG_DATA_HOME/cockpit/cockpit.db` (~/.local/share by default)."""
    env = os.environ.get("COCKPIT_DB")
    if env:
        return Path(env).expanduser()
    return _data_dir() / "cockpit.db"


def _data_dir() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "cockpit"


def encode(event: BaseEvent) -> Encoded:
    """One event as an `events` row (without id)."""
    if isinstance(event, TokenStreamed):  # the hot path: skip pydantic serialisation
        data = f'{{"text": {encode_basestring(event.text)}, "chunks": {event.chunks}}}'
    else:
        data = json.dumps(event.data(), ensure_ascii=False)
    return (event.session, event.agent, event.seq, event.ts, getattr(event, "type"), data)  # noqa: B009


def transient_cause(error: BaseException) -> str | None:
    """Why a commit failed, for a person, if the reason can pass (a retry may land it); None
    if it cannot (a corrupt file, a constraint, a bug)."""
    if not isinstance(error, sqlite3.OperationalError):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    if code is None or code == SQLITE_READONLY_DBMOVED:
        return None
    name = getattr(error, "sqlite_errorname", "")
    primary = code & 0xFF
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return f"the event log is locked by another process ({error})"
    if primary == SQLITE_FULL:
        return f"the disk is full ({error})"
    if primary == SQLITE_IOERR:
        return f"I/O error: {error} ({name})"
    if primary == SQLITE_READONLY:
        return f"the event log cannot be written: {error} ({name})"
    if primary in (SQLITE_NOMEM, SQLITE_CANTOPEN, SQLITE_PROTOCOL):
        return f"{error} ({name})"
    return None


def _counted(events: list[BaseEvent]) -> str:
    """E.g. `3 events of session s1`, `1 event of sessions s1, s2`."""
    sessions = list(dict.fromkeys(event.session for event in events))
    return (f"{len(events)} event{'s' if len(events) != 1 else ''} of "
            f"session{'s' if len(sessions) != 1 else ''} {', '.join(sessions)}")


def _rescue_dirs(db: Path) -> list[Path]:
    """Where rescue files go: beside the log, else the user's data dir, else the temp dir."""
    dirs = [db.parent]
    with contextlib.suppress(RuntimeError):  # no home directory
        dirs.append(_data_dir())
    dirs.append(Path(tempfile.gettempdir()))
    return list(dict.fromkeys(dirs))


def _reserve(directory: Path, db: Path, stamp: str, suffix: str) -> tuple[Path, int]:
    """A new private file `<db name>.rescue-<stamp><suffix>` in `directory`, open for writing."""
    if directory != db.parent:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for n in range(100):
        target = directory / f"{db.name}.rescue-{stamp}{f'-{n}' if n else ''}{suffix}"
        try:
            return target, os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                   0o600)
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: too many rescue files named {db.name}.rescue-{stamp}")


def write_rescue(db: Path, events: list[BaseEvent], stamp: str) -> tuple[Path | None, list[str]]:
    """Save `events` as JSON Lines (the export's records, with `seq`, and `id` null: they are in
    no log) to the first rescue directory that takes them. Returns the file, or None and why
    each place failed."""
    problems: list[str] = []
    for directory in _rescue_dirs(db):
        target: Path | None = None
        try:
            target, fd = _reserve(directory, db, stamp, ".jsonl")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                for event in events:
                    record = export_record(event)
                    out.write(json.dumps({"id": None, "session": record["session"],
                                          "agent": record["agent"], "seq": event.seq,
                                          "type": record["type"], "ts": record["ts"],
                                          "data": record["data"]}, ensure_ascii=False))
                    out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            return target, problems
        except OSError as error:
            problems.append(f"{directory}: {error.strerror or error}")
            if target is not None:
                with contextlib.suppress(OSError):
                    target.unlink()
    return None, problems


class _Flush:
    """A marker in the write queue; its future resolves when everything before it is committed."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


def _fail_future(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # retrieved: its waiter gets it, and nobody else logs it


class EventLog:
    """Append-only event store with a batching writer. Use `async with EventLog.open(path)`."""

    def __init__(self, path: Path, connection: aiosqlite.Connection, *, readonly: bool = False,
                 stuck_after: float = STUCK_AFTER, retry_first: float = RETRY_FIRST,
                 retry_max: float = RETRY_MAX, check_every: float = CHECK_EVERY,
                 close_grace: float = CLOSE_GRACE,
                 busy_timeout: float = WRITE_BUSY_TIMEOUT) -> None:
        self.path = path
        self.readonly = readonly
        self.version = SCHEMA_VERSION
        """The file's schema (an older one is migrated when a writer opens it)."""
        self.stuck_after = stuck_after
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.check_every = check_every
        self.close_grace = close_grace
        self.busy_timeout = busy_timeout
        self.stuck: str | None = None
        """None while writes land; why they do not, once they have failed for `stuck_after`
        seconds. Once the log has given up it keeps its last value: see `failure`."""
        self.rescue_path: Path | None = None
        """After a fatal failure: the JSON Lines file holding the events no log file holds."""
        self.rescue_copy: Path | None = None
        """After the file was deleted, moved or replaced: a copy of it as this process saw it."""
        self._db = connection
        self._pending: deque[BaseEvent | _Flush | None] = deque()  # None: close after this
        self._has_items = asyncio.Event()
        self._urgent = asyncio.Event()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._failure: LogError | None = None
        self._refuse: LogError | None = (
            LogError(f"{path}: opened read-only; nothing can be written") if readonly else None)
        """What `append` raises: the failure, read-only, or closed (one check on the hot path)."""
        # The batch being written: kept until it is committed, whatever fails.
        self._batch: list[BaseEvent] = []
        self._rows: list[Encoded] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self._giving_up = False
        self._unverified: list[BaseEvent] = []
        """Committed since the file was last seen at its path: lost too if it has gone."""
        self._fd: int | None = None
        self._watched = path.absolute()  # a later chdir must not look like a moved file
        self._identity: tuple[int, int] = (0, 0)
        self._failing_since: float | None = None
        self._cause = ""
        self._stuck_timer: asyncio.TimerHandle | None = None
        self._health_listeners: list[Callable[[str | None], None]] = []
        self._failure_listeners: list[Callable[[LogError], None]] = []

    @property
    def failure(self) -> LogError | None:
        """The fatal error, once the log has given up; None until then."""
        return self._failure

    def add_health_listener(self, listener: Callable[[str | None], None]) -> None:
        """Call `listener(cause)`, on the event loop, whenever `stuck` changes: with the cause
        once commits have failed for `stuck_after` seconds (again if the cause changes while
        stuck), and with None when a commit lands again."""
        self._health_listeners.append(listener)

    def add_failure_listener(self, listener: Callable[[LogError], None]) -> None:
        """Call `listener(failure)` once, on the event loop, when the log gives up (even when
        nobody is appending, e.g. every agent paused)."""
        self._failure_listeners.append(listener)

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: Path | str, *, create: bool = True, readonly: bool = False,
                   **patience: float) -> AsyncIterator[EventLog]:
        """Open (creating if allowed) the log, start its writer, and always close it.

        `readonly` (sessions, export, report, replay) opens SQLite read-only with no writer:
        nothing can be written, and a log on read-only media can be read. `patience` overrides
        the writer's timings (`stuck_after`, `retry_first`, `retry_max`, `check_every`,
        `close_grace`, `busy_timeout`), for tests.
        """
        log = await cls._connect(Path(path), create=create and not readonly, readonly=readonly,
                                 patience=patience)
        try:
            yield log
        finally:
            await log.close()

    @classmethod
    async def _connect(cls, path: Path, *, create: bool, readonly: bool = False,
                       patience: dict[str, float] | None = None) -> EventLog:
        path = path.expanduser()
        if not path.exists():
            if not create:
                raise LogError(f"{path}: no such event log")
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as error:
                raise LogError(f"{path}: cannot create the event log: {error}") from None
        if not readonly:
            log = await cls._start(path, str(path), uri=False, patience=patience or {})
            log._watch_file()
            log._writer = asyncio.create_task(log._write_loop(),
                                              name=f"eventlog-writer {path.name}")
            return log
        uri = path.resolve().as_uri()
        try:
            return await cls._start(path, f"{uri}?mode=ro", uri=True, readonly=True)
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", 0) != SQLITE_CANTOPEN:
                raise LogError(f"{path}: not a readable event log: {error}") from None
            if Path(f"{path}-wal").exists():  # immutable=1 would ignore it: a stale view
                shm = "" if Path(f"{path}-shm").exists() else " and no -shm beside it"
                raise LogError(
                    f"{path}: cannot read the event log: {error}; it has a -wal file{shm} in a "
                    "directory that cannot be written (read-only media?); copy the log with "
                    "its -wal and -shm files somewhere writable") from None
        # A cleanly closed WAL log where no -shm can be made (read-only media): nobody is
        # writing it (a writer keeps a -wal), so reading it as immutable is safe (L.3).
        try:
            return await cls._start(path, f"{uri}?mode=ro&immutable=1", uri=True, readonly=True)
        except sqlite3.OperationalError as error:
            raise LogError(f"{path}: cannot open the event log: {error}") from None

    @classmethod
    async def _start(cls, path: Path, target: str, *, uri: bool, readonly: bool = False,
                     patience: dict[str, float] | None = None) -> EventLog:
        """Connect and prepare; sqlite3.OperationalError CANTOPEN passes through for read-only
        opens (the caller retries), every other failure is a LogError."""
        try:
            # Python opens a transaction before the first INSERT; make it IMMEDIATE, not
            # deferred (L.1: the WAL upgrade trap), at no extra round trip to the thread.
            connection = await aiosqlite.connect(target, uri=uri, isolation_level="IMMEDIATE",
                                                 timeout=READ_BUSY_TIMEOUT)
        except sqlite3.Error as error:
            raise LogError(f"{path}: cannot open the event log: {error}") from None
        try:
            log = cls(path, connection, readonly=readonly, **(patience or {}))
            await log._prepare()
        except BaseException as error:
            await connection.close()
            if not isinstance(error, sqlite3.DatabaseError):
                raise
            code = getattr(error, "sqlite_errorcode", 0)
            if readonly and code == SQLITE_CANTOPEN:
                raise
            if code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED):
                raise LogError(f"{path}: the event log is locked by another process ({error});"
                               " try again once it is done") from None
            raise LogError(f"{path}: not a readable event log: {error}") from None
        return log

    async def _prepare(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise LogError(
                f"{self.path}: written by a newer cockpit (schema {version}, this one "
                f"reads {SCHEMA_VERSION}); upgrade cockpit"
            )
        self.version = version
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
            await self._db.executescript(
                f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version < SCHEMA_VERSION:
            steps = "".join(MIGRATIONS[v] for v in range(version, SCHEMA_VERSION))
            await self._db.executescript(
                f"BEGIN IMMEDIATE; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        self.version = SCHEMA_VERSION
        await self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    def _watch_file(self) -> None:
        """Hold the log's file open to tell, later, whether the path still names it (L.2).

        The descriptor is closed only after the connection: closing any descriptor of a file
        drops every POSIX lock the process holds on it, SQLite's included.
        """
        try:
            self._fd = os.open(self._watched, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # cannot watch: carry on unwatched rather than refuse to run
        held = os.fstat(self._fd)
        self._identity = (held.st_dev, held.st_ino)

    def _moved(self) -> str | None:
        """None while the path names the open log; else what happened to it. One syscall."""
        if self._fd is None:
            return None
        try:
            here = os.stat(self._watched)
        except FileNotFoundError:
            return "deleted" if os.fstat(self._fd).st_nlink == 0 else "moved away"
        except OSError:
            return None  # cannot tell (permissions): the next check may
        return None if (here.st_dev, here.st_ino) == self._identity else "replaced by another file"

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the connection, whatever happens.

        A stuck log is retried for `close_grace` seconds; then what is not written is rescued.
        Raises `failure` if the log failed at any point (what was lost and where it went).
        """
        writer = self._writer
        try:
            if writer is not None and not writer.done():
                self._put(None)
                self._urgent.set()
                if not await self._finished(writer, self.close_grace):
                    self._giving_up = True
                    self._wake.set()
                    await self._finished(writer, GIVE_UP_WAIT)
        finally:
            abandoned = writer is not None and not writer.done()
            try:
                if abandoned:
                    assert writer is not None
                    writer.cancel()
                    await self._abandon()
                await self._db.close()
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                if abandoned and self._failure is not None:
                    raise self._failure  # even over a cancellation: say what was lost
        if self._failure is not None:
            raise self._failure

    async def _abandon(self) -> None:
        """The writer was stopped mid-way (a cancelled close): settle its batch. The thread
        finishes the statement it started, so roll back, then look: did the batch land?"""
        with contextlib.suppress(Exception):
            await self._db.rollback()
            if self._rows:
                session, _agent, seq, *_ = self._rows[-1]
                async with self._db.execute("SELECT 1 FROM events WHERE session = ? AND seq = ?",
                                            (session, seq)) as cursor:
                    if await cursor.fetchone() is not None:
                        self._landed()
        if self._batch or any(isinstance(item, BaseEvent) for item in self._pending):
            self._fail_now(f"{self.path}: the event log was closed before everything appended "
                           "was committed")
        else:
            self._refuse = self._refuse or LogError(f"{self.path}: the event log is closed")
            flushes = [item.future for item in self._pending if isinstance(item, _Flush)]
            for future in self._waiters + flushes:
                if not future.done():
                    future.set_result(None)

    @staticmethod
    async def _finished(task: asyncio.Task[None], timeout: float) -> bool:
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    # -- writing -----------------------------------------------------------------------------

    def append(self, event: BaseEvent) -> None:
        """Queue an event for the next batch. Raises LogError once the log has given up (or is
        read-only, or closed); a stuck log keeps queueing."""
        if self._refuse is not None:
            raise self._refuse
        self._pending.append(event)
        self._has_items.set()
        if len(self._pending) >= FLUSH_EVENTS:
            self._urgent.set()

    def _put(self, item: BaseEvent | _Flush | None) -> None:
        self._pending.append(item)
        self._has_items.set()

    async def flush(self) -> None:
        """Return once every event appended so far is committed (while the log is stuck, that
        is when it lands). Raises `failure` if the log gives up first."""
        if self._failure is not None:
            raise self._failure
        if self._writer is None or self._writer.done():
            return  # read-only, or closed: nothing waits to be written
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(_Flush(future))
        self._urgent.set()
        await future

    async def _write_loop(self) -> None:
        try:
            await self._write()
        except Exception as error:  # a bug: still fatal and rescued, never a lost traceback
            if self._failure is None:
                await self._rollback()
                self._fail_now(f"{self.path}: writing the event log failed: {error!r}")

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            if not failures:
                if not self._pending:
                    self._has_items.clear()
                    try:
                        async with asyncio.timeout(self.check_every):
                            await self._has_items.wait()
                    except TimeoutError:  # idle: is the file still there?
                        if moved := self._moved():
                            return await self._fail_moved(moved)
                        self._unverified = []
                        continue
                if not self._urgent.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(FLUSH_INTERVAL):
                            await self._urgent.wait()
            self._urgent.clear()
            self._take()
            if moved := self._moved():
                return await self._fail_moved(moved)
            self._unverified = []
            started = loop.time()
            error = await self._commit(self._rows) if self._rows else None
            if error is None:
                failures = 0
                self._landed()
                if self._closing and not self._pending:
                    self._refuse = LogError(f"{self.path}: the event log is closed")
                    return
                continue
            cause = transient_cause(error)
            if cause is None:
                return self._fail_now(f"{self.path}: writing the event log failed: {error}")
            failures += 1
            self._failing(cause, started)
            if not self._giving_up:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.retry_first * 2 ** (failures - 1),
                                                   self.retry_max)):
                        await self._wake.wait()
            if self._giving_up:
                return self._fail_now(
                    f"{self.path}: writing the event log failed for "
                    f"{loop.time() - (self._failing_since or started):.0f} s ({cause}), and "
                    "cockpit could wait no longer at close")

    def _take(self) -> None:
        """Move everything queued into the batch being written (behind what it still holds)."""
        items = list(self._pending)
        self._pending.clear()
        for item in items:
            if isinstance(item, BaseEvent):
                self._batch.append(item)
                self._rows.append(encode(item))
            elif item is None:
                self._closing = True
            else:
                self._waiters.append(item.future)

    async def _commit(self, rows: list[Encoded]) -> Exception | None:
        """One transaction for the batch; on any error it is rolled back (never assume part of
        a batch landed) and the error returned."""
        try:
            await self._db.executemany(INSERT_EVENT, rows)  # BEGIN IMMEDIATE, implicitly
            for session, _agent, _seq, ts, type_, data in rows:
                if type_ in SESSION_TYPES:
                    await self._update_session(session, ts, type_, json.loads(data))
            await self._db.commit()
        except Exception as error:
            await self._rollback()
            return error
        return None

    async def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            await self._db.rollback()  # a no-op unless a transaction is open

    def _landed(self) -> None:
        """The batch is committed: release its waiters; the log is healthy again."""
        self._unverified = self._batch
        self._batch, self._rows = [], []
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
        self._failing_since = None
        if self._stuck_timer is not None:
            self._stuck_timer.cancel()
            self._stuck_timer = None
        if self.stuck is not None:
            self._set_stuck(None)

    def _failing(self, cause: str, since: float) -> None:
        """A commit attempt (started at `since`) failed for `cause`: report once it has lasted."""
        self._cause = cause
        if self._failing_since is None:
            self._failing_since = since
        if self.stuck is not None:
            self._set_stuck(cause)
            return
        loop = asyncio.get_running_loop()
        remaining = self._failing_since + self.stuck_after - loop.time()
        if remaining <= 0:
            self._set_stuck(cause)
        elif self._stuck_timer is None:  # report on time, even mid-attempt
            self._stuck_timer = loop.call_later(remaining, self._stuck_timeout)

    def _stuck_timeout(self) -> None:
        self._stuck_timer = None
        if self._failing_since is not None and self._failure is None:
            self._set_stuck(self._cause)

    def _set_stuck(self, cause: str | None) -> None:
        if cause == self.stuck:
            return
        self.stuck = cause
        for listener in list(self._health_listeners):
            self._call(listener, cause)

    @staticmethod
    def _call(listener: Callable[[Any], None], value: Any) -> None:
        try:
            listener(value)
        except Exception as error:  # a listener's bug must not stop the log: report it
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"event log listener {listener!r} failed", "exception": error})

    async def _fail_moved(self, moved: str) -> None:
        """The path no longer names the open log: copy the orphan (everything committed to it
        is gone once the connection closes), then give up, rescuing the rest."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        copy, problems = await self._copy_orphan(stamp)
        self.rescue_copy = copy
        # Our frames in `<path>-wal` would be read as part of whatever file is at the path now,
        # and checkpointed into it (L.2): move them into the orphan and empty the -wal.
        with contextlib.suppress(sqlite3.Error):
            await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if copy is not None:
            note = (f"a copy of the log as this process last saw it, with every event it "
                    f"committed, was saved to {copy}")
            lost: list[BaseEvent] = []
        else:
            note = (f"its earlier contents could not be copied ({'; '.join(problems)}) and are "
                    "lost")
            lost = self._unverified
        self._fail_now(f"{self.path} was {moved} while cockpit was writing to it", note=note,
                       lost=lost, stamp=stamp)

    async def _copy_orphan(self, stamp: str) -> tuple[Path | None, list[str]]:
        """VACUUM INTO a new private file: the orphaned log as this connection still sees it."""
        problems: list[str] = []
        try:
            async with self._db.execute("PRAGMA page_count") as cursor:
                pages = await cursor.fetchone()
            async with self._db.execute("PRAGMA page_size") as cursor:
                page = await cursor.fetchone()
            size = int(pages[0] if pages else 0) * int(page[0] if page else 4096)
        except sqlite3.Error as error:
            return None, [f"cannot read it: {error}"]
        for directory in _rescue_dirs(self.path):
            target: Path | None = None
            try:
                if directory.exists():
                    stats = os.statvfs(directory)
                    if stats.f_bavail * stats.f_frsize < size + size // 10 + 2**20:
                        problems.append(f"{directory}: not enough free space")
                        continue
                target, fd = _reserve(directory, self.path, stamp, ".db")
                os.close(fd)  # VACUUM INTO fills an empty file; this one is private (0600)
                await self._db.execute("VACUUM INTO ?", (str(target),))
                return target, problems
            except (OSError, sqlite3.Error) as error:
                problems.append(f"{directory}: {getattr(error, 'strerror', None) or error}")
                if target is not None:
                    with contextlib.suppress(OSError):
                        target.unlink()
        return None, problems

    def _fail_now(self, reason: str, *, note: str = "", lost: list[BaseEvent] | None = None,
                  stamp: str | None = None) -> None:
        """Give up for good: rescue what no log file holds (`lost`, committed to a file that
        has gone, then the batch and the queue), fail every waiting flush, refuse appends."""
        if self._failure is not None:
            return
        items = list(self._pending)
        self._pending.clear()
        unwritten = self._batch + [item for item in items if isinstance(item, BaseEvent)]
        waiters = self._waiters + [item.future for item in items if isinstance(item, _Flush)]
        self._batch, self._rows, self._waiters, self._unverified = [], [], [], []
        rescued = [*(lost or []), *unwritten]
        parts = [reason] + ([note] if note else [])
        if rescued:
            where, problems = write_rescue(self.path, rescued, stamp or time.strftime(
                "%Y%m%d-%H%M%S"))
            self.rescue_path = where
            were = "was" if len(rescued) == 1 else "were"
            if where is not None:
                parts.append(f"{_counted(rescued)} that no log file holds {were} saved to "
                             f"{where}")
            else:
                parts.append(f"{_counted(rescued)} that no log file holds could not be saved "
                             f"anywhere, so {were} lost ({'; '.join(problems)})")
        elif not note:
            parts.append("no event was lost")
        self._failure = self._refuse = LogError(
            ". ".join(part[:1].upper() + part[1:] if n else part for n, part in enumerate(parts))
            + ".")
        if self._stuck_timer is not None:
            self._stuck_timer.cancel()
            self._stuck_timer = None
        for future in waiters:
            _fail_future(future, self._failure)
        for listener in list(self._failure_listeners):
            self._call(listener, self._failure)

    async def _update_session(self, session: str, ts: float, type_: str, data: Any) -> None:
        if type_ == "session_started":
            await self._db.execute(
                "INSERT OR IGNORE INTO sessions (id, crew, agents, started_at, pid, hostname, "
                "proc_start) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session, data["crew"], len(data["config"].get("agents", [])), ts, data["pid"],
                 data.get("hostname"), data.get("proc_start")),
            )
        elif type_ == "session_resumed":
            await self._db.execute(
                "UPDATE sessions SET pid = ?, hostname = ?, proc_start = ?, ended_at = NULL, "
                "outcome = NULL WHERE id = ?",
                (data["pid"], data.get("hostname"), data.get("proc_start"), session),
            )
        elif type_ == "agent_restarted":
            await self._db.execute(
                "UPDATE sessions SET ended_at = NULL, outcome = NULL WHERE id = ?", (session,))
        else:
            await self._db.execute(
                "UPDATE sessions SET ended_at = ?, outcome = ? WHERE id = ?",
                (ts, data["outcome"], session),
            )

    # -- reading -----------------------------------------------------------------------------


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
