"""Saving what no log file holds when the event log gives up.

The log never loses an acknowledged event silently (REFERENCE-2.md L): when it fails for good,
the events it could not commit go to a JSON Lines rescue file (`write_rescue`) and, if the log
file was deleted, moved or replaced under the process, the orphan it still has open is copied
out with VACUUM INTO (`copy_orphan`). Both try beside the log first, then the user's data dir,
then the temp dir, and create private (0600) files that never overwrite anything.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path

import aiosqlite

from cockpit.core.events import BaseEvent, export_record
from cockpit.core.logfile import data_dir
from cockpit.core.text import safe_json


def counted(events: list[BaseEvent]) -> str:
    """E.g. `3 events of session s1`, `1 event of sessions s1, s2`."""
    sessions = list(dict.fromkeys(event.session for event in events))
    return (f"{len(events)} event{'s' if len(events) != 1 else ''} of "
            f"session{'s' if len(sessions) != 1 else ''} {', '.join(sessions)}")


def rescue_dirs(db: Path) -> list[Path]:
    """Where rescue files go: beside the log, else the user's data dir, else the temp dir."""
    dirs = [db.parent]
    with contextlib.suppress(RuntimeError):  # no home directory
        dirs.append(data_dir())
    dirs.append(Path(tempfile.gettempdir()))
    return list(dict.fromkeys(dirs))


def reserve(directory: Path, db: Path, stamp: str, suffix: str) -> tuple[Path, int]:
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
    for directory in rescue_dirs(db):
        target: Path | None = None
        try:
            target, fd = reserve(directory, db, stamp, ".jsonl")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                for event in events:
                    record = export_record(event)
                    out.write(safe_json({"id": None, "session": record["session"],
                                         "agent": record["agent"], "seq": event.seq,
                                         "type": record["type"], "ts": record["ts"],
                                         "data": record["data"]}))  # as the export: cat-safe
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


async def copy_orphan(db: aiosqlite.Connection, path: Path,
                      stamp: str) -> tuple[Path | None, list[str]]:
    """VACUUM INTO a new private file: the orphaned log at `path` as connection `db` still sees
    it. Returns the copy, or None and why each place failed."""
    problems: list[str] = []
    try:
        async with db.execute("PRAGMA page_count") as cursor:
            pages = await cursor.fetchone()
        async with db.execute("PRAGMA page_size") as cursor:
            page = await cursor.fetchone()
        size = int(pages[0] if pages else 0) * int(page[0] if page else 4096)
    except sqlite3.Error as error:
        return None, [f"cannot read it: {error}"]
    for directory in rescue_dirs(path):
        target: Path | None = None
        try:
            if directory.exists():
                stats = os.statvfs(directory)
                if stats.f_bavail * stats.f_frsize < size + size // 10 + 2**20:
                    problems.append(f"{directory}: not enough free space")
                    continue
            target, fd = reserve(directory, path, stamp, ".db")
            os.close(fd)  # VACUUM INTO fills an empty file; this one is private (0600)
            await db.execute("VACUUM INTO ?", (str(target),))
            return target, problems
        except (OSError, sqlite3.Error) as error:
            problems.append(f"{directory}: {getattr(error, 'strerror', None) or error}")
            if target is not None:
                with contextlib.suppress(OSError):
                    target.unlink()
    return None, problems
