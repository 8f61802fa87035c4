"""Reading a pane: scroll keys, search, copy, Markdown; the header and grid at any width.

The TUI under Pilot against the fake Ollama server; every wait is on a condition.
"""

from __future__ import annotations

from pathlib import Path

from rich.cells import cell_len
from textual.widgets import Header

from cockpit.ui.app import CockpitApp
from cockpit.ui.screens.reading import SearchBar
from cockpit.ui.widgets.footer import CockpitFooter
from tests.conftest import wait_until
from tests.fake_ollama import FakeOllama, ModelScript
from tests.ui.test_cockpit import app_for, header, pane

LINES = [f"line {i} {'needle ' if i in (10, 100, 150) else ''}of the reply\n"
         for i in range(200)]


def flashed(app: CockpitApp) -> str:
    return app.cockpit.flash_line.last


async def finished(app: CockpitApp, *names: str) -> None:
    await wait_until(lambda: all(app.view.agents.get(n) is not None
                                 and app.view.agents[n].status == "finished" for n in names),
                     what=f"{names} finished")


async def test_scroll_keys_move_through_a_long_reply_and_G_follows_again(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=LINES)}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=(100, 30)) as pilot:
            await finished(app, "a")
            view = pane(app, "a").body
            await wait_until(lambda: view.line_count >= 200, what="every line drawn")
            await pilot.pause()
            bottom = view.scroll_offset.y
            assert bottom > 100 and pane(app, "a").follow
            await pilot.press("k")
            assert view.scroll_offset.y == bottom - 1 and not pane(app, "a").follow
            await pilot.press("pageup")
            page = view.scrollable_content_region.height - 1
            assert view.scroll_offset.y == bottom - 1 - page
            await pilot.press("j", "down")
            assert view.scroll_offset.y == bottom + 1 - page
            await pilot.press("g")
            assert view.scroll_offset.y == 0
            await pilot.press("pagedown")
            assert view.scroll_offset.y == page
            await pilot.press("G")
            assert view.scroll_offset.y == bottom and pane(app, "a").follow


async def test_search_highlights_and_n_N_move_between_matches(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=LINES)}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=(100, 30)) as pilot:
            await finished(app, "a")
            view = pane(app, "a").body
            await wait_until(lambda: view.line_count >= 200, what="every line drawn")
            await pilot.press("g", "slash")
            await wait_until(lambda: isinstance(app.focused, SearchBar), what="search bar")
            await pilot.press(*"NEEDLE", "enter")  # case does not matter
            await wait_until(lambda: view.current is not None, what="a match")
            lines = [view.current[0] if view.current else -1]
            assert "1 of 3" in flashed(app)
            for _ in range(3):
                await pilot.press("n")
                lines.append(view.current[0] if view.current else -1)
            await pilot.press("N")
            lines.append(view.current[0] if view.current else -1)
            assert lines == [10, 100, 150, 10, 150]
            assert "needle" in view.lines[150]
            top = view.scroll_offset.y  # the match is in view, and drawn highlighted
            assert top <= 150 < top + view.scrollable_content_region.height
            strip = view.render_line(150 - top)
            styles = {segment.text: segment.style for segment in strip}
            assert styles["needle"] != styles["line 150 "]
            await pilot.press("escape")
            assert view.pattern is None and "cleared" in flashed(app)
            await pilot.press("slash")
            await wait_until(lambda: isinstance(app.focused, SearchBar), what="search bar")
            await pilot.press("ctrl+a", *"haystack", "enter")
            await wait_until(lambda: "no match" in flashed(app), what="no match said")


async def test_y_copies_the_reply_and_m_shows_it_as_markdown_once_finished(db: Path) -> None:
    reply = ["# Plan\n\n", "Some **bold** text and ", "[bold red]not markup[/]\n\n",
             "```python\n", "print('hi')\n", "```\n"]
    opened: list[bool] = []
    script = ModelScript(tokens=reply, gate=lambda i: i < 2 or bool(opened))
    async with FakeOllama({"m1": script}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].tokens >= 2, what="a streaming")
            await pilot.press("m")  # wanted, but the reply is not finished: it stays plain
            view = pane(app, "a").markdown_view
            assert view is not None and not view.shown and view.rendered is None
            assert "once it has finished" in flashed(app)
            opened.append(True)
            await finished(app, "a")
            await wait_until(lambda: view.shown, what="Markdown shown")
            text = "".join(reply)
            assert view.rendered == text  # rendered once, from the whole reply
            from textual.widgets._markdown import MarkdownFence, MarkdownH1
            await wait_until(lambda: bool(view.query(MarkdownFence)), what="fence mounted")
            assert view.query(MarkdownH1)
            shown = " ".join(str(p.render()) for p in view.query("MarkdownParagraph"))
            assert "[bold red]not markup[/]" in shown  # never read as markup
            await pilot.press("y")
            assert app.clipboard == text
            assert "copied a's reply" in flashed(app)
            await pilot.press("m")
            assert not view.shown and pane(app, "a").body.display


async def test_the_status_leads_the_header_and_hosts_are_aliased(db: Path) -> None:
    model = "a-model-with-a-very-long-name:70b-instruct-q4"
    async with FakeOllama({model: ModelScript(tokens=["x"] * 3)}) as fake:
        app = app_for(fake, db, [{"name": f"agent{i}"} for i in range(4)], model=model)
        async with app.run_test(size=(80, 24)) as pilot:
            await finished(app, *(f"agent{i}" for i in range(4)))
            await pilot.pause()
            for i in range(4):
                text = header(app, f"agent{i}")
                assert text.startswith(" finished"), text
                assert f"agent{i}" in text
                assert "@" not in text  # one host: not shown
                assert cell_len(text) <= pane(app, f"agent{i}").content_region.width


async def test_three_panes_leave_no_empty_quarter_and_zoom_keeps_the_title(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["x"])}) as fake:
        app = app_for(fake, db, [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        async with app.run_test(size=(160, 48)) as pilot:
            await finished(app, "a", "b", "c")
            await pilot.pause()
            grid = app.cockpit.grid
            assert pane(app, "c").region.width >= grid.region.width - 1  # spans the row
            assert pane(app, "a").region.width < grid.region.width // 2 + 2
            await pilot.press("2", "z")
            await pilot.pause()
            assert app.cockpit.query_one(Header).display
            assert "zoomed on b" in app.title
            assert pane(app, "b").region.width >= grid.region.width - 1
            assert not pane(app, "a").display or pane(app, "a").has_class("-off-page")
            await pilot.press("z")
            await pilot.pause()
            assert "zoomed" not in app.title and pane(app, "a").region.width > 0


async def test_pages_are_named_in_the_title_and_help_and_quit_lead_the_footer(
        db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["x"])}) as fake:
        app = app_for(fake, db, [{"name": f"a{i}"} for i in range(8)])
        async with app.run_test(size=(80, 24)) as pilot:
            await finished(app, *(f"a{i}" for i in range(8)))
            await pilot.pause()
            assert app.cockpit.grid.pages > 1
            pages = app.cockpit.grid.pages
            assert f"page 1/{pages} · [ ]" in app.title
            await pilot.press("right_square_bracket")
            await wait_until(lambda: f"page 2/{pages}" in app.title, what="page 2 named")
            keys = [key.key for key in app.cockpit.query_one(CockpitFooter).query("FooterKey")]
            assert keys[:2] == ["question_mark", "q"]


async def test_queued_agents_count_as_queued_and_keys_that_do_not_apply_say_why(
        db: Path) -> None:
    gate: list[bool] = []
    script = ModelScript(tokens=["x", "y"], gate=lambda i: bool(gate))
    async with FakeOllama({"m1": script}) as fake:
        app = app_for(fake, db, [{"name": "a"}, {"name": "b", "after": ["a"]}])
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(lambda: app.view.agents.get("a") is not None
                             and app.view.agents["a"].status == "queued", what="a queued")
            await pilot.pause()
            assert app.sub_title.startswith("0 streaming · 0 finished · 0 failed · 1 queued")
            await pilot.press("2", "p")  # b waits for a
            await wait_until(lambda: "b waits for a" in flashed(app), what="why not")
            gate.append(True)
            await finished(app, "a", "b")
            await pilot.press("1", "p")
            await wait_until(lambda: "a is finished: r asks a follow-up" in flashed(app),
                             what="why not, finished")
