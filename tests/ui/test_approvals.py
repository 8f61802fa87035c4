"""Agents that act, in the TUI: the approval inbox (`a`: y, n, e, Y), each tool call as one line
in its pane (`c` for details), the board's history in the inspector, marks in the event log and
a read-only inbox in replay. Real supervisor, fake Ollama over HTTP, keys through Pilot."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Static, TextArea

from cockpit.core import events as ev
from cockpit.ui.app import CockpitApp
from cockpit.ui.screens.approval_inbox import EMPTY, ApprovalInboxScreen
from cockpit.ui.screens.arguments_modal import ArgumentsModal
from cockpit.ui.screens.event_log import EventLogScreen
from cockpit.ui.screens.inspector import InspectorScreen
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript, Turn
from tests.ui.test_cockpit import SIZE, app_for, body, header, input_ready, logged, pane

Messages = list[dict[str, Any]]
HOSTILE = "v1 [bold red]x[/] \x1b]0;pwned\x07 \x9b2J"
"""A value with Rich markup, an OSC title sequence and an 8-bit CSI: shown inert, run exact."""


def writes(key: str = "plan", value: str = "v1") -> Callable[[Messages], Turn]:
    """Turn 1 writes `key` on the board; turn 2 answers with what the tool said."""

    def turn(messages: Messages) -> Turn:
        done = [m["content"] for m in messages if m["role"] == "tool"]
        if not done:
            return Turn.call("board_write", key=key, value=value)
        return Turn.say(f"result: {done[-1]}")

    return turn


def gated(fake: FakeOllama, db: Path, agents: list[dict[str, Any]] | None = None,
          **crew: Any) -> CockpitApp:
    return app_for(fake, db, agents or [{"name": "w", "tools": ["board"]}],
                   approve=["board_write"], **crew)


def inbox(app: CockpitApp) -> ApprovalInboxScreen | None:
    screen = app.screen
    return screen if isinstance(screen, ApprovalInboxScreen) else None


def rows(app: CockpitApp) -> list[list[str]]:
    screen = inbox(app)
    if screen is None:
        return []
    table = screen.query_one("#calls", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def rendered(widget: Static) -> str:
    return str(widget.render())


async def test_the_inbox_lists_a_waiting_call_and_y_approves_it(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes(value=HOSTILE))}) as fake:
        app = gated(fake, db)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: "w.1.1" in app.view.approvals, what="the call waits")
            await wait_until(lambda: "awaiting approval" in header(app, "w"),
                             what="the header says awaiting approval")
            waiting = rendered(pane(app, "w").waiting)
            assert waiting.startswith("⏸ waits for approval: board_write key=\"plan\"")
            assert waiting.endswith("— press a")
            assert "1 call waits for approval (a)" in app.sub_title
            assert "⏸ awaiting approval" in body(app, "w")

            assert "Approvals" in {c.title for c in app.get_system_commands(app.screen)}
            await pilot.press("a")
            await wait_until(lambda: len(rows(app)) == 1, what="the inbox lists the call")
            commands = {c.title for c in app.get_system_commands(app.screen)}
            assert {"Approve", "Deny", "Edit & approve", "Approve all"} <= commands
            waited, agent, tool, arguments = rows(app)[0]
            assert (agent, tool) == ("w", "board_write")
            assert re.fullmatch(r"\d+:\d\d", waited)
            assert arguments.startswith('{"key": "plan", "value": "v1 [bold red]x[/]')
            screen = inbox(app)
            assert screen is not None
            detail = rendered(screen.query_one("#arguments", Static))
            # Pretty, indented JSON; the terminal controls are shown as JSON escapes.
            assert detail.startswith('{\n  "key": "plan",\n  "value": "v1 [bold red]x[/] ')
            assert "\\u001b]0;pwned\\u0007 \\u009b2J" in detail
            assert json.loads(detail) == {"key": "plan", "value": HOSTILE}
            shown = app.export_screenshot()
            assert "\x1b" not in detail and "\x9b" not in shown and "pwned" in shown

            await pilot.press("y")
            await wait_until(lambda: "plan" in app.view.board, what="the call ran")
            assert app.view.board["plan"].value == HOSTILE  # exactly what was approved
            await wait_until(lambda: screen.has_class("-empty"), what="the inbox empties")
            assert rendered(screen.query_one("#empty", Static)) == EMPTY
            await pilot.press("escape")
            await wait_until(lambda: app.view.agents["w"].status == "finished", what="finished")
            await pilot.pause()
            assert not pane(app, "w").has_class("-awaiting")
            assert "\x1b" not in body(app, "w") and "\x9b" not in body(app, "w")
            assert re.search(r"⚙ board_write key=\"plan\" .*✓ \d+ ms · approved by person",
                             body(app, "w"))
    decided = [e for e in await logged(db) if isinstance(e, ev.ApprovalDecided)]
    assert [(e.call_id, e.decision, e.by) for e in decided] == [("w.1.1", "approved", "person")]


async def test_n_denies_with_a_reason_the_model_reads(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes())}) as fake:
        app = gated(fake, db)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: "w.1.1" in app.view.approvals, what="the call waits")
            await pilot.press("a")
            await wait_until(lambda: len(rows(app)) == 1, what="the inbox lists the call")
            await pilot.press("n")
            await wait_until(lambda: input_ready(app), what="the reason prompt")
            await pilot.press(*"plan is frozen", "enter")
            await wait_until(lambda: app.view.agents["w"].status == "finished", what="finished")
            await pilot.press("escape")
            await pilot.pause()
            assert "plan" not in app.view.board
            assert app.view.agents["w"].output == (
                "result: the call was denied and did not run: plan is frozen")
            assert "✗ denied by person: plan is frozen" in body(app, "w")
    decided = [e for e in await logged(db) if isinstance(e, ev.ApprovalDecided)]
    assert [(e.decision, e.reason) for e in decided] == [("denied", "plan is frozen")]


async def test_e_edits_the_arguments_as_json_and_refuses_invalid_json(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes())}) as fake:
        app = gated(fake, db)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: "w.1.1" in app.view.approvals, what="the call waits")
            await pilot.press("a")
            await wait_until(lambda: len(rows(app)) == 1, what="the inbox lists the call")
            await pilot.press("e")
            await wait_until(lambda: isinstance(app.screen, ArgumentsModal)
                             and isinstance(app.focused, TextArea), what="the editor")
            editor = app.screen.query_one(TextArea)
            assert json.loads(editor.text) == {"key": "plan", "value": "v1"}
            await pilot.press("x", "ctrl+s")  # `x{...`: not JSON
            error = app.screen.query_one("#error", Static)
            await wait_until(lambda: "Not valid JSON" in rendered(error), what="the refusal")
            assert isinstance(app.screen, ArgumentsModal)  # still open, nothing decided
            assert "w.1.1" in app.view.approvals
            # Mend it, then change the value: line 3 is `  "value": "v1"`.
            await pilot.press("backspace", "down", "down", "end", "left", *", edited")
            assert json.loads(editor.text) == {"key": "plan", "value": "v1, edited"}
            await pilot.press("ctrl+s")
            await wait_until(lambda: "plan" in app.view.board, what="the edited call ran")
            assert app.view.board["plan"].value == "v1, edited"
            await wait_until(lambda: app.view.agents["w"].status == "finished", what="finished")
            assert re.search(r"⚙ board_write key=\"plan\" value=\"v1, edited\" ✓ \d+ ms · "
                             r"edited by person", body(app, "w"))
    events = await logged(db)
    decided = next(e for e in events if isinstance(e, ev.ApprovalDecided))
    called = next(e for e in events if isinstance(e, ev.ToolCalled))
    assert (decided.decision, decided.arguments) == ("edited", {"key": "plan",
                                                                "value": "v1, edited"})
    assert called.arguments == {"key": "plan", "value": "v1, edited"}


async def test_capital_y_approves_every_waiting_call(db: Path) -> None:
    """Two agents wait at once; the inbox lists both, oldest first, and Y approves both. The
    inbox key is remapped too: the hints name the new key."""
    def by_task(messages: Messages) -> Turn:
        task = next(m["content"] for m in messages if m["role"] == "user")
        return writes(key=task.split()[-1])(messages)

    async with FakeOllama({"m1": ModelScript(turn=by_task)}) as fake:
        app = gated(fake, db, [{"name": "one", "tools": ["board"], "task": "Write a"},
                               {"name": "two", "tools": ["board"], "task": "Write b"}],
                    keymap={"cockpit.approvals": "i"})
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: len(app.view.approvals) == 2, what="both calls wait")
            await pilot.pause()
            assert rendered(pane(app, "one").waiting).endswith("— press i")
            await pilot.press("i")
            await wait_until(lambda: len(rows(app)) == 2, what="the inbox lists both")
            oldest = min(app.view.approvals.values(), key=lambda p: p.requested_at)
            assert rows(app)[0][1] == oldest.agent
            await pilot.press("Y")
            await wait_until(lambda: {"a", "b"} <= set(app.view.board), what="both ran")
            screen = inbox(app)
            assert screen is not None
            await wait_until(lambda: screen.has_class("-empty"), what="the inbox empties")
            assert screen.check_action("approve_all", ()) is None  # nothing left: dimmed
    decided = [e for e in await logged(db) if isinstance(e, ev.ApprovalDecided)]
    assert sorted(e.call_id for e in decided) == ["one.1.1", "two.1.1"]


async def test_a_pane_shows_each_call_as_one_line_and_c_shows_its_details(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes(value="draft one"))}) as fake:
        app = app_for(fake, db, [{"name": "w", "tools": ["board"]}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("w") is not None
                             and app.view.agents["w"].status == "finished", what="finished")
            await pilot.pause()
            lines = body(app, "w").split("\n")
            [line] = [n for n in lines if n.startswith("⚙")]
            assert re.fullmatch(r"⚙ board_write key=\"plan\" value=\"draft one\" ✓ \d+ ms",
                                line.rstrip())
            answer = "result: wrote 'plan' (now version 1)"
            assert lines.index(line) < next(i for i, n in enumerate(lines) if answer in n)
            assert "1 tool call (c details)" in str(pane(app, "w").counts.render())

            await pilot.press("1", "c")
            await wait_until(lambda: "  arguments:" in body(app, "w"), what="the details")
            details = body(app, "w")
            assert '      "key": "plan",' in details and '      "value": "draft one"' in details
            assert "  result:\n    wrote 'plan' (now version 1)" in details
            assert details.index("⚙ board_write") < details.index("  arguments:") \
                < details.index(answer)
            await pilot.press("c")
            await wait_until(lambda: "arguments:" not in body(app, "w"), what="one line again")
            assert body(app, "w").split("\n") == lines
            await pilot.resize_terminal(40, 20)  # re-wrapped: the call's line stays, cut to fit
            await wait_until(lambda: body(app, "w").split("\n") != lines, what="re-wrapped")
            narrow = [n for n in body(app, "w").split("\n") if n.startswith("⚙")]
            assert len(narrow) == 1 and narrow[0].endswith(" ms") and len(narrow[0]) < 40
            await pilot.resize_terminal(*SIZE)

            await pilot.press("l")
            await wait_until(lambda: isinstance(app.screen, EventLogScreen)
                             and app.screen.query_one(DataTable).row_count > 0,
                             what="the event log")
            table = app.screen.query_one(DataTable)
            marked = {(str(table.get_row_at(i)[2]), str(table.get_row_at(i)[4]))
                      for i in range(table.row_count)}
            assert {("⚙", "tool_called"), ("⚙", "tool_result")} <= marked


async def test_the_inspector_shows_every_version_of_a_board_key(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes(value="draft one"))}) as fake:
        app = app_for(fake, db, [{"name": "w", "tools": ["board"]}], state={"topic": "x"})
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("w") is not None
                             and app.view.agents["w"].status == "finished", what="finished")
            await pilot.press("s")
            await wait_until(lambda: isinstance(app.screen, InspectorScreen)
                             and app.screen.query_one("#board", DataTable).row_count == 3,
                             what="the board")
            board = app.screen.query_one("#board", DataTable)
            keys = [board.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value
                    for i in range(board.row_count)]
            await pilot.press(*["down"] * keys.index("plan"))
            history = app.screen.query_one("#history", DataTable)

            def versions() -> list[list[str]]:
                return [[str(c) for c in history.get_row_at(i)] for i in range(history.row_count)]

            await wait_until(lambda: str(history.border_title) == "History of plan",
                             what="plan's history")
            [(version, when, by, via, value)] = versions()
            assert (version, by, via, value) == ("1", "w", "board_write", "draft one")
            assert re.fullmatch(r"\d\d:\d\d:\d\d", when)

            await pilot.press("e")
            from textual.widgets import TextArea

            from cockpit.ui.screens.value_editor import ValueEditor
            await wait_until(lambda: isinstance(app.screen, ValueEditor)
                             and isinstance(app.focused, TextArea), what="the value editor")
            editor = app.screen.query_one(TextArea)
            editor.text = "mine"
            await pilot.press("ctrl+s")
            await wait_until(lambda: app.view.board["plan"].version == 2, what="version 2")
            await wait_until(lambda: len(versions()) == 2, what="two versions shown")
            assert [(v, by, via, value) for v, _, by, via, value in versions()] == [
                ("2", "person", "—", "mine"), ("1", "w", "board_write", "draft one")]


async def test_replay_shows_the_inbox_read_only(db: Path) -> None:
    from cockpit.ui.replay_app import open_replay

    async with FakeOllama({"m1": ModelScript(turn=writes())}) as fake:
        crew = make_crew(fake.url, [{"name": "w", "tools": ["board"]}], approve=["board_write"])
        async with running(crew, db) as session:  # quit while the call waits: interrupted
            await session.wait_status("w", "awaiting approval")
    app = await open_replay(db, "last", speed=16)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.source.player is not None
                         and app.source.player.cursor == len(app.source.timeline),
                         what="the replay's end")
        await wait_until(lambda: "w.1.1" in app.view.approvals, what="the waiting call")
        await pilot.press("a")
        await wait_until(lambda: len(rows(app)) == 1, what="the inbox lists it")
        screen = inbox(app)
        assert screen is not None
        assert rendered(screen.query_one("#intro", Static)).startswith("Replay:")
        for action in ("approve", "deny", "edit", "approve_all"):
            assert screen.check_action(action, ()) is False  # not offered
        await pilot.press("y", "n")
        await pilot.pause()
        assert app.screen is screen and not isinstance(app.focused, Input)
        assert "w.1.1" in app.view.approvals
        bar = app.cockpit.bar.render_bar().plain
        assert "⚑" in bar and "⚑ approval" in bar


async def test_messages_and_checks_get_lines_of_their_own(db: Path) -> None:
    """The research example with `--approve all`: the reviewer's pane shows the writer's
    message (read in its opening), the failed check and the passing one; the writer's pane
    shows its send_message call once, not again as a message line."""
    from cockpit.core.config import load_crew
    from cockpit.ui.app import make_app
    from tests.scenarios import research

    crew = load_crew(Path(__file__).parent.parent.parent / "examples" / "research.toml")
    async with FakeOllama({"qwen2.5:7b": ModelScript(turn=research)}) as fake:
        app = make_app(crew.model_copy(update={"host": fake.url}), db, watch_themes=False,
                       approve="all")
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.outcome == "finished", what="the crew's end")
            await pilot.pause()
            reviewer = body(app, "reviewer").split("\n")
            writer = body(app, "writer")
    assert reviewer[0] == "✉ from writer: The draft is on the board under draft."
    assert any(line.startswith("☒ output failed its checks: the JSON does not match")
               for line in reviewer)
    assert "☑ output passed its checks" in reviewer
    assert re.search(r"⚙ send_message to=\"reviewer\" text=\"The draft is on the .*✓ \d+ ms",
                     writer)  # the arguments cut to the pane's width
    assert "✉ to reviewer" not in writer
    assert writer.count("approved by policy") == 1  # the draft; board_list is not gated


async def test_a_hostile_board_key_is_shown_inert_in_the_inspector(db: Path) -> None:
    """An agent chooses its keys: markup in one must not crash the inspector or act, and an
    escape sequence must not reach the terminal."""
    key = "[/][@click=app.quit]k\x1b]0;pwned\x07"
    async with FakeOllama({"m1": ModelScript(turn=writes(key=key))}) as fake:
        app = app_for(fake, db, [{"name": "w", "tools": ["board"]}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.agents.get("w") is not None
                             and app.view.agents["w"].status == "finished", what="finished")
            await pilot.press("s")
            await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="inspector")
            board = app.screen.query_one("#board", DataTable)
            keys = [board.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value
                    for i in range(board.row_count)]
            await pilot.press(*["down"] * keys.index(key))
            history = app.screen.query_one("#history", DataTable)
            def title() -> str:
                content = history._border_title  # what is drawn, not the markup getter
                return content.plain if content is not None else ""

            await wait_until(lambda: title().startswith("History of [/][@click=app.quit]k"),
                             what="the key's history, its markup shown as text")
            assert "\x1b" not in title() and "\x07" not in title()
            await pilot.press("enter")  # the whole value, titled by the key
            await pilot.pause()
            assert app.is_running  # no MarkupError, no click action ran


async def test_keys_wait_when_the_selected_call_was_decided_elsewhere(db: Path) -> None:
    """The cursor lands on another call when the selected one is decided by someone else:
    y must not approve a call the person never chose."""
    def by_task(messages: Messages) -> Turn:
        task = next(m["content"] for m in messages if m["role"] == "user")
        return writes(key=task.split()[-1])(messages)

    async with FakeOllama({"m1": ModelScript(turn=by_task)}) as fake:
        app = gated(fake, db, [{"name": "one", "tools": ["board"], "task": "Write a"},
                               {"name": "two", "tools": ["board"], "task": "Write b"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: len(app.view.approvals) == 2, what="both calls wait")
            await pilot.press("a")
            await wait_until(lambda: len(rows(app)) == 2, what="the inbox lists both")
            screen = inbox(app)
            assert screen is not None and screen.selected is not None
            chosen = screen.selected.call_id
            other = next(c for c in app.view.approvals if c != chosen)
            assert app.supervisor is not None
            await app.supervisor.decide(chosen, "denied", reason="no", by="another viewer")
            await wait_until(lambda: len(rows(app)) == 1, what="the inbox drops it")
            await pilot.press("y")
            await pilot.pause()
            assert other in app.view.approvals  # not approved behind the person's back
            await pilot.press("y")  # told once; now the person has seen it
            await wait_until(lambda: other not in app.view.approvals, what="now approved")
