"""`cockpit replay` under Pilot: the replayed state equals the live one, the transport keys
work, the inspector shows the board at the cursor, and the log is never written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cockpit.core.state import SessionState
from cockpit.ui.replay_app import open_replay
from cockpit.ui.screens.inspector import InspectorScreen
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

WORDS = [f"w{i} " for i in range(80)]
SIZE = (160, 48)


async def record(db: Path) -> SessionState:
    """A live session with a pause, a redirect and a board edit; returns its final state.

    b's first reply holds after 10 tokens until the redirect cuts it off: streaming freely, it
    could finish while a's commands commit on a loaded machine, and a finished agent cannot be
    redirected."""
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.003),
               "hold": ModelScript(tokens=WORDS, delay=0.003, stall_after=10, faults_for=1)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "model": "hold"},
                                    {"name": "c", "after": ["a"]}], state={"topic": "old"})
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 10, what="a streaming")
            await session.supervisor.pause("a")
            await session.supervisor.set_state("topic", "new")
            await session.supervisor.resume("a")
            await wait_until(lambda: session.state.agents["b"].tokens >= 10, what="b streaming")
            await session.supervisor.redirect("b", "Shorter, please.")
            return await session.supervisor.wait()


def log_rows(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as connection:
        return (connection.execute("SELECT count(*) FROM events").fetchone()[0],
                connection.execute("SELECT count(*) FROM sessions").fetchone()[0])


def summary(state: SessionState) -> dict[str, object]:
    return {
        "agents": {name: (str(a.status), a.tokens, a.output, a.retries, a.interventions,
                          a.messages) for name, a in state.agents.items()},
        "board": {key: (e.value, e.by, e.version) for key, e in state.board.items()},
        "outcome": state.outcome,
    }


async def test_replay_builds_the_same_state_as_the_live_run_and_writes_nothing(
        db: Path) -> None:
    live = await record(db)
    before = log_rows(db)
    app = await open_replay(db, "last", speed=16)
    async with app.run_test(size=SIZE):
        await wait_until(lambda: app.source.player is not None
                         and app.source.player.cursor == len(app.source.timeline),
                         what="the replay's end")
        await wait_until(lambda: app.view.outcome == "finished", what="the last frame")
        assert summary(app.view) == summary(live)
        assert "finished" in str(app.cockpit.panes["c"].header.render())
    assert log_rows(db) == before  # not one event, not one session more


async def test_transport_keys_and_the_board_at_the_cursor(db: Path) -> None:
    await record(db)
    app = await open_replay(db, "last", speed=1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.source.player is not None, what="the timeline")
        player = app.source.player
        assert player is not None
        await pilot.press("space")
        await wait_until(lambda: not player.playing, what="paused")
        await pilot.press("plus", "plus")
        await wait_until(lambda: player.speed == 4.0, what="4x")
        await pilot.press("minus")
        await wait_until(lambda: player.speed == 2.0, what="2x")
        await pilot.press("end")
        await wait_until(lambda: player.cursor == len(app.source.timeline), what="the end")
        assert app.view.board["topic"].value == "new"
        assert all(str(a.status) == "finished" for a in app.view.agents.values())

        await pilot.press("home")
        await wait_until(lambda: player.cursor == 0, what="the start")
        assert app.view.agents == {} and app.cockpit.panes["a"].body.lines in ([], [""])

        await pilot.press("full_stop")
        await wait_until(lambda: player.cursor == 1 and app.view.crew != "", what="one step")
        assert app.view.board["topic"].value == "old"  # session_started: the initial board

        markers = app.source.timeline.markers
        edit = next(i for i, m in enumerate(markers) if m.kind == "intervention")
        pause_ts = app.source.timeline.markers[edit].ts
        await player.seek(pause_ts)  # the pause, before the board edit
        await pilot.press("s")
        await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="the inspector")
        await pilot.pause()
        assert app.view.board["topic"].value == "old"
        assert str(app.view.agents["a"].status) == "paused"
        await pilot.press("escape", "right")  # +5 s: past everything this short session did
        await wait_until(lambda: app.view.board["topic"].value == "new", what="the edit")
        await pilot.press("left")
        await wait_until(lambda: player.cursor < len(app.source.timeline), what="seeking back")
        assert not player.playing  # seeking keeps the transport state


async def test_resume_in_the_tui_continues_the_reply_on_screen(db: Path) -> None:
    from cockpit.core.eventlog import EventLog
    from cockpit.core.resume import load_resumable
    from cockpit.ui.app import make_app

    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.003)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:  # leaving it = quitting: interrupted
            await wait_until(lambda: session.state.agents["a"].tokens >= 10, what="a streaming")
        async with EventLog.open(db, create=False) as log:
            found = await load_resumable(log, "last")
        partial = found.state.agents["a"].partial
        assert partial and found.state.outcome == "interrupted"
        app = make_app(found.crew, db, watch_themes=False, resume=found.state)
        async with app.run_test(size=SIZE) as pilot:
            # The pane shows the logged partial at once, before any new token.
            assert " ".join(app.cockpit.panes["a"].body.lines).startswith(partial.strip()[:20])
            await wait_until(lambda: str(app.view.agents["a"].status) == "finished",
                             what="the resumed agent to finish")
            await pilot.pause()
            lines = app.cockpit.panes["a"].body.lines
            marks = [line for line in lines if line.startswith("── ")]
            assert len(marks) == 1 and marks[0].startswith("── interrupted at ")  # the quit
            shown = " ".join(" ".join(line for line in lines if line not in marks).split())
            assert shown == " ".join("".join(WORDS).split())  # nothing lost or repeated
        async with EventLog.open(db, create=False) as log:
            types = [e.type async for e in log.iter_events(found.state.session)]  # type: ignore[attr-defined]
    assert types.count("session_resumed") == 1 and types[-1] == "session_finished"


async def test_space_at_the_end_plays_again_and_home_shows_the_empty_start(db: Path) -> None:
    await record(db)
    app = await open_replay(db, "last", speed=16)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.source.player is not None
                         and app.source.player.cursor == len(app.source.timeline),
                         what="the replay's end")
        player = app.source.player
        assert player is not None
        await wait_until(lambda: app.view.outcome == "finished", what="the last frame")
        cursors: list[int] = []  # where the player is at each frame from here on
        app.events_applied.subscribe(app, lambda _: cursors.append(player.cursor),
                                     immediate=True)
        await pilot.press("space")  # at the end: from the start again, playing
        await wait_until(lambda: 0 in cursors, what="the seek back to the start")
        await wait_until(lambda: player.cursor == len(app.source.timeline)
                         and app.view.outcome == "finished", what="the end, played again")
        again = cursors[cursors.index(0):]
        assert player.playing and len(again) > 1 and again == sorted(again)

        await pilot.press("full_stop")  # stepping pauses (there is nothing left to step)
        await wait_until(lambda: not player.playing, what="paused")
        await pilot.press("home")
        await wait_until(lambda: player.cursor == 0, what="the start")
        await pilot.pause()
        panes = app.cockpit.panes
        # Before the first event: every pane as the crew declares it, nothing counted yet.
        assert "queued" in str(panes["a"].header.render())
        assert "waiting" in str(panes["c"].header.render())
        assert all(str(p.counts.render()).startswith("0 tok") for p in panes.values())
