"""The replay player against a real log file: seeks never duplicate or skip events, and the
play head can cross long quiet spells while paused."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.core.eventlog import EventLog, LogError
from cockpit.core.replay import Player, Timeline
from cockpit.core.state import SessionState, fold
from tests.conftest import wait_until

CONFIG = {"name": "r", "model": "m", "host": "http://127.0.0.1:1",
          "agents": [{"name": "a", "task": "t", "after": []}]}


async def write_session(db: Path, times: list[float]) -> None:
    """session_started, agent_started, then one token per entry of `times`."""
    async with EventLog.open(db) as log:
        log.append(ev.SessionStarted(session="s", agent=None, seq=1, ts=times[0], crew="r",
                                     config=CONFIG, pid=1, version="test"))
        log.append(ev.AgentStarted(session="s", agent="a", seq=2, ts=times[0], model="m",
                                   host="h", messages=[]))
        for seq, ts in enumerate(times, start=3):
            log.append(ev.TokenStreamed(session="s", agent="a", seq=seq, ts=ts, text=f"{seq} "))


async def test_a_seek_while_the_player_reads_neither_repeats_nor_skips(db: Path) -> None:
    await write_session(db, [1000.0 + i * 0.0001 for i in range(6000)])
    async with EventLog.open(db, readonly=True) as log:
        timeline = await Timeline.load(log, "s")
        bus = EventBus()
        seen: list[int] = []
        bus.add_sink(lambda event: seen.append(event.seq))
        views: list[SessionState] = []
        player = Player(timeline, bus, lambda state, index: views.append(state))
        player.set_speed(16)
        task = asyncio.create_task(player.run())
        await asyncio.sleep(0)  # the player is now reading its first page
        await player.seek_index(3000)
        await wait_until(lambda: player.cursor == len(timeline), what="the end")
        task.cancel()
        full = fold([e async for e in log.iter_events("s")])
    after_seek = seen[seen.index(3001):] if 3001 in seen else seen
    assert after_seek == list(range(3001, len(timeline) + 1))  # seqs of events 3000..end
    replayed = views[-1]
    for event_seq in after_seek:
        replayed.apply(ev.TokenStreamed(session="s", agent="a", seq=event_seq, ts=0.0,
                                        text=f"{event_seq} "))
    assert replayed.agents["a"].partial == full.agents["a"].partial


async def test_seeking_forward_while_paused_crosses_a_long_quiet_spell(db: Path) -> None:
    await write_session(db, [0.0, 1.0, 2.0, 30.0, 31.0])
    async with EventLog.open(db, readonly=True) as log:
        timeline = await Timeline.load(log, "s")
        player = Player(timeline, EventBus(), lambda state, index: None)
        player.toggle()  # paused
        await player.seek(2.0)
        for _ in range(6):  # six presses of `right` (+5 s each)
            await player.seek(player.position + 5)
        assert player.position >= 30.0 and player.cursor >= len(timeline) - 1


async def test_a_replay_reads_only_cockpit_logs(tmp_path: Path) -> None:
    from cockpit.ui.replay_app import open_replay

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    with pytest.raises(LogError, match="not a readable event log"):
        await open_replay(other, "last")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(LogError, match="not a readable event log"):
        await open_replay(garbage, "last")


async def test_the_headless_transcript_is_the_logs_one_across_pages(db: Path) -> None:
    """`replay --headless` prints what `cockpit logs` prints: whole lines per agent (or whole
    replies), however the tokens interleave, across more than one page of rows; a speed
    only changes when the lines come."""
    import io

    from cockpit.core.replay import PAGE, write_transcript
    from cockpit.core.transcript import transcript

    config = {**CONFIG, "agents": [{"name": n, "task": "t", "after": []} for n in ("a", "bb")]}
    async with EventLog.open(db) as log:
        log.append(ev.SessionStarted(session="s", agent=None, seq=1, ts=0.0, crew="r",
                                     config=config, pid=1, version="test"))
        seq = 1
        for index in range(PAGE * 2 + 7):
            seq += 1
            agent = "a" if index % 3 else "bb"
            end = "\n" if index % 7 == 0 else " "
            text = f"{index}{end}" if index % 11 else "\x1b]0;t\x07"
            log.append(ev.TokenStreamed(session="s", agent=agent, seq=seq, ts=seq * 1e-6,
                                        text=text))
        log.append(ev.MessageCompleted(session="s", agent="a", seq=seq + 1, ts=1.0, content=""))
        log.append(ev.SessionFinished(session="s", agent=None, seq=seq + 2, ts=1.0,
                                      outcome="finished", agents={}))
    async with EventLog.open(db, readonly=True) as log:
        events = [event async for event in log.iter_events("s")]
        for by in ("line", "message"):
            out = io.StringIO()
            assert await write_transcript(log, "s", out, by=by) == len(events)
            assert out.getvalue().splitlines() == transcript(events, by=by)
            paced = io.StringIO()
            await write_transcript(log, "s", paced, speed=1000.0, by=by)
            assert paced.getvalue() == out.getvalue()
    lines = transcript(events)
    assert lines[1:4] == ["a  | 1 2 4 5 7", "a  | 8 10 13 14", "bb | 3 6 9 12 15 18 21"]
    assert "\x1b" not in "".join(lines) and len(lines) > PAGE // 4
