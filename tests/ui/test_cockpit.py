"""The TUI under Pilot, driven by keys, against the fake Ollama server; checks screen and log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.widgets import DataTable, Input, TextArea

from cockpit.core import events as ev
from cockpit.core.eventlog import EventLog
from cockpit.ui.app import CockpitApp, make_app
from cockpit.ui.screens.cockpit import CockpitScreen
from cockpit.ui.screens.help import HelpScreen
from cockpit.ui.screens.inspector import InspectorScreen
from cockpit.ui.screens.modals import ConfirmModal, InputModal
from cockpit.ui.screens.value_editor import ValueEditor
from cockpit.ui.widgets.agent_grid import MIN_PANE_HEIGHT
from cockpit.ui.widgets.agent_pane import AgentPane
from cockpit.ui.widgets.stream_view import StreamView
from tests.conftest import make_crew, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

WORDS = [f"w{i} " for i in range(300)]
HOLD = {"tokens": WORDS, "stall_after": 5}
"""The first requests stop after 5 tokens and hold the stream open until the client closes it,
so a test can take its time with keys; requests after an intervention stream everything."""
SIZE = (160, 48)


def app_for(fake: FakeOllama, db: Path, agents: list[dict[str, Any]], **crew: Any) -> CockpitApp:
    return make_app(make_crew(fake.url, agents, **crew), db, watch_themes=False)


def pane(app: CockpitApp, name: str) -> AgentPane:
    return app.cockpit.query_one(f"#pane-{name}", AgentPane)


def header(app: CockpitApp, name: str) -> str:
    return str(pane(app, name).query_one("#header").render())


def body(app: CockpitApp, name: str) -> str:
    return "\n".join(pane(app, name).query_one("#body", StreamView).lines)


def input_ready(app: CockpitApp) -> bool:
    """An input modal is up and its input has the focus. Keys typed before that (a loaded
    machine can take a while to mount the modal) would go to the screen underneath."""
    return isinstance(app.screen, InputModal) and isinstance(app.focused, Input)


def editor_ready(app: CockpitApp) -> bool:
    """The board value editor is up and its text area has the focus (see `input_ready`)."""
    return isinstance(app.screen, ValueEditor) and isinstance(app.focused, TextArea)


async def logged(db: Path) -> list[ev.BaseEvent]:
    async with EventLog.open(db, create=False) as log:
        return [e async for e in log.iter_events(await log.resolve("last"))]


async def test_three_agents_stream_into_their_panes(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=["Hello", " from", " the", " model."])}
    async with FakeOllama(scripts) as fake:
        app = app_for(fake, db, [{"name": "a"}, {"name": "b"}, {"name": "c", "after": ["a"]}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: all(a.status == "finished"
                                         for a in app.view.agents.values()) and
                             app.view.agents != {}, what="every agent finished")
            await pilot.pause()
            for name in "abc":
                assert "finished" in header(app, name)
                assert body(app, name) == "Hello from the model."
            assert app.sub_title.startswith("0 streaming · 3 finished · 0 failed")


async def test_pause_key_closes_the_stream_and_resumes(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD, faults_for=2)}) as fake:
        app = app_for(fake, db, [{"name": "a"}, {"name": "b", "task": "Say hello, b."}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("b") is not None
                             and app.view.agents["b"].tokens > 3, what="b streaming")
            await pilot.press("2", "p")
            await wait_until(lambda: "paused" in header(app, "b"), what="b's pane says paused")
            assert app.view.agents["a"].status != "paused"
            # b's own request, by its task: the server may see the close after the pane shows
            # it, so "whichever request is already disconnected" could pick a's.
            [request] = [r for r in fake.chat_requests()
                         if r.body and r.body["messages"][-1]["content"] == "Say hello, b."]
            await wait_until(lambda: request.disconnected, what="the server saw the close")
            await pilot.press("p")
            await wait_until(lambda: app.view.agents["b"].status == "finished",
                             what="b resumed and finished")
            lines = body(app, "b").split("\n")
            assert "── paused by person ──" in lines and "── resumed by person ──" in lines
            reply = "".join(line for line in lines if not line.startswith("──"))
            assert reply.replace(" ", "") == "".join(WORDS).replace(" ", "")
    types = [e.type for e in await logged(db) if e.agent == "b"]  # type: ignore[attr-defined]
    assert "agent_paused" in types and "agent_resumed" in types


async def test_redirect_modal_sends_the_instruction(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD, faults_for=1)}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].tokens > 3, what="a streaming")
            await pilot.press("1", "r")
            await wait_until(lambda: input_ready(app), what="the modal")
            await pilot.press(*"Be brief.", "enter")
            await wait_until(lambda: any(m.get("content") == "Be brief."
                                         for m in app.view.agents["a"].messages),
                             what="the redirect to come back as an event")
            assert "redirected by person: Be brief." in body(app, "a")
    redirected = [e for e in await logged(db) if isinstance(e, ev.AgentRedirected)]
    assert [e.instruction for e in redirected] == ["Be brief."]


async def test_stop_asks_first_then_restart(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD, faults_for=1)}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].tokens > 2, what="a streaming")
            await pilot.press("x")
            await wait_until(lambda: isinstance(app.screen, ConfirmModal), what="the question")
            await pilot.press("n")
            await wait_until(lambda: isinstance(app.screen, CockpitScreen), what="declined")
            assert app.view.agents["a"].status != "stopped"
            await pilot.press("x", "y")
            await wait_until(lambda: "stopped" in header(app, "a"), what="stopped shown")
            screen = app.screen
            assert isinstance(screen, CockpitScreen)
            assert screen.check_action("restart", ()) is True
            assert screen.check_action("pause", ()) is None  # dimmed: nothing to pause
            await pilot.press("R")
            await wait_until(lambda: app.view.agents["a"].status == "finished",
                             what="restarted agent finished")
    types = [e.type for e in await logged(db) if e.agent == "a"]  # type: ignore[attr-defined]
    assert types.index("agent_stopped") < types.index("agent_restarted")


async def test_quit_confirms_while_agents_run_and_leaves_the_session_resumable(
    db: Path,
) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].tokens > 2, what="a streaming")
            await pilot.press("q")
            await wait_until(lambda: isinstance(app.screen, ConfirmModal), what="the question")
            await pilot.press("y")
            await pilot.pause()
        assert app.return_code == 0 and app.return_value == 130
    events = await logged(db)
    finished = [e for e in events if isinstance(e, ev.SessionFinished)]
    assert [e.outcome for e in finished] == ["interrupted"]
    tokens = "".join(e.text for e in events if isinstance(e, ev.TokenStreamed))
    assert tokens and "".join(WORDS).startswith(tokens)


async def test_board_edit_is_a_state_set_by_the_person(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        app = app_for(fake, db, [{"name": "a"}], state={"topic": "old", "n": 3})
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: "topic" in app.view.board, what="board loaded")
            await pilot.press("s")
            await wait_until(lambda: isinstance(app.screen, InspectorScreen)
                             and app.screen.query_one("#board", DataTable).row_count > 0,
                             what="the board shown")
            assert app.screen.query_one("#board", DataTable).row_count == 2
            await pilot.press("e")
            await wait_until(lambda: editor_ready(app), what="the value editor")
            await pilot.press("f7", *"new topic", "ctrl+s")  # select all, type over it, save
            await wait_until(lambda: app.view.board["topic"].value == "new topic",
                             what="the edit to come back as an event")
            assert app.view.board["topic"].by == "person"
            assert app.view.board["topic"].version == 2
    sets = [e for e in await logged(db) if isinstance(e, ev.StateSet) and e.key == "topic"]
    assert [(e.key, e.value, e.by) for e in sets] == [("topic", "new topic", "person")]


async def test_keys_that_arrive_in_one_burst_are_applied_in_order(db: Path) -> None:
    """A terminal may hand over "ctrl+u 0.3 Enter" in one read (tmux send-keys, a paste, a
    fast typist). Textual would run ctrl+u after the text (textual#6605) and save nothing."""
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        app = app_for(fake, db, [{"name": "a"}], state={"version": "0.1"})
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: "version" in app.view.board, what="board loaded")
            await pilot.press("s", "e")
            await wait_until(lambda: editor_ready(app), what="the value editor")
            for key, character in [("end", None), ("ctrl+u", None), ("0", "0"),
                                   ("full_stop", "."), ("3", "3"), ("ctrl+s", None)]:
                app.post_message(events.Key(key, character))  # all at once, as the driver does
            await wait_until(lambda: app.view.board["version"].value == "0.3",
                             what="the edit to come back as an event")


async def test_model_output_cannot_inject_markup_or_escapes(db: Path) -> None:
    tokens = ["[bold red]x[/]", " \x1b[2J", "\x1b]0;pwned\x07", " [link=http://e]y[/link]"]
    async with FakeOllama({"m1": ModelScript(tokens=tokens)}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].status == "finished", what="finished")
            await pilot.pause()
            text = body(app, "a")
            assert text == "[bold red]x[/]  [link=http://e]y[/link]"
            assert "\x1b" not in text
            screenshot = app.export_screenshot()
            assert "[bold red]x[/]" in screenshot.replace("&#160;", " ")
    # The log keeps exactly what the model sent; only the display is neutralised.
    streamed = "".join(e.text for e in await logged(db) if isinstance(e, ev.TokenStreamed))
    assert streamed == "".join(tokens)


async def test_error_text_and_tabs_cannot_break_the_pane(db: Path) -> None:
    """Error texts come from the host and reach the pane as marker lines: they are sanitised
    like model text. A tab has no width in a strip, so it becomes spaces."""
    script = ModelScript(tokens=["a\tb ", "c "], error_after=2,
                         error_message="bad\x1b]0;pwned\x07 news\x1b[2J\there")
    async with FakeOllama({"m1": script}) as fake:
        app = app_for(fake, db, [{"name": "a"}], retries=0)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].status == "failed", what="failed")
            await pilot.pause()
            text = body(app, "a")
    assert "\x1b" not in text and "\x07" not in text and "\t" not in text
    assert text.startswith("a    b c")
    assert "── failed: Ollama reported an error mid-stream: bad news here ──" in text


async def test_failed_agent_shows_the_error_and_the_others_carry_on(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["fine"])}) as fake:
        app = app_for(fake, db, [{"name": "good"}, {"name": "bad", "model": "nope"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: len(app.view.agents) == 2 and app.view.agents["bad"].status
                             == "failed" and app.view.agents["good"].status == "finished",
                             what="one failed, one finished")
            await pilot.pause()
            assert "failed" in header(app, "bad")
            assert "── failed: Ollama answered 404: model 'nope' not found ──" in body(app, "bad")
            assert "1 failed" in app.sub_title


async def test_a_key_press_takes_effect_within_frames_while_8_agents_stream(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=[f"t{i} " for i in range(3000)])}) as fake:
        app = app_for(fake, db, [{"name": f"a{i}"} for i in range(8)])
        async with app.run_test(size=SIZE):
            await wait_until(lambda: len(app.view.agents) == 8 and all(
                a.tokens > 50 for a in app.view.agents.values()), what="all 8 streaming")
            assert app.bridge is not None
            before = app.bridge.frames
            # Post the keys as the terminal driver does: pilot.press waits for an idle queue,
            # which never comes while eight streams are running.
            app.post_message(events.Key("3", "3"))
            app.post_message(events.Key("p", "p"))
            await wait_until(lambda: "paused" in header(app, "a2"), what="a2 paused on screen")
            assert app.bridge.frames - before <= 6
            assert any(a.status != "paused" for a in app.view.agents.values())


async def test_help_lists_every_key_and_zoom_shows_one_pane(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["x"])}) as fake:
        app = app_for(fake, db, [{"name": "a"}, {"name": "b"}])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            await wait_until(lambda: isinstance(app.screen, HelpScreen)
                             and app.screen.query_one(DataTable).row_count > 0, what="the help")
            table = app.screen.query_one(DataTable)
            keys = {str(table.get_row_at(i)[1]) for i in range(table.row_count)}
            assert {"Pause/resume", "Redirect", "Stop", "Restart", "State", "Events", "Zoom",
                    "Approvals", "Tool details", "Quit", "Palette"} <= keys
            await pilot.press("escape", "2", "z")
            await wait_until(lambda: app.cockpit.grid.zoomed is pane(app, "b"), what="b zoomed")
            await pilot.press("z")
            await wait_until(lambda: app.cockpit.grid.zoomed is None, what="zoomed out")


async def test_keymap_remaps_a_key(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        crew = make_crew(fake.url, [{"name": "a"}], keymap={"cockpit.pause": "space"})
        app = make_app(crew, db, watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].tokens > 2, what="streaming")
            await pilot.press("space")
            await wait_until(lambda: app.view.agents["a"].status == "paused", what="paused")


@pytest.mark.parametrize("count", [1, 4, 9, 12])
async def test_grid_adapts_and_pages_without_squashing(db: Path, count: int) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["x"])}) as fake:
        app = app_for(fake, db, [{"name": f"a{i}"} for i in range(count)])
        async with app.run_test(size=(80, 24)) as pilot:

            def on_page() -> list[AgentPane]:
                return [p for p in app.cockpit.query(AgentPane) if p.display and
                        not p.has_class("-off-page")]

            if count > 9:  # past nine agents the cockpit opens on the agents table
                await wait_until(lambda: app.cockpit.agents_table.shown, what="the table")
                await pilot.press("v")

            # The first layout may precede the grid's resize handler, which pages the panes.
            await wait_until(lambda: bool(on_page()) and all(
                p.outer_size.height >= MIN_PANE_HEIGHT for p in on_page()),
                what=f"every pane on the page at least {MIN_PANE_HEIGHT} rows tall")
            shown = on_page()
            if count > len(shown):
                await pilot.press("right_square_bracket")
                await wait_until(lambda: not pane(app, f"a{len(shown)}").has_class("-off-page"),
                                 what="the next page")
