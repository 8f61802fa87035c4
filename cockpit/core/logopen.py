"""Opening the event log's SQLite file: creating it, preparing its schema, reading it anywhere.

A writer creates the file private (0600), switches it to WAL with synchronous=NORMAL and creates
or migrates the schema in one transaction. A reader opens it read-only, and a cleanly closed log
on read-only media (where no -shm can be made) as immutable (REFERENCE-2.md L.3). Every failure
becomes a LogError that says what to do. `EventLog.open` wraps the connection this returns.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import aiosqlite

from cockpit.core.logreader import LogError
from cockpit.core.logschema import MIGRATIONS, SCHEMA, SCHEMA_VERSION
from cockpit.core.sqlite_errors import SQLITE_BUSY, SQLITE_CANTOPEN, SQLITE_LOCKED

READ_BUSY_TIMEOUT = 10.0
"""Opening, and read-only connections: patient."""


async def connect(path: Path, *, create: bool, readonly: bool,
                  busy_timeout: float) -> tuple[aiosqlite.Connection, int]:
    """The prepared connection to the log at `path` (expanded already), and its schema version.

    A writer's connection then waits `busy_timeout` seconds for another process's write lock.
    """
    if not path.exists():
        if not create:
            raise LogError(f"{path}: no such event log")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as error:
            raise LogError(f"{path}: cannot create the event log: {error}") from None
    if not readonly:
        return await _start(path, str(path), uri=False, busy_timeout=busy_timeout)
    uri = path.resolve().as_uri()
    try:
        return await _start(path, f"{uri}?mode=ro", uri=True, readonly=True)
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
        return await _start(path, f"{uri}?mode=ro&immutable=1", uri=True, readonly=True)
    except sqlite3.OperationalError as error:
        raise LogError(f"{path}: cannot open the event log: {error}") from None


async def _start(path: Path, target: str, *, uri: bool, readonly: bool = False,
                 busy_timeout: float = 0.0) -> tuple[aiosqlite.Connection, int]:
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
        version = await _prepare(connection, path, readonly=readonly, busy_timeout=busy_timeout)
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
    return connection, version


async def _prepare(db: aiosqlite.Connection, path: Path, *, readonly: bool,
                   busy_timeout: float) -> int:
    """Check the schema, and for a writer set WAL up and create or migrate it. Returns the
    schema version the connection now reads."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise LogError(
            f"{path}: written by a newer cockpit (schema {version}, this one "
            f"reads {SCHEMA_VERSION}); upgrade cockpit"
        )
    if readonly:
        if version == 0:
            raise LogError(f"{path}: not a readable event log: no cockpit schema")
        return version
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")
    if version < SCHEMA_VERSION:
        await _create_or_migrate(db, path)
    await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return SCHEMA_VERSION


async def _create_or_migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Write the schema, or migrate an older one, in one `BEGIN IMMEDIATE` transaction that
    reads the version again: two writers opening one old log at once (a run and a resume
    right after an upgrade) must not both migrate it."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version == 0:
            async with db.execute("SELECT count(*) FROM sqlite_master") as cursor:
                row = await cursor.fetchone()
            if row and row[0]:
                raise LogError(f"{path}: this SQLite file is not a cockpit event log")
            script = SCHEMA
        else:
            script = "".join(MIGRATIONS[v] for v in range(version, SCHEMA_VERSION))
        for statement in (part.strip() for part in script.split(";")):
            if statement:
                await db.execute(statement)
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
