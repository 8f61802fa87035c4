"""The SQLite event log on a real file: durability, batching, schema, permissions, paging."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import events as ev
from cockpit.core.eventlog import FLUSH_EVENTS, EventLog, LogError
from cockpit.core.logschema import SCHEMA_VERSION
from tests.fake_ollama import wait_until


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


async def test_events_are_batched_into_few_immediate_transactions(db: Path) -> None:
    """Many appends between two flushes reach SQLite as a handful of commits, not one each,
    and each opens with BEGIN IMMEDIATE (a deferred one can fail at once with BUSY_SNAPSHOT
    when another process wrote meanwhile: REFERENCE-2 L.1)."""
    async with EventLog.open(db) as log:
        statements: list[str] = []
        await log._db.set_trace_callback(statements.append)  # SQLite's own statement trace
        log.append(started())
        for event in tokens(3 * FLUSH_EVENTS):
            log.append(event)
        await log.flush()
        await log._db.set_trace_callback(None)  # type: ignore[arg-type]  # None: off
    commits = statements.count("COMMIT")
    assert 1 <= commits <= 4
    assert statements.count("BEGIN IMMEDIATE") == commits
    assert not any(s.startswith("BEGIN") and s != "BEGIN IMMEDIATE" for s in statements)


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
    """A failure that cannot pass is fatal at once: the flush, later appends and the close all
    raise it, and it says where the unwritten event went."""
    with pytest.raises(LogError, match="writing the event log failed") as closed:
        async with EventLog.open(db) as log:
            log.append(started())
            await log.flush()
            log.append(started())  # same (session, seq): violates the UNIQUE constraint
            with pytest.raises(LogError, match="writing the event log failed") as flushed:
                await log.flush()
            with pytest.raises(LogError):
                log.append(started("s2"))
    assert closed.value is flushed.value is log.failure
    assert log.rescue_path is not None and str(log.rescue_path) in str(closed.value)
    assert [r["type"] for r in read_rescue(log.rescue_path)] == ["session_started"]


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


# -- a log that cannot write: stuck, then recovered; or fatal, and rescued ---------------------


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reached the loop's exception handler ('Exception in callback', 'Task exception was
    never retrieved', 'Future exception was never retrieved'): must stay empty."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    gc.collect()  # unretrieved future exceptions are reported when the future is collected
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert seen == []


def hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another process's writer (a backup, a `sqlite3` shell): `BEGIN IMMEDIATE`, an insert,
    and the transaction left open."""
    holder = sqlite3.connect(db, isolation_level=None, timeout=30)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO events (session, agent, seq, ts, type, data) "
                   "VALUES ('holder', NULL, 1, 0, 'state_set', '{}')")
    return holder


def logged(db: Path, session: str = "s1") -> list[tuple[int, int, str]]:
    """(id, seq, data) of a session's rows, in id order, read by another connection."""
    return rows(db, f"SELECT id, seq, data FROM events WHERE session = '{session}' "
                    "ORDER BY id")  # type: ignore[return-value]


def assert_landed_once_in_order(db: Path, appended: list[ev.BaseEvent]) -> None:
    stored = logged(db)
    assert [seq for _id, seq, _data in stored] == [e.seq for e in appended]
    ids = [id_ for id_, _seq, _data in stored]
    assert ids == sorted(set(ids))  # strictly increasing: log order is append order
    texts = [json.loads(data).get("text") for _id, _seq, data in stored]
    assert texts == [getattr(e, "text", None) for e in appended]


def read_rescue(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_locked_log_reports_stuck_queues_and_lands_everything_once(
        db: Path, loop_errors: list[dict[str, Any]]) -> None:
    """Default timings: a write lock held past STUCK_AFTER is reported, nothing is lost or
    doubled, and the log says when it is healthy again."""
    causes: list[str | None] = []
    async with EventLog.open(db) as log:
        log.add_health_listener(causes.append)
        appended: list[ev.BaseEvent] = [started()]
        log.append(appended[0])
        await log.flush()
        holder = hold_write_lock(db)
        first = tokens(50)
        for event in first:
            log.append(event)
        waiting = asyncio.create_task(log.flush())
        await wait_until(lambda: bool(causes), 30, "the log to report itself stuck")
        assert log.stuck is not None and causes == [log.stuck]
        assert log.stuck.startswith("the event log is locked by another process")
        assert not waiting.done()  # a flush waits while the log is stuck
        assert logged(db) == logged(db)[:1]  # nothing of the failed batch landed
        later = tokens(50, first_seq=52)
        for event in later:  # appends keep queueing behind the batch being retried
            log.append(event)
        holder.execute("COMMIT")
        holder.close()
        await asyncio.wait_for(waiting, 30)
        await log.flush()
        assert causes == [causes[0], None] and log.stuck is None
    assert_landed_once_in_order(db, appended + first + later)
    assert rows(db, "SELECT count(*) FROM events WHERE session = 'holder'") == [(1,)]


async def test_a_lock_released_by_rollback_lands_the_batch_and_reports_recovery(
        db: Path, loop_errors: list[dict[str, Any]]) -> None:
    causes: list[str | None] = []
    async with EventLog.open(db, stuck_after=0.3, retry_first=0.05, retry_max=0.2,
                             busy_timeout=0.1) as log:
        log.add_health_listener(causes.append)
        log.append(started())
        holder = hold_write_lock(db)
        batches = [tokens(30, first_seq=2 + 30 * n) for n in range(5)]
        for batch in batches:  # several batches' worth, arriving over several retries
            for event in batch:
                log.append(event)
            await asyncio.sleep(0.06)  # not a wait for anything: spreads the appends out
        await wait_until(lambda: bool(causes), 30, "the log to report itself stuck")
        assert rows(db) == [(0,)]
        holder.rollback()
        holder.close()
        await asyncio.wait_for(log.flush(), 30)
        assert causes == [causes[0], None]
    assert_landed_once_in_order(db, [started(), *[e for b in batches for e in b]])


async def test_closing_a_stuck_log_gives_up_after_its_grace_and_rescues_the_rest(
        db: Path, loop_errors: list[dict[str, Any]]) -> None:
    log_ref: list[EventLog] = []
    unwritten = tokens(20)
    with pytest.raises(LogError) as closed:
        async with EventLog.open(db, stuck_after=0.2, retry_first=0.05, retry_max=0.1,
                                 busy_timeout=0.1, close_grace=1.0) as log:
            log_ref.append(log)
            log.append(started())
            await log.flush()
            holder = hold_write_lock(db)
            for event in unwritten:
                log.append(event)
            waiting = asyncio.create_task(log.flush())
            await wait_until(lambda: log.stuck is not None, 30, "the log to be stuck")
    log = log_ref[0]
    with pytest.raises(LogError) as flushed:
        await waiting
    assert flushed.value is closed.value
    message = str(closed.value)
    assert "could wait no longer at close" in message and "locked by another process" in message
    assert log.rescue_path is not None and log.rescue_path.parent == db.parent
    assert f"20 events of session s1 that no log file holds were saved to {log.rescue_path}" \
        in message
    rescued = read_rescue(log.rescue_path)
    assert [r["seq"] for r in rescued] == [e.seq for e in unwritten]
    assert [r["data"]["text"] for r in rescued] == [e.text for e in unwritten]  # type: ignore[attr-defined]
    assert {r["id"] for r in rescued} == {None}
    assert set(rescued[0]) == {"id", "session", "agent", "seq", "type", "ts", "data"}
    assert stat.S_IMODE(log.rescue_path.stat().st_mode) == 0o600
    holder.rollback()
    holder.close()
    assert len(logged(db)) == 1  # only what landed before the lock


async def test_a_deleted_log_is_fatal_and_nothing_acknowledged_is_lost(
        db: Path, loop_errors: list[dict[str, Any]]) -> None:
    """WAL would write on into the unlinked file and lose it all at close: instead the log
    gives up at its next batch, copies the orphan, and rescues what the copy lacks."""
    failures: list[LogError] = []
    log_ref: list[EventLog] = []
    before: list[ev.BaseEvent] = [started(), *tokens(10)]
    after = tokens(5, first_seq=12)
    with pytest.raises(LogError) as closed:
        async with EventLog.open(db) as log:
            log_ref.append(log)
            log.add_failure_listener(failures.append)
            for event in before:
                log.append(event)
            await log.flush()
            os.unlink(db)  # the usual accident: the main file only
            for event in after:
                log.append(event)
            with pytest.raises(LogError) as flushed:
                await asyncio.wait_for(log.flush(), 30)
            with pytest.raises(LogError):
                log.append(tokens(1, first_seq=99)[0])
    log = log_ref[0]
    assert failures == [closed.value] and flushed.value is closed.value
    message = str(closed.value)
    assert message.startswith(f"{db} was deleted while cockpit was writing to it")
    assert log.rescue_copy is not None and log.rescue_copy.parent == db.parent
    assert log.rescue_path is not None and log.rescue_path.parent == db.parent
    assert str(log.rescue_copy) in message
    assert f"5 events of session s1 that no log file holds were saved to {log.rescue_path}" \
        in message
    # Exactly the events in no surviving file: the copy holds what was committed, the JSON
    # Lines the rest; together, every event once.
    copied = [seq for _id, seq, _data in logged(log.rescue_copy)]
    assert copied == [e.seq for e in before]
    assert [r["seq"] for r in read_rescue(log.rescue_path)] == [e.seq for e in after]
    assert not db.exists()


async def test_a_deleted_log_is_noticed_while_idle(db: Path,
                                                   loop_errors: list[dict[str, Any]]) -> None:
    failures: list[LogError] = []
    log_ref: list[EventLog] = []
    with pytest.raises(LogError) as closed:
        async with EventLog.open(db) as log:
            log_ref.append(log)
            log.add_failure_listener(failures.append)
            log.append(started())
            await log.flush()
            os.unlink(db)
            await wait_until(lambda: bool(failures), 30, "the idle check to notice")
    assert failures == [closed.value]
    assert log_ref[0].rescue_path is None  # nothing unwritten; the copy has the session
    assert [seq for _id, seq, _data in logged(log_ref[0].rescue_copy or db)] == [1]
    assert "with every event it committed" in str(closed.value)


async def test_a_log_replaced_under_the_process_is_fatal_and_the_replacement_is_untouched(
        tmp_path: Path, db: Path, loop_errors: list[dict[str, Any]]) -> None:
    other = tmp_path / "other.db"
    async with EventLog.open(other) as replacement:
        replacement.append(started("other"))
    log_ref: list[EventLog] = []
    with pytest.raises(LogError) as closed:
        async with EventLog.open(db) as log:
            log_ref.append(log)
            log.append(started())
            await log.flush()
            os.rename(other, db)
            unwritten = tokens(3)
            for event in unwritten:
                log.append(event)
            await asyncio.wait_for(log.flush(), 30)
    assert str(closed.value).startswith(f"{db} was replaced by another file")
    assert log_ref[0].rescue_path is not None
    assert [r["seq"] for r in read_rescue(log_ref[0].rescue_path)] == [2, 3, 4]
    # the file now at the path was not written into, nor overwritten at close (L.2)
    assert rows(db, "SELECT session FROM events") == [("other",)]
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


async def test_a_corrupt_batch_error_is_fatal_not_retried(
        db: Path, loop_errors: list[dict[str, Any]]) -> None:
    """Only reasons that can pass are retried; a broken file or schema gives up at once."""
    log_ref: list[EventLog] = []
    with pytest.raises(LogError) as closed:
        async with EventLog.open(db, stuck_after=0.1) as log:
            log_ref.append(log)
            log.append(started())
            await log.flush()
            with sqlite3.connect(db) as other:
                other.execute("DROP TABLE events")
            log.append(tokens(1)[0])
            with pytest.raises(LogError, match="writing the event log failed: no such table"):
                await asyncio.wait_for(log.flush(), 30)
    assert log_ref[0].stuck is None
    assert "1 event of session s1 that no log file holds was saved to" in str(closed.value)


def test_no_traceback_reaches_the_terminal_when_the_log_is_deleted(tmp_path: Path) -> None:
    script = f"""
import asyncio, os
from cockpit.core import events as ev
from cockpit.core.eventlog import EventLog, LogError
db = {str(tmp_path / 'x.db')!r}
async def main():
    async with EventLog.open(db, check_every=0.1) as log:
        failed = asyncio.Event()
        log.add_failure_listener(lambda error: failed.set())
        log.append(ev.SessionStarted(session="s", seq=1, ts=1.0, crew="c",
                                     config={{"agents": []}}, pid=1, version="t"))
        await log.flush()
        os.unlink(db)
        waiting = [asyncio.ensure_future(log.flush()) for _ in range(3)]
        for seq in range(2, 50):
            log.append(ev.TokenStreamed(session="s", agent="a", seq=seq, ts=1.0, text="x"))
        await asyncio.wait_for(failed.wait(), 30)
        await asyncio.gather(*waiting, return_exceptions=True)
try:
    asyncio.run(main())
except LogError as error:
    print("LogError:", error)
"""
    done = subprocess.run([sys.executable, "-X", "dev", "-c", script], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.startswith("LogError: ") and "48 events of session s" in done.stdout
    assert done.stderr == ""


# -- read-only media ---------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str, why: str) -> Iterator[Path]:
    """A small tmpfs mounted at `where` (needs root or CAP_SYS_ADMIN; else the test skips)."""
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip(f"{why} needs mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(where)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"{why} needs a tmpfs mount, not permitted here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def read_only_copy(files: list[Path], where: Path) -> Iterator[Path]:
    """`files` copied into a directory nothing can write: a tmpfs remounted read-only as root
    (root ignores permissions, so a chmod would prove nothing), else a mode 0555 directory."""
    with contextlib.ExitStack() as stack:
        root = os.geteuid() == 0
        if root:
            stack.enter_context(tmpfs(where, "16m", "read-only media, as root,"))
        else:
            where.mkdir()
            stack.callback(where.chmod, 0o755)
        for file in files:
            shutil.copy2(file, where / file.name)
        if root:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        else:
            where.chmod(0o555)
        with pytest.raises(OSError):
            (where / "probe").touch()
        yield where


async def test_a_full_disk_reports_stuck_and_every_event_lands_once_space_is_freed(
        tmp_path: Path, loop_errors: list[dict[str, Any]]) -> None:
    with tmpfs(tmp_path / "small", "2m", "a full disk") as small:
        db = small / "cockpit.db"
        causes: list[str | None] = []
        async with EventLog.open(db, stuck_after=0.3, retry_first=0.05, retry_max=0.2) as log:
            log.add_health_listener(causes.append)
            appended: list[ev.BaseEvent] = [started()]
            log.append(appended[0])
            await log.flush()
            filler = small / "filler"
            with filler.open("wb") as out, contextlib.suppress(OSError):
                while True:  # until ENOSPC
                    out.write(b"\0" * 65536)
                    out.flush()
            big: list[ev.BaseEvent] = [
                ev.TokenStreamed(session="s1", agent="a", seq=2 + i, ts=101.0 + i,
                                 text=f"{i} " + "x" * 60_000) for i in range(8)]
            for event in big:
                log.append(event)
            waiting = asyncio.create_task(log.flush())
            await wait_until(lambda: bool(causes), 30, "the log to report the full disk")
            assert causes == [log.stuck] and (log.stuck or "").startswith("the disk is full")
            assert len(logged(db)) == 1 and not waiting.done()
            later = tokens(5, first_seq=10)
            for event in later:
                log.append(event)
            filler.unlink()
            await asyncio.wait_for(waiting, 30)
            await log.flush()
            assert causes == [causes[0], None] and log.stuck is None
        assert_landed_once_in_order(db, appended + big + later)


async def write_session(db: Path) -> None:
    async with EventLog.open(db) as log:
        log.append(started())
        for event in tokens(30):
            log.append(event)
        log.append(ev.AgentFinished(session="s1", agent="a", seq=32, ts=140.0, output="done"))
        log.append(ev.SessionFinished(session="s1", seq=33, ts=141.0, outcome="finished",
                                      agents={"a": "finished"}))


def test_a_cleanly_closed_log_on_read_only_media_can_be_read_by_every_reader(
        tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cockpit.cli import main

    asyncio.run(write_session(db))
    assert not Path(f"{db}-wal").exists()  # cleanly closed: mode=ro alone cannot open it
    with read_only_copy([db], tmp_path / "media") as media:
        copy = media / db.name

        async def read() -> list[ev.BaseEvent]:
            async with EventLog.open(copy, readonly=True) as log:
                assert [s.id for s in await log.sessions()] == ["s1"]
                return [e async for e in log.iter_events("s1")]

        assert len(asyncio.run(read())) == 33
        capsys.readouterr()
        assert main(["sessions", "--db", str(copy)]) == 0
        assert "s1" in capsys.readouterr().out
        assert main(["export", "last", "--db", str(copy)]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 33
        assert main(["report", "last", "--db", str(copy)]) == 0
        assert capsys.readouterr().out
        assert main(["replay", "last", "--headless", "--db", str(copy)]) == 0
        assert "t0 t1" in capsys.readouterr().out
        assert sorted(p.name for p in media.iterdir()) == [db.name]  # nothing was created


def test_a_log_copied_with_its_wal_and_shm_on_read_only_media_is_read_whole(
        tmp_path: Path, db: Path) -> None:
    asyncio.run(write_session(db))
    keeper = sqlite3.connect(db)  # a reader open across the writer's close: -wal, -shm stay
    try:
        assert keeper.execute("SELECT count(*) FROM events").fetchone() == (33,)

        async def write_more() -> None:
            async with EventLog.open(db) as log:
                log.append(started("s2"))
                for event in tokens(10, session="s2"):
                    log.append(event)

        asyncio.run(write_more())
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert all(f.exists() for f in files) and files[1].stat().st_size > 0
        with read_only_copy(files, tmp_path / "media") as media:

            async def read() -> list[int]:
                async with EventLog.open(media / db.name, readonly=True) as log:
                    return [len([e async for e in log.iter_events(s)]) for s in ("s1", "s2")]

            assert asyncio.run(read()) == [33, 11]  # the WAL's content too, not a stale view
        async def open_without_shm(path: Path) -> None:
            async with EventLog.open(path, readonly=True):
                pass

        with (read_only_copy(files[:2], tmp_path / "media2") as media,
              pytest.raises(LogError, match="has a -wal file and no -shm")):
            asyncio.run(open_without_shm(media / db.name))  # immutable=1 would be stale
    finally:
        keeper.close()


async def test_a_cancelled_close_of_a_stuck_log_still_rescues_and_says_so(
        db: Path, loop_errors: list[dict[str, Any]]) -> None:
    """Ctrl-C during a long close: the batch is settled, rescued, and the LogError wins over
    the cancellation (an interrupt must not hide what was lost)."""
    log = await EventLog._connect(db, create=True, patience={
        "stuck_after": 0.2, "retry_first": 0.05, "retry_max": 0.1, "busy_timeout": 0.1})
    log.append(started())
    await log.flush()
    holder = hold_write_lock(db)
    try:
        for event in tokens(7):
            log.append(event)
        await wait_until(lambda: log.stuck is not None, 30, "the log to be stuck")
        closing = asyncio.create_task(log.close())
        await wait_until(lambda: log._closing, 30, "the writer to take the close")
        assert not closing.done()  # retrying within its 30 s grace
        closing.cancel()
        with pytest.raises(LogError, match="closed before everything appended was committed"):
            await closing
    finally:
        holder.rollback()
        holder.close()
    assert log.rescue_path is not None
    assert [r["seq"] for r in read_rescue(log.rescue_path)] == list(range(2, 9))
    assert len(logged(db)) == 1


V1_SCHEMA = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, crew TEXT NOT NULL, agents INTEGER NOT NULL,
    started_at REAL NOT NULL, ended_at REAL, outcome TEXT, pid INTEGER);
CREATE TABLE events (id INTEGER PRIMARY KEY, session TEXT NOT NULL, agent TEXT,
    seq INTEGER NOT NULL, ts REAL NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
    UNIQUE (session, seq));
CREATE INDEX events_by_session ON events (session, id);
INSERT INTO sessions VALUES ('old', 'crew', 1, 1.0, NULL, NULL, 4242);
PRAGMA user_version = 1;
"""


async def test_a_schema_1_log_is_read_as_is_and_migrated_once_by_concurrent_writers(
        tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    with sqlite3.connect(db) as connection:
        connection.executescript(V1_SCHEMA)
    async with EventLog.open(db, readonly=True) as log:  # a reader never migrates
        (row,) = await log.sessions()
        assert row.pid == 4242 and row.hostname is None and row.proc_start is None

    async def open_for_writing() -> int:
        async with EventLog.open(db) as log:
            return len(await log.sessions())

    with contextlib.closing(sqlite3.connect(db)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
    assert await asyncio.gather(open_for_writing(), open_for_writing()) == [1, 1]
    with contextlib.closing(sqlite3.connect(db)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = [r[1] for r in connection.execute("PRAGMA table_info(sessions)")]
    assert columns[-2:] == ["hostname", "proc_start"]
