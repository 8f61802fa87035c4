"""The SQLite event log on a real file: durability, batching, schema, permissions, paging."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core import events as ev
from cockpit.core.eventlog import FLUSH_EVENTS, SCHEMA_VERSION, EventLog, LogError


def started(session: str = "s1") -> ev.SessionStarted:
    return ev.SessionStarted(session=session, seq=1, ts=100.0, crew="c",
                             config={"agents": [{"name": "a"}]}, pid=1, version="t")


def tokens(n: int, session: str = "s1", first_seq: int = 2) -> list[ev.BaseEvent]:
    return [ev.TokenStreamed(session=session, agent="a", seq=first_seq + i, ts=100.0 + i,
                             text=f"t{i} ") for i in range(n)]


def rows(db: Path, query: str = "SELECT count(*) FROM events") -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as raw:
        return raw.execute(query).fetchall()


async def test_a_new_log_is_private_wal_and_versioned(db: Path) -> None:
    async with EventLog.open(db):
        pass
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_flush_commits_what_was_appended_and_readers_page_by_id(db: Path) -> None:
    async with EventLog.open(db) as log:
        log.append(started())
        for event in tokens(2500):
            log.append(event)
        await log.flush()
        assert rows(db) == [(2501,)]  # visible to another connection: committed
        page = await log.events("s1", after_id=0, limit=1000)
        assert len(page) == 1000 and page[0].type == "session_started"  # type: ignore[attr-defined]
        next_page = await log.events("s1", after_id=page[-1].id or 0, limit=1000)
        assert next_page[0].id == (page[-1].id or 0) + 1
        every = [e async for e in log.iter_events("s1", page=700)]
    assert len(every) == 2501
    assert [e.seq for e in every] == list(range(1, 2502))
    assert "".join(e.text for e in every[1:]) == "".join(f"t{i} " for i in range(2500))  # type: ignore[attr-defined]


async def test_events_are_batched_into_few_transactions(db: Path) -> None:
    """Many appends between two flushes reach SQLite as a handful of commits, not one each."""
    async with EventLog.open(db) as log:
        commits = 0
        original = log._db.commit

        async def counting_commit() -> None:
            nonlocal commits
            commits += 1
            await original()

        log._db.commit = counting_commit  # type: ignore[method-assign]
        log.append(started())
        for event in tokens(3 * FLUSH_EVENTS):
            log.append(event)
        await log.flush()
    assert 1 <= commits <= 4


async def test_close_commits_everything_still_queued(db: Path) -> None:
    async with EventLog.open(db) as log:
        log.append(started())
        for event in tokens(10):
            log.append(event)
    assert rows(db) == [(11,)]


async def test_events_round_trip_unchanged(db: Path) -> None:
    originals: list[ev.BaseEvent] = [
        started(),
        ev.AgentStarted(session="s1", agent="a", seq=2, ts=1.5, model="m", host="h",
                        messages=[{"role": "user", "content": "hi ✓"}]),
        ev.StateSet(session="s1", agent=None, seq=3, ts=2.0, key="k", value={"n": [1, 2]},
                    by="person"),
        ev.MessageCompleted(session="s1", agent="a", seq=4, ts=3.0, content="x", eval_count=3),
    ]
    async with EventLog.open(db) as log:
        for event in originals:
            log.append(event)
        await log.flush()
        back = [e async for e in log.iter_events("s1")]
    assert [e.model_copy(update={"id": None}) for e in back] == originals


async def test_sessions_and_resolve(db: Path) -> None:
    async with EventLog.open(db) as log:
        log.append(started("20260101-000000-aaaa"))
        log.append(started("20260102-000000-bbbb").model_copy(update={"ts": 200.0}))
        log.append(ev.SessionFinished(session="20260101-000000-aaaa", seq=2, ts=150.0,
                                      outcome="finished", agents={"a": "finished"}))
        await log.flush()
        listed = await log.sessions()
        assert [(s.id, s.outcome, s.agents) for s in listed] == [
            ("20260101-000000-aaaa", "finished", 1), ("20260102-000000-bbbb", None, 1)]
        assert await log.resolve("last") == "20260102-000000-bbbb"
        assert await log.resolve("20260101") == "20260101-000000-aaaa"
        with pytest.raises(LogError, match="matches several"):
            await log.resolve("2026")
        with pytest.raises(LogError, match="no session 'nope'"):
            await log.resolve("nope")


async def test_a_log_from_a_newer_cockpit_is_refused(db: Path) -> None:
    async with EventLog.open(db):
        pass
    with sqlite3.connect(db) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LogError, match="newer cockpit"):
        async with EventLog.open(db):
            pass


async def test_files_that_are_not_logs_are_refused_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LogError, match="not a readable event log"):
        async with EventLog.open(garbage):
            pass
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE t (x)")
    with pytest.raises(LogError, match="not a cockpit event log"):
        async with EventLog.open(other):
            pass
    with pytest.raises(LogError, match="no such event log"):
        async with EventLog.open(tmp_path / "absent.db", create=False):
            pass


async def test_a_write_failure_surfaces_instead_of_hanging(db: Path) -> None:
    async with EventLog.open(db) as log:
        log.append(started())
        await log.flush()
        log.append(started())  # same (session, seq): violates the UNIQUE constraint
        with pytest.raises(LogError, match="writing the event log failed"):
            await log.flush()
        with pytest.raises(LogError):
            log.append(started("s2"))


def test_an_unclosed_error_path_does_not_hang_the_interpreter(tmp_path: Path) -> None:
    """aiosqlite's thread is not a daemon: prove the process exits after an error mid-session."""
    script = f"""
import asyncio
from cockpit.core.eventlog import EventLog
async def main():
    async with EventLog.open({str(tmp_path / 'x.db')!r}) as log:
        raise RuntimeError("boom")
try:
    asyncio.run(main())
except RuntimeError:
    print("exited")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.strip() == "exited", done.stderr
