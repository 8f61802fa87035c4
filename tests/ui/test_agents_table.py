"""The agents table (`v`) under Pilot, against the fake Ollama server: the natural view past
nine agents, live statuses, sorting that survives updates, `enter` zooming the row's pane, the
cursor as the agent the keys act on, and the same table in a replay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets.data_table import ColumnKey

from cockpit.core.state import AgentStatus
from cockpit.ui.app import CockpitApp, make_app
from cockpit.ui.replay_app import open_replay
from cockpit.ui.widgets.agents_table import STATUS_RANK, AgentsTable
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

NAMES = [f"agent{n:02d}" for n in range(1, 13)]
WORDS = [f"w{i} " for i in range(300)]


def scripts(gate: Callable[[int], bool] | None = None) -> dict[str, ModelScript]:
    """Replies of different lengths (held back by `gate`, if given), two that hold their
    streams open until the client closes them (so their agents keep streaming), and one the
    server refuses (its agent fails)."""
    return {
        **{f"len{n}": ModelScript(tokens=WORDS[:n], gate=gate) for n in (3, 5, 8)},
        **{hold: ModelScript(tokens=WORDS, stall_after=4, faults_for=1)
           for hold in ("hold", "hold2")},
        "gone": ModelScript(fail_first=1, fail_status=404, fail_message="model 'gone' not found"),
    }


MODELS = ["len3", "len5", "len8", "hold", "len5", "gone", "len8", "len3", "len5", "hold2",
          "len8", "len3"]
"""agent01 .. agent12: the model each one uses."""


def crew_agents() -> list[dict[str, Any]]:
    return [{"name": name, "model": model} for name, model in zip(NAMES, MODELS, strict=True)]


def app_for(fake: FakeOllama, db: Path, agents: list[dict[str, Any]]) -> CockpitApp:
    return make_app(make_crew(fake.url, agents), db, watch_themes=False)


def table(app: CockpitApp) -> AgentsTable:
    return app.cockpit.query_one(AgentsTable)


def cell(app: CockpitApp, name: str, column: str) -> str:
    value = table(app).get_cell(name, column)
    assert isinstance(value, Text)
    return value.plain.strip()


def order(app: CockpitApp) -> list[str]:
    """The agents top to bottom, as the table shows them."""
    return [str(row.key.value) for row in table(app).ordered_rows]


def statuses_shown(app: CockpitApp) -> bool:
    """Every row's status cell says what the view says."""
    agents = app.view.agents
    return len(agents) == 12 and all(
        cell(app, name, "status") == str(agent.status) for name, agent in agents.items())


def settled(app: CockpitApp) -> bool:
    """The end state the scripts lead to: the held agents stream, one failed, the rest
    finished, and the table says so."""
    agents = app.view.agents
    if len(agents) != 12:
        return False
    want = {name: ("streaming" if model.startswith("hold") else "failed" if model == "gone" else
                   "finished") for name, model in zip(NAMES, MODELS, strict=True)}
    return all(str(agents[name].status) == status and cell(app, name, "status") == status
               for name, status in want.items()) and \
        all(agents[name].tokens >= 4 for name, model in zip(NAMES, MODELS, strict=True)
            if model.startswith("hold"))


async def test_twelve_agents_open_on_the_table_with_live_statuses(db: Path) -> None:
    async with FakeOllama(scripts(), parallel=16) as fake:
        app = app_for(fake, db, crew_agents())
        async with app.run_test(size=(160, 48)) as pilot:
            grid, agents_table = app.cockpit.grid, table(app)
            await wait_until(lambda: agents_table.shown and agents_table.row_count == 12,
                             what="the table, with 12 rows, as the first view")
            assert not grid.display and app.focused is agents_table
            assert order(app) == NAMES  # crew order until sorted
            await wait_until(lambda: settled(app), what="streaming, failed and finished rows")
            assert cell(app, "agent01", "tokens") == "3"
            assert cell(app, "agent03", "tokens") == "8"
            assert cell(app, "agent01", "model") == "len3"
            assert "not found" in cell(app, "agent06", "last")
            assert cell(app, "agent02", "last") == "finished"
            # The cursor is the selection: `p` pauses the row under it, not pane 1.
            await pilot.press("j", "j", "j")  # agent04, which holds its stream
            await wait_until(lambda: app.cockpit.selected == "agent04", what="agent04 selected")
            await pilot.press("p")
            await wait_until(lambda: cell(app, "agent04", "status") == "paused",
                             what="agent04 paused, in its row")
            assert app.view.agents["agent10"].status is AgentStatus.STREAMING
            assert "paused by person" in cell(app, "agent04", "last")
            # `v` toggles: the panes, with the selected one focused, and the table again.
            await pilot.press("v")
            await wait_until(lambda: grid.display and not agents_table.shown, what="the panes")
            assert app.focused is app.cockpit.panes["agent04"]
            await pilot.press("v")
            await wait_until(lambda: agents_table.shown and app.focused is agents_table,
                             what="the table again")
            assert order(app)[agents_table.cursor_row] == "agent04"


async def test_sorting_keeps_its_order_and_the_cursor_across_updates(db: Path) -> None:
    opened = False
    async with FakeOllama(scripts(gate=lambda _: opened), parallel=16) as fake:
        app = app_for(fake, db, crew_agents())
        async with app.run_test(size=(160, 48)) as pilot:
            agents_table = table(app)
            await wait_until(lambda: agents_table.row_count == 12, what="the rows")
            await pilot.press("j", "j")  # agent03
            await wait_until(lambda: app.cockpit.selected == "agent03", what="agent03")
            for _ in range(2):  # crew order -> name -> status
                await pilot.press("S")
            await wait_until(lambda: agents_table.sort_by == "status", what="sorted by status")

            def by_status() -> bool:
                ranks = [STATUS_RANK[app.view.agents[name].status] for name in order(app)]
                return ranks == sorted(ranks)

            # Statuses change while it is sorted: each redraw keeps the rows in status order,
            # and the cursor stays on agent03 wherever its row moves.
            wrong: list[list[str]] = []
            orders: set[tuple[str, ...]] = set()

            def sorted_until_settled() -> bool:
                if statuses_shown(app):
                    orders.add(tuple(order(app)))
                    if not by_status() or order(app)[agents_table.cursor_row] != "agent03":
                        wrong.append(order(app))
                return settled(app)

            opened = True  # the replies stream now: rows change status, and move
            await wait_until(sorted_until_settled, what="the statuses settled")
            assert not wrong
            assert by_status() and len(orders) > 1  # the rows did move
            failed, held = ["agent06"], ["agent04", "agent10"]
            assert order(app)[:3] == failed + held  # attention first, ties in crew order
            assert label(app, "status") == "status ▲"
            for _ in range(4):  # model, host, turns, tokens
                await pilot.press("S")
            await wait_until(lambda: agents_table.sort_by == "tokens", what="sorted by tokens")
            tokens = {name: app.view.agents[name].tokens for name in NAMES}
            expected = sorted(NAMES, key=lambda name: -tokens[name])  # stable: crew order ties
            assert [name for name in order(app) if name not in held] == \
                [name for name in expected if name not in held]
            # A header click on the sorted column reverses it.
            await pilot.click(AgentsTable, offset=(header_x(app, "tokens"), 0))
            await wait_until(lambda: agents_table.reverse, what="reversed by a header click")
            ended = [name for name in order(app) if name not in held]
            assert ended == [name for name in sorted(NAMES, key=lambda name: tokens[name])
                             if name not in held]
            assert order(app)[agents_table.cursor_row] == "agent03"
            await pilot.press("5")  # the crew's fifth agent, wherever the sort put its row
            await wait_until(lambda: app.cockpit.selected == "agent05", what="agent05")
            assert order(app)[agents_table.cursor_row] == "agent05"
            assert agents_table.shown and app.focused is agents_table


def column_span(app: CockpitApp, key: str) -> tuple[int, int]:
    """Where column `key` starts in the table, and its width."""
    x = 0
    for column in table(app).columns.values():
        width = column.get_render_width(table(app))
        if column.key.value == key:
            return x, width
        x += width
    raise AssertionError(f"no column {key}")


def header_x(app: CockpitApp, key: str) -> int:
    """The x offset of the middle of column `key`'s header."""
    x, width = column_span(app, key)
    return x + width // 2


def label(app: CockpitApp, key: str) -> str:
    return table(app).columns[ColumnKey(key)].label.plain.strip()


async def test_enter_zooms_the_row_and_interventions_follow_the_cursor(db: Path) -> None:
    async with FakeOllama(scripts(), parallel=16) as fake:
        app = app_for(fake, db, crew_agents())
        async with app.run_test(size=(80, 24)) as pilot:
            agents_table, screen = table(app), app.cockpit
            await wait_until(lambda: settled(app), what="the rows settled")
            # The status column is never the one a narrow terminal cuts: it is second, whole.
            x, width = column_span(app, "status")
            assert x + width <= agents_table.size.width <= 80
            assert all(cell(app, name, "status") for name in NAMES)
            for _ in range(6):
                await pilot.press("down")
            await wait_until(lambda: screen.selected == "agent07", what="agent07 selected")
            await pilot.press("enter")
            await wait_until(lambda: not agents_table.shown and screen.grid.display,
                             what="the panes")
            assert screen.grid.zoomed is screen.panes["agent07"]
            assert app.focused is screen.panes["agent07"]
            assert "zoomed on agent07" in app.title
            await pilot.press("v")  # from a zoomed pane, the table again, on the same row
            await wait_until(lambda: agents_table.shown, what="the table")
            assert order(app)[agents_table.cursor_row] == "agent07"


async def test_few_agents_open_on_the_panes_and_v_shows_the_table(db: Path) -> None:
    async with FakeOllama(scripts(), parallel=16) as fake:
        app = app_for(fake, db, crew_agents()[:3])
        async with app.run_test(size=(100, 30)) as pilot:
            agents_table = table(app)
            await wait_until(lambda: all(str(a.status) == "finished"
                                         for a in app.view.agents.values())
                             and len(app.view.agents) == 3, what="three finished")
            assert not agents_table.shown and app.cockpit.grid.display
            assert agents_table.row_count == 0  # hidden, it draws nothing
            await pilot.press("2", "v")
            await wait_until(lambda: agents_table.shown and agents_table.row_count == 3,
                             what="the table, with three rows")
            assert order(app)[agents_table.cursor_row] == "agent02"
            assert [cell(app, name, "status") for name in NAMES[:3]] == ["finished"] * 3
            assert [cell(app, name, "tokens") for name in NAMES[:3]] == ["3", "5", "8"]


async def test_hostile_names_and_errors_stay_plain_text(db: Path) -> None:
    hostile = "\x1b]52;c;SGVsbG8=\x07[bold red]boom[/] \x1b[2J\u202eevil"
    gone = ModelScript(fail_first=1, fail_status=404, fail_message=hostile)
    async with FakeOllama({"len3": ModelScript(tokens=["a"]), "gone": gone}) as fake:
        app = app_for(fake, db, [{"name": "ok", "model": "len3"},
                                 {"name": "bad", "model": "gone"}])
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(lambda: app.view.agents.get("bad") is not None
                             and app.view.agents["bad"].status is AgentStatus.FAILED,
                             what="bad failed")
            await pilot.press("v")
            await wait_until(lambda: table(app).shown and "boom" in cell(app, "bad", "last"),
                             what="the error in the table")
            last = cell(app, "bad", "last")
            assert "[bold red]boom[/]" in last  # shown as typed, never parsed as markup
            assert not any(c in last for c in "\x1b\x07\u202e")


async def test_a_replay_shows_the_table_and_follows_its_seeks(db: Path) -> None:
    models = [model if not model.startswith("hold") else "len8" for model in MODELS]  # ends
    async with FakeOllama(scripts(), parallel=16) as fake:
        crew = make_crew(fake.url, [{"name": name, "model": model}
                                    for name, model in zip(NAMES, models, strict=True)])
        async with running(crew, db) as session:
            await session.supervisor.wait()
    app = await open_replay(db, "last", speed=16)
    async with app.run_test(size=(160, 48)) as pilot:
        agents_table = table(app)
        await wait_until(lambda: agents_table.shown and agents_table.row_count == 12,
                         what="the table in the replay")
        player = app.source.player

        def at_end() -> bool:
            return all(cell(app, name, "status") == ("failed" if model == "gone" else "finished")
                       for name, model in zip(NAMES, models, strict=True))

        await wait_until(lambda: app.source.player is not None
                         and app.source.player.cursor == len(app.source.timeline) and at_end(),
                         what="the replay's end, in the table")
        player = app.source.player
        assert player is not None
        await pilot.press("full_stop")  # a step at the end: nothing to play, and paused
        await wait_until(lambda: not player.playing, what="paused")
        await pilot.press("home")  # not the table's: the player's start
        await wait_until(lambda: player.cursor == 0, what="the start")
        await wait_until(lambda: all(cell(app, name, "status") == "queued" for name in NAMES)
                         and all(cell(app, name, "last") == "" for name in NAMES),
                         what="the rows as the crew declares them")
        await pilot.press("end")
        await wait_until(lambda: player.cursor == len(player.timeline) and at_end(),
                         what="the end again")
        # The last events come back from the log: the seek rebuilt the view without them.
        await wait_until(lambda: all(
            cell(app, name, "last") == "finished" if model != "gone"
            else "not found" in cell(app, name, "last")
            for name, model in zip(NAMES, models, strict=True)), what="the last events, read back")
