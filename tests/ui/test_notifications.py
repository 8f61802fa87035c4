"""The flash line and the notifications, in the TUI: endings that come together or one after
the other make one line, calls that wait say so, and the bell and the desktop notification
reach the terminal (the exact bytes, through the notifier's terminal port) or `notify-send` (a
real executable on PATH that records its argv). An attached viewer announces only what
happens after it came, never the history it is fed. Real supervisor, fake Ollama over HTTP."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cockpit.ui.app import CockpitApp
from cockpit.ui.notifier import Notifier
from cockpit.ui.screens.cockpit import CockpitScreen
from tests.conftest import PATIENCE, wait_until
from tests.fake_ollama import FakeOllama, FakeOllamaThread, ModelScript
from tests.owners import Gate, cockpit_env, crew_toml, detach, events, owners
from tests.ui.test_approvals import gated, writes
from tests.ui.test_cockpit import SIZE, app_for

HOSTILE = "model \x1b]0;owned\x07 not found; run `ollama pull m1`"
"""Ollama's error text as a hostile server could send it: an OSC title sequence, and a `;`."""


def screen(app: CockpitApp) -> CockpitScreen:
    assert isinstance(app.cockpit, CockpitScreen)
    return app.cockpit


def flash_text(app: CockpitApp) -> str:
    return screen(app).flash_line.text


def listen(app: CockpitApp, env: dict[str, str] | None = None) -> list[str]:
    """What the app's notifier writes to the terminal, from now on."""
    written: list[str] = []
    app.notifier = Notifier(app, write=written.append, env=env or {})
    return written


async def test_endings_together_and_in_quick_succession_make_one_flash_line(db: Path) -> None:
    together = Gate(2)  # a and b hold after two tokens, then end at once
    scripts = {"ma": ModelScript(gate=together), "mb": ModelScript(gate=together),
               "mc": ModelScript(fail_first=1, fail_status=404)}  # c fails as soon as it starts
    async with FakeOllama(scripts) as fake:
        app = app_for(fake, db, [{"name": "a", "model": "ma"}, {"name": "b", "model": "mb"},
                                 {"name": "c", "model": "mc", "after": ["a", "b"]}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: all(app.view.agents.get(n) is not None
                                         and app.view.agents[n].tokens >= 2 for n in "ab"),
                             what="a and b held")
            together.open()
            await wait_until(lambda: app.view.outcome is not None, what="the crew ended")
            await pilot.pause()
            line = screen(app).flash_line
            assert line.text in ("finished: a, b · failed: c", "finished: b, a · failed: c")
            assert line.severity == "error"
            assert line.has_class("-error")
            assert not any("finished" in n.message or "failed" in n.message
                           for n in app._notifications)  # no toast stacked over the panes


async def test_the_flash_line_replaces_clears_and_shows_untrusted_text_plainly(
        db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["x"], stall_after=0)}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=SIZE) as pilot:
            cockpit = screen(app)
            cockpit.flash("first")
            cockpit.flash("[bold red]a[/] \x1b[2J\x1b]0;t\x07 b\nc", "warning")
            await pilot.pause()
            assert flash_text(app) == "[bold red]a[/] b c"
            assert str(cockpit.flash_line.render()) == "[bold red]a[/] b c"  # no markup ran
            assert cockpit.flash_line.has_class("-warning")
            cockpit.flash("brief", timeout=0.05)
            await wait_until(lambda: flash_text(app) == "", what="the line cleared itself")
            assert str(cockpit.flash_line.render()) == ""


async def test_a_failure_rings_and_sends_osc9_with_the_error_made_inert(db: Path) -> None:
    scripts = {"m1": ModelScript(fail_first=1, fail_status=404, fail_message=HOSTILE)}
    async with FakeOllama(scripts) as fake:
        app = app_for(fake, db, [{"name": "a"}],
                      notify={"on": ["failed"], "desktop": "osc9"})
        written = listen(app)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.outcome is not None, what="the crew ended")
            await pilot.pause()
            assert written == [
                "\a\x1b]9;cockpit · test-crew: a failed: Ollama answered 404: model not "
                "found, run `ollama pull m1`\a"]
            assert flash_text(app) == ("a failed: Ollama answered 404: model not found; run "
                                       "`ollama pull m1`")


async def test_a_waiting_call_flashes_and_notifies_through_osc777(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes())}) as fake:
        app = gated(fake, db, notify={"desktop": "osc777", "bell": False})
        written = listen(app, {"TMUX": "/tmp/tmux-0/default,1,0"})
        async with app.run_test(size=SIZE):
            await wait_until(lambda: "w.1.1" in app.view.approvals, what="the call waits")
            await wait_until(lambda: written != [], what="the notification")
            assert written == ["\x1bPtmux;\x1b\x1b]777;notify;cockpit · test-crew;w asks to run "
                               "board_write\a\x1b\\"]
            await wait_until(lambda: flash_text(app) == "w asks to run board_write — press a",
                             what="the flash line")
            assert screen(app).flash_line.severity == "warning"


async def test_the_crew_end_runs_notify_send_with_plain_arguments(db: Path,
                                                                  tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "notify-send"
    program.write_text('#!/bin/sh\nout="$(dirname "$0")/argv"\n'
                       'printf "%s\\n" "$@" > "$out.tmp" && mv "$out.tmp" "$out"\n')
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    recorded = bin_dir / "argv"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    async with FakeOllama({"m1": ModelScript()}) as fake:
        app = app_for(fake, db, [{"name": "a"}],
                      notify={"on": ["crew_end"], "desktop": "notify-send"})
        app.notifier = Notifier(app, env=env)  # the real terminal port: none, headless
        async with app.run_test(size=SIZE):
            await wait_until(recorded.exists, what="notify-send ran")
    assert recorded.read_text().splitlines() == [
        "--app-name=cockpit", "--urgency=normal", "--", "cockpit · test-crew",
        "the crew finished (1 agent)"]


@pytest.mark.slow
async def test_an_attached_viewer_announces_what_happens_after_it_came_not_the_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cockpit.core.sources import AttachedSource
    from cockpit.ui.app import viewer

    gate = Gate(2)
    scripts = {"ma": ModelScript(fail_first=1, fail_status=404),  # a fails before we attach
               "mb": ModelScript(tokens=["b0 ", "b1 ", "b2 ", "b3"], gate=gate)}
    crew, db, env = tmp_path / "crew.toml", tmp_path / "log.db", cockpit_env(tmp_path)
    monkeypatch.setenv("COCKPIT_RUNTIME_DIR", env["COCKPIT_RUNTIME_DIR"])  # we attach too
    notify = '[notify]\non = ["failed", "finished", "crew_end"]\ndesktop = "osc9"'
    with FakeOllamaThread(scripts) as fake, owners(db):
        crew.write_text(crew_toml(fake.url, ["a", "b"], extra=notify))
        session = detach(crew, db, env)
        await wait_until(lambda: any(e.type == "agent_failed" for e in events(db))
                         and sum(e.type == "token" for e in events(db)) >= 2,
                         what="a failed and b streams, before the viewer comes")
        app = viewer(await AttachedSource.open(db, session), watch_themes=False)
        written = listen(app)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: "a" in app.view.agents
                             and app.view.agents["a"].status == "failed",
                             what="the history shows a's failure")
            await pilot.pause()
            assert written == []
            assert "a failed" not in flash_text(app)
            assert not screen(app).panes["a"].has_class("-flash")
            gate.open()
            await wait_until(lambda: any("the crew ended" in w for w in written),
                             timeout=PATIENCE, what="the crew's end announced")
            await pilot.pause()
            assert "b finished" in "".join(written)
            assert "a failed" not in "".join(written)
            assert all(w.startswith("\a\x1b]9;cockpit · owned-crew: ") for w in written)
            assert flash_text(app) == "b finished"
