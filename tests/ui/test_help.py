"""`?` under Pilot: one row per binding with its `[keymap]` id, as remapped, fitting 80x24."""

from __future__ import annotations

import re
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from cockpit.ui.app import CockpitApp, make_app
from cockpit.ui.screens.help import HelpScreen
from cockpit.ui.screens.inspector import InspectorScreen
from tests.conftest import make_crew, wait_until
from tests.fake_ollama import FakeOllama, ModelScript
from tests.ui.test_cockpit import HOLD


def rows(app: CockpitApp) -> list[tuple[str, str, str]]:
    """(keys, action, id) of each row."""
    table = app.screen.query_one(DataTable)
    return [(str(row[0]), str(row[1]), str(row[2]))
            for row in (table.get_row_at(i) for i in range(table.row_count))]


async def open_help(app: CockpitApp, pilot: Pilot[int]) -> None:
    await pilot.press("question_mark")
    await wait_until(lambda: isinstance(app.screen, HelpScreen)
                     and any(t.row_count for t in app.screen.query(DataTable)), what="the help")


async def test_help_lists_each_binding_once_with_its_id_and_fits_80x24(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        crew = make_crew(fake.url, [{"name": "a"}], keymap={"cockpit.pause": "space"})
        app = make_app(crew, db, watch_themes=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_help(app, pilot)
            shown = rows(app)
            ids = [row[2] for row in shown]
            assert len(set(shown)) == len(shown)  # no row twice
            named = [i for i in ids if i != "—"]
            assert len(named) == len(set(named))  # each id once
            by_id = {row[2]: row for row in shown}
            assert by_id["cockpit.pause"][:2] == ("space", "Pause/resume")  # as remapped
            assert by_id["cockpit.scroll_down"][0] == "j, ↓"  # every key of a binding
            assert by_id["cockpit.focus_1…9"][0] == "1–9"
            assert not any(re.fullmatch(r"cockpit\.focus_\d", i) for i in ids)  # one row
            assert {"cockpit.quit", "cockpit.help", "cockpit.inspector", "cockpit.events",
                    "cockpit.redirect"} <= set(ids)
            assert [row[1] for row in shown].count("Palette") == 1

            table = app.screen.query_one(DataTable)
            await wait_until(lambda: table.virtual_size.width > 0, what="laid out")
            assert table.max_scroll_x == 0, "wider than the screen"
            assert table.max_scroll_y > 0  # more keys than rows: it scrolls
            what = app.screen.query_one("#what", Static)
            await pilot.press("down")
            await wait_until(lambda: str(what.render()).startswith(shown[1][0] + ":"),
                             what="the highlighted key said in full")
            await pilot.press("escape")
            await wait_until(lambda: not isinstance(app.screen, HelpScreen), what="closed")


async def test_help_over_the_inspector_lists_its_keys(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD)}) as fake:
        app = make_app(make_crew(fake.url, [{"name": "a"}], state={"k": 1}), db,
                       watch_themes=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("s")
            await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="inspector")
            await open_help(app, pilot)
            by_id = {row[2]: row for row in rows(app)}
            assert by_id["cockpit.inspector_close"][0] == "esc, s"
            assert {"cockpit.board_show", "cockpit.board_edit", "cockpit.help"} <= set(by_id)
            assert "cockpit.pause" not in by_id  # the main screen's, not reachable here
