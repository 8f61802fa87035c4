"""Keep talking to an agent in the TUI: `r` on a finished agent asks a follow-up, `R` re-runs
it after a confirmation, the counts are the re-run's own, a reply cut off by `num_predict`
says so in its header, and a resumed session marks where it stopped in each pane."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cockpit.core import events as ev
from cockpit.core.eventlog import EventLog
from cockpit.core.resume import load_resumable
from cockpit.ui.app import make_app
from cockpit.ui.screens.cockpit import CockpitScreen
from cockpit.ui.screens.modals import ConfirmModal
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript
from tests.ui.test_cockpit import SIZE, app_for, body, input_ready, logged, pane

Messages = list[dict[str, Any]]
WORDS = [f"w{i} " for i in range(80)]


def numbered(messages: Messages) -> list[str]:
    return ["answer ", str(sum(m["role"] == "user" for m in messages))]


def counts(app: Any, name: str) -> str:
    return str(pane(app, name).query_one("#counts").render())


def header(app: Any, name: str) -> str:
    return str(pane(app, name).query_one("#header").render())


async def test_r_on_a_finished_agent_asks_a_follow_up(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(reply=numbered)}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.outcome == "finished", what="the first answer")
            screen = app.screen
            assert isinstance(screen, CockpitScreen)
            assert screen.check_action("redirect", ()) is True  # not dimmed once finished
            await pilot.press("1", "r")
            await wait_until(lambda: input_ready(app), what="the follow-up prompt")
            await pilot.press(*"Say more.", "enter")
            await wait_until(lambda: app.view.agents["a"].output == "answer 2"
                             and app.view.outcome == "finished", what="the second answer")
            await pilot.pause()
            shown = body(app, "a")
            assert shown.index("answer 1") < shown.index("follow-up by person: Say more.") \
                < shown.index("answer 2")
            assert "finished" in header(app, "a")
    requests = fake.chat_requests()
    asked = requests[-1].body
    assert len(requests) == 2 and asked is not None
    assert [m["content"] for m in asked["messages"]] == ["Say hello.", "answer 1", "Say more."]
    redirected = [e for e in await logged(db) if isinstance(e, ev.AgentRedirected)]
    assert [(e.instruction, e.follow_up) for e in redirected] == [("Say more.", True)]


async def test_R_re_runs_a_finished_agent_after_confirmation(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=WORDS[:4])}) as fake:
        app = app_for(fake, db, [{"name": "a"}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.outcome == "finished", what="the first run")
            await pilot.pause()
            assert counts(app, "a").startswith("4 tok")
            await pilot.press("1", "R")
            await wait_until(lambda: isinstance(app.screen, ConfirmModal), what="the question")
            await pilot.press("n")
            await wait_until(lambda: isinstance(app.screen, CockpitScreen), what="declined")
            assert app.view.agents["a"].interventions == 0 and len(fake.chat_requests()) == 1
            await pilot.press("R")
            await wait_until(lambda: isinstance(app.screen, ConfirmModal), what="asked again")
            await pilot.press("y")
            await wait_until(lambda: app.view.agents["a"].interventions == 1
                             and app.view.outcome == "finished", what="the re-run's end")
            await pilot.pause()
            assert counts(app, "a").startswith("4 tok")  # the re-run's tokens, not 8
            assert body(app, "a").strip() == "".join(WORDS[:4]).strip()  # shown once
    rerun = fake.chat_requests()[-1].body
    assert rerun is not None and [m["content"] for m in rerun["messages"]] == ["Say hello."]
    types = [e.type for e in await logged(db) if e.agent == "a"]  # type: ignore[attr-defined]
    assert types.count("agent_restarted") == 1 and types.count("agent_finished") == 2


async def test_a_reply_cut_off_by_num_predict_shows_finished_length(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=WORDS)}) as fake:
        app = app_for(fake, db, [{"name": "a", "options": {"num_predict": 3}}])
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.view.outcome == "finished", what="the cut-off answer")
            await pilot.pause()
            assert "finished (length)" in header(app, "a")


async def test_a_resumed_session_marks_where_it_stopped_in_each_pane(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, stall_after=10, faults_for=1),
               "m2": ModelScript(tokens=["done"])}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "model": "m2"}])
        async with running(crew, db) as session:  # leaving it = quitting: interrupted
            await wait_until(lambda: session.state.agents["a"].tokens >= 10
                             and session.state.agents["b"].status == "finished",
                             what="a streaming, b finished")
        async with EventLog.open(db, create=False) as log:
            found = await load_resumable(log, "last")
        stopped = found.state.last_ts
        assert stopped is not None and found.state.outcome == "interrupted"
        app = make_app(found.crew, db, watch_themes=False, resume=found.state)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: str(app.view.agents["a"].status) == "finished",
                             what="the resumed agent to finish")
            await pilot.pause()
            resumed = next(e for e in await logged(db) if isinstance(e, ev.SessionResumed))
            line = (f"── interrupted at {time.strftime('%H:%M', time.localtime(stopped))}, "
                    f"resumed at {time.strftime('%H:%M', time.localtime(resumed.ts))} ──")
            assert line in body(app, "a").splitlines()
            assert "resumed at" not in body(app, "b")  # it had finished: nothing went on
