"""Host waits and a stuck event log, as the TUI shows them: the pane's status names the host,
and a banner names the log's trouble while it lasts. The events enter the way the supervisor's
own do (`Supervisor.emit`: stamped, logged, published on the bus the bridge drains)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from cockpit.core import events as ev
from cockpit.ui.app import CockpitApp
from cockpit.ui.bridge import urgent
from cockpit.ui.screens.inspector import InspectorScreen
from tests.conftest import wait_until
from tests.fake_ollama import FakeOllama, ModelScript
from tests.ui.test_cockpit import HOLD, SIZE, app_for, body, header, logged, pane


def flat(text: str) -> str:
    """Pane text without the wrapping (two panes side by side are narrow)."""
    return " ".join(text.split())


def banner(app: CockpitApp) -> Static:
    return app.cockpit.query_one("#log-banner", Static)


def shown(app: CockpitApp) -> bool:
    widget = banner(app)
    return widget.display and widget.region.height == 1


async def test_the_banner_names_the_cause_while_the_log_is_stuck(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD, faults_for=1)}) as fake:
        app = app_for(fake, db, [{"name": "a"}, {"name": "b"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: len(app.view.agents) == 2 and all(
                a.tokens > 3 for a in app.view.agents.values()), what="both streaming")
            assert not shown(app)
            grid_top = app.cockpit.grid.region.y
            assert app.supervisor is not None
            cause = "database is locked [bold red]not markup[/]"
            assert urgent(ev.LogStuck(cause=cause))  # drawn at once, not at the next frame
            app.supervisor.emit(ev.LogStuck, None, cause=cause)
            await wait_until(lambda: shown(app), what="the banner")
            text = str(banner(app).render())
            assert text.startswith(f"Event log not writable: {cause} — agents paused")
            assert app.cockpit.grid.region.y == grid_top + 1  # above the panes, not over them
            app.supervisor.emit(ev.AgentPaused, "a", by="log")
            await wait_until(lambda: "paused" in header(app, "a"), what="a paused by the log")
            await pilot.pause()
            assert "── paused by log ──" in body(app, "a")
            counts = str(pane(app, "a").query_one("#counts").render())
            assert "paused: event log not writable" in counts

            app.supervisor.emit(ev.LogRecovered, None, stuck_for=4.0)
            await wait_until(lambda: not banner(app).display, what="the banner to go")
            await wait_until(lambda: app.cockpit.grid.region.y == grid_top,
                             what="the panes to take its line back")
    types = [e.type for e in await logged(db)]  # type: ignore[attr-defined]
    assert "log_stuck" in types and "log_recovered" in types


async def test_a_pane_waiting_for_its_host_says_so_and_names_it(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(**HOLD, faults_for=2)}) as fake:
        app = app_for(fake, db, [{"name": "a"}, {"name": "b"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: len(app.view.agents) == 2 and all(
                a.tokens > 3 for a in app.view.agents.values()), what="both streaming")
            assert app.supervisor is not None
            host = fake.url.removeprefix("http://")
            app.supervisor.emit(ev.HostWaiting, "a", host=fake.url, reason="connection refused",
                                limit=600.0)
            await wait_until(lambda: header(app, "a").startswith(" waiting for Ollama "),
                             what="a's header to say it waits")  # the status leads ...
            assert header(app, "a").endswith(f"a · at {host}")  # ... and the host is named
            assert "waiting for Ollama" not in header(app, "b")
            await pilot.press("1", "s")
            await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="inspector")
            hosts = app.screen.query_one("#hosts", DataTable)
            await wait_until(lambda: hosts.row_count > 0 and "a (waiting 0:0" in str(
                hosts.get_row_at(0)[-1]), what="the hosts table to show that a waits")
            row = [str(cell) for cell in hosts.get_row_at(0)]
            assert row[0] == host and row[-1].startswith("a (waiting") and row[-1].endswith(", b")
            conversation = str(app.screen.query_one("#conversation-text", Static).render())
            assert conversation.startswith(f"waiting for Ollama at {host} ·")
            await pilot.press("escape")
            await pilot.pause()
            assert f"── waiting for Ollama at {host}: connection refused (up to 10 min) ──" in \
                flat(body(app, "a"))

            app.supervisor.emit(ev.HostBack, "a", host=fake.url, waited=75.0)
            await wait_until(lambda: "waiting for Ollama" not in header(app, "a"),
                             what="the wait to end on screen")
            await pilot.pause()
            assert f"── Ollama at {host} answered again after 1 min 15 s ──" in \
                flat(body(app, "a"))
            counts = str(pane(app, "a").query_one("#counts").render())
            assert "waited 1:15 for Ollama" in counts

            app.supervisor.emit(ev.HostSelected, "a", host="http://other:11434", reason="less busy")
            await wait_until(lambda: "@ other:11434" in header(app, "a"),
                             what="the header to show the host it moved to")
