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

This module is the writer and the public entry point; the rest of the log lives beside it and is
re-exported here: the schema and row codec (logschema.py), opening and migrating the file
(logopen.py), the queries (logreader.py, the base of `EventLog`), where the file lives and
whether its path still names it (logfile.py), which SQLite errors can pass (sqlite_errors.py),
and the rescue of what no log file holds (rescue.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite

from cockpit.core.events import BaseEvent
from cockpit.core.logfile import FileWatch, default_db_path
from cockpit.core.logopen import READ_BUSY_TIMEOUT, connect
from cockpit.core.logreader import LogError, LogReader, SessionRow
from cockpit.core.logschema import (
    INSERT_EVENT,
    SCHEMA_VERSION,
    SELECT_EVENTS,
    SESSION_TYPES,
    Encoded,
    Row,
    encode,
    update_session,
)
from cockpit.core.rescue import copy_orphan, counted, write_rescue
from cockpit.core.sqlite_errors import transient_cause

__all__ = [  # the public names, wherever they now live: importers use this module
    "CHECK_EVERY", "CLOSE_GRACE", "FLUSH_EVENTS", "FLUSH_INTERVAL", "GIVE_UP_WAIT",
    "INSERT_EVENT", "READ_BUSY_TIMEOUT", "RETRY_FIRST", "RETRY_MAX", "SCHEMA_VERSION",
    "SELECT_EVENTS", "SESSION_TYPES", "STUCK_AFTER", "WRITE_BUSY_TIMEOUT", "Encoded", "EventLog",
    "LogError", "Row", "SessionRow", "default_db_path", "encode", "transient_cause",
    "write_rescue",
]

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


class _Flush:
    """A marker in the write queue; its future resolves when everything before it is committed."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


def _fail_future(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # retrieved: its waiter gets it, and nobody else logs it


class EventLog(LogReader):
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
        self._watch = FileWatch(path)
        """Whether the path still names the open log (REFERENCE-2.md L.2): its descriptor is
        closed only after the connection, as closing any descriptor of a file drops every
        POSIX lock the process holds on it, SQLite's included."""
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
        patience = {} if readonly else patience or {}  # a reader has no writer to tune
        connection, version = await connect(
            path, create=create, readonly=readonly,
            busy_timeout=patience.get("busy_timeout", WRITE_BUSY_TIMEOUT))
        try:
            log = cls(path, connection, readonly=readonly, **patience)
        except BaseException:
            await connection.close()
            raise
        log.version = version
        if not readonly:
            log._watch.start()
            log._writer = asyncio.create_task(log._write_loop(),
                                              name=f"eventlog-writer {path.name}")
        return log

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
                self._watch.close()
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
                        if moved := self._watch.moved():
                            return await self._fail_moved(moved)
                        self._unverified = []
                        continue
                if not self._urgent.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(FLUSH_INTERVAL):
                            await self._urgent.wait()
            self._urgent.clear()
            self._take()
            if moved := self._watch.moved():
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
                    await update_session(self._db, session, ts, type_, json.loads(data))
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
        copy, problems = await copy_orphan(self._db, self.path, stamp)
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
                parts.append(f"{counted(rescued)} that no log file holds {were} saved to "
                             f"{where}")
            else:
                parts.append(f"{counted(rescued)} that no log file holds could not be saved "
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
