"""The state inspector (`s`) under Pilot: a board value shown in full (`enter`), edited in the
value editor (`e`) and saved as a `state_set` by the person, and the conversation view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.containers import VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static, TextArea

from cockpit.core import events as ev
from cockpit.core.sources import ReplaySource
from cockpit.ui.app import CockpitApp
from cockpit.ui.replay_app import open_replay
from cockpit.ui.screens.inspector import InspectorScreen
from cockpit.ui.screens.modals import ConfirmModal, TextModal
from cockpit.ui.screens.value_editor import ValueEditor
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript
from tests.ui.test_cockpit import HOLD, SIZE, app_for, logged

HOSTILE = "[bold red]x[/] \x1b]52;c;cHduZWQ=\x07 \x1b[2J\u202e"
LONG = "\n".join(f"line {i} {HOSTILE}" for i in range(200))
BOARD: dict[str, Any] = {"a_long": LONG, "b_plan": [{"step": "one", "done": False}, "two"],
                         "c_count": 3, "d_note": "first line"}
"""The crew's [state]: a table would be flattened into dotted keys, so the JSON is a list."""


async def open_board(app: CockpitApp, pilot: Any, key: str) -> InspectorScreen:
    """`s`, then the cursor on `key`'s row."""
    await wait_until(lambda: key in app.view.board, what="the board")
    await pilot.press("s")
    await wait_until(lambda: isinstance(app.screen, InspectorScreen)  # composed, too
                     and [t.row_count for t in app.screen.query("#board").results(DataTable)]
                     == [len(app.view.board)], what="the board shown")
    screen = app.screen
    assert isinstance(screen, InspectorScreen)
    table = screen.query_one("#board", DataTable)
    keys = [table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value
            for i in range(table.row_count)]
    await pilot.press(*["down"] * keys.index(key))
    await wait_until(lambda: table.cursor_row == keys.index(key), what=f"{key} selected")
    return screen


def editor(app: CockpitApp) -> ValueEditor | None:
    """The value editor, once it is up with its text area focused (keys go there)."""
    screen = app.screen
    return screen if isinstance(screen, ValueEditor) and isinstance(app.focused, TextArea) \
        else None


def sets(events: list[ev.BaseEvent], key: str) -> list[tuple[Any, str]]:
    return [(e.value, e.by) for e in events if isinstance(e, ev.StateSet) and e.key == key]


async def test_enter_shows_a_long_value_in_full_inert_and_scrollable(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        app = app_for(fake, db, [{"name": "a"}], state=BOARD)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_board(app, pilot, "a_long")
            await pilot.press("enter")
            await wait_until(lambda: isinstance(app.screen, TextModal)
                             and bool(app.screen.query(Static)), what="the value")
            shown = app.screen.query_one(Static).render()
            text = str(shown)
            assert "line 0 [bold red]x[/]" in text and "line 199" in text  # all of it, no markup
            assert not any(c in text for c in "\x1b\x07\u202e")
            scroll = app.screen.query_one(VerticalScroll)
            await wait_until(lambda: scroll.max_scroll_y > 0, what="a value taller than the box")
            await pilot.press("end")
            await wait_until(lambda: scroll.scroll_y == scroll.max_scroll_y > 0,
                             what="scrolled to its end")
            await pilot.press("escape")
            await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="back")


async def test_a_json_value_is_edited_as_json_and_a_parse_error_keeps_the_text(
        db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        app = app_for(fake, db, [{"name": "a"}], state=BOARD)
        async with app.run_test(size=SIZE) as pilot:
            await open_board(app, pilot, "b_plan")
            await pilot.press("e")
            await wait_until(lambda: editor(app) is not None, what="the value editor")
            area = app.screen.query_one(TextArea)
            assert area.text == '[\n  {\n    "step": "one",\n    "done": false\n  },\n  "two"\n]'
            await pilot.press("f7", *'[{"step": "one"},', "enter", *"done]", "ctrl+s")
            error = app.screen.query_one("#error", Static)
            await wait_until(lambda: "line 2, column 1" in str(error.render()),
                             what="where the JSON is wrong")
            assert isinstance(app.screen, ValueEditor)  # still open, nothing lost
            assert area.text == '[{"step": "one"},\ndone]'
            await pilot.press("ctrl+a", "shift+end", *'"done", true]', "ctrl+s")
            await wait_until(lambda: app.view.board["b_plan"].version == 2, what="the edit")
            assert isinstance(app.screen, InspectorScreen)
            assert app.view.board["b_plan"].value == [{"step": "one"}, "done", True]

            # A number stays a number; text typed over it must be JSON too.
            await pilot.press("down")
            await pilot.press("e")
            await wait_until(lambda: editor(app) is not None and editor(app).key == "c_count",
                             what="the editor on c_count")
            await pilot.press("f7", *"42", "ctrl+s")
            await wait_until(lambda: app.view.board["c_count"].value == 42, what="c_count 42")
    events = await logged(db)
    assert sets(events, "b_plan")[-1] == ([{"step": "one"}, "done", True], "person")
    assert sets(events, "c_count")[-1] == (42, "person")


async def test_a_string_is_edited_as_plain_text_and_escape_asks_first(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        app = app_for(fake, db, [{"name": "a"}], state=BOARD)
        async with app.run_test(size=SIZE) as pilot:
            await open_board(app, pilot, "d_note")
            await pilot.press("e")
            await wait_until(lambda: editor(app) is not None, what="the value editor")
            area = app.screen.query_one(TextArea)
            assert area.text == "first line"
            await pilot.press("escape")  # unchanged: closes at once
            await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="closed")

            await pilot.press("e")
            await wait_until(lambda: editor(app) is not None, what="the value editor again")
            area = app.screen.query_one(TextArea)
            await pilot.press("end", "enter", *"{second} line", "escape")
            await wait_until(lambda: isinstance(app.screen, ConfirmModal), what="asks first")
            await pilot.press("n")
            await wait_until(lambda: editor(app) is not None, what="back in the editor")
            assert area.text == "first line\n{second} line"  # kept
            await pilot.press("ctrl+s")
            await wait_until(lambda: app.view.board["d_note"].version == 2, what="the edit")
            assert app.view.board["d_note"].value == "first line\n{second} line"

            await pilot.press("e")
            await wait_until(lambda: editor(app) is not None, what="the editor, a third time")
            await pilot.press("f7", *"thrown away", "escape")
            await wait_until(lambda: isinstance(app.screen, ConfirmModal), what="asks again")
            await pilot.press("y")
            await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="discarded")
            assert app.view.board["d_note"].version == 2
    assert sets(await logged(db), "d_note") == [("first line\n{second} line", "person")]


async def test_a_string_with_control_characters_is_edited_as_json_and_kept_exact(
        db: Path) -> None:
    value = "bell\x07 and \x1b[2J and \u202e"
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        app = app_for(fake, db, [{"name": "a"}], state={**BOARD, "d_note": value})
        async with app.run_test(size=SIZE) as pilot:
            await open_board(app, pilot, "d_note")
            await pilot.press("e")
            await wait_until(lambda: editor(app) is not None, what="the value editor")
            area = app.screen.query_one(TextArea)
            assert area.text == '"bell\\u0007 and \\u001b[2J and \\u202e"'
            await pilot.press("ctrl+e", "left", *" ok", "ctrl+s")
            await wait_until(lambda: app.view.board["d_note"].version == 2, what="the edit")
            assert app.view.board["d_note"].value == value + " ok"


async def test_e_in_a_replay_says_why_and_edits_nothing(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["done"])}) as fake, \
            running(make_crew(fake.url, [{"name": "a"}], state=BOARD), db) as session:
        await session.supervisor.wait()
    app = await open_replay(db, "last", speed=16)
    source = app.source
    assert isinstance(source, ReplaySource)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: source.player is not None
                         and source.player.cursor == len(source.timeline), what="the end")
        await open_board(app, pilot, "d_note")
        await pilot.press("e")
        await wait_until(lambda: any("this is a replay" in str(n.message)
                                     for n in app._notifications), what="why not")
        assert isinstance(app.screen, InspectorScreen)


async def test_the_conversation_says_streaming_then_shows_the_whole_reply(db: Path) -> None:
    tokens = [f"word{i} " for i in range(8)]
    opened = {"upto": 3}
    script = ModelScript(tokens=tokens, gate=lambda i: i < opened["upto"])
    async with FakeOllama({"m1": script}) as fake:
        # Held at the gate on purpose: no stall (and its redraw) while the test looks.
        app = app_for(fake, db, [{"name": "a"}], state=BOARD, stall_timeout=600)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].tokens == 3, what="3 tokens, then held")
            await pilot.press("s")
            await wait_until(lambda: isinstance(app.screen, InspectorScreen)
                             and bool(app.screen.query("#conversation-text")), what="inspector")
            view = app.screen.query_one("#conversation-text", Static)

            def conversation() -> str:
                return str(view.render())

            await wait_until(lambda: "word2" in conversation(), what="the reply so far")
            assert "assistant (streaming)" in conversation()
            opened["upto"] = 4
            await wait_until(lambda: "word3" in conversation(), what="a token more, redrawn")
            opened["upto"] = len(tokens)  # the rest and the end: sooner than a redraw is due
            await wait_until(lambda: app.view.agents["a"].status == "finished", what="finished")
            await wait_until(lambda: "word7" in conversation()
                             and "(streaming)" not in conversation(),
                             what="the finished reply, redrawn after the end")
            assert conversation().startswith("finished")
