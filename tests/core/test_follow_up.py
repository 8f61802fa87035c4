"""Keep talking to an agent: a follow-up to a finished agent is a new turn of the same
conversation, logged as a redirect; a re-run starts it over from its opening and counts
afresh. Both reopen an ended session, both survive a crash, and a run that has ended for good
refuses them. End to end against the fake server, with the real log."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import pytest

from cockpit.cli import run_headless
from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.core.commands import CommandError
from cockpit.core.config import CrewConfig
from cockpit.core.describe import status_text
from cockpit.core.eventlog import EventLog
from cockpit.core.report import write_report
from cockpit.core.resume import load_resumable
from cockpit.core.state import AgentStatus, fold
from cockpit.core.supervisor import Supervisor
from cockpit.status import status_record
from cockpit.status import status_text as cockpit_status
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

Messages = list[dict[str, Any]]
WORDS = [f"w{i} " for i in range(40)]
OPENING = {"role": "user", "content": "Say hello."}


def numbered(messages: Messages) -> list[str]:
    """`answer N`, N the user messages so far: each turn's answer tells which it is."""
    return [f"answer {sum(m['role'] == 'user' for m in messages)}"]


async def report_of(db: Path) -> str:
    async with EventLog.open(db, create=False) as log:
        out = io.StringIO()
        await write_report(log, await log.resolve("last"), out)
    return out.getvalue()


async def test_a_follow_up_is_a_new_turn_of_the_same_conversation(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(reply=numbered)}) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            assert state.outcome == "finished" and state.agents["a"].output == "answer 1"
            await session.supervisor.redirect("a", "Say more.")
            assert session.state.outcome is None  # the fold reopened the session
            await wait_until(lambda: session.state.outcome is not None, what="the new end")
            logged = await session.logged()
    asked = fake.chat_requests()[1].body
    assert asked is not None and asked["messages"] == [
        OPENING, {"role": "assistant", "content": "answer 1"},
        {"role": "user", "content": "Say more."}]
    agent = session.state.agents["a"]
    assert agent.output == "answer 2" and agent.status is AgentStatus.FINISHED
    assert session.state.board["outputs.a"].value == "answer 2"
    assert session.state.board["outputs.a"].version == 2
    redirects = [e for e in logged if isinstance(e, ev.AgentRedirected)]
    assert [(e.instruction, e.follow_up) for e in redirects] == [("Say more.", True)]
    assert [e.output for e in logged if isinstance(e, ev.AgentFinished)] == \
        ["answer 1", "answer 2"]
    assert [e.outcome for e in logged if isinstance(e, ev.SessionFinished)] == \
        ["finished", "finished"]

    report = await report_of(db)
    section = report.split("### a")[1].split("## ")[0]
    assert section.index("Answer 1") < section.index("> answer 1") \
        < section.index("Follow-up: Say more.") < section.index("Answer 2") \
        < section.index("> answer 2")


async def test_redirecting_a_running_agent_is_no_follow_up(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, stall_after=5, faults_for=1)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens >= 5, what="a streaming")
            await session.supervisor.redirect("a", "Shorter.")
            await session.supervisor.wait()
            logged = await session.logged()
    assert [e.follow_up for e in logged if isinstance(e, ev.AgentRedirected)] == [False]
    assert session.state.agents["a"].follow_ups == 0


async def test_a_run_that_has_ended_for_good_refuses_follow_ups_and_re_runs(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(reply=numbered)}) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with EventLog.open(db) as log:
            supervisor = Supervisor(crew, log, EventBus())
            state = await supervisor.run()  # a headless run: it has ended, and so has its loop
            assert state.outcome == "finished"
            with pytest.raises(CommandError, match="has ended"):
                await supervisor.redirect("a", "Say more.")
            with pytest.raises(CommandError, match="has ended"):
                await supervisor.restart("a")
            logged = [e async for e in log.iter_events(supervisor.session)]
    assert not any(isinstance(e, ev.AgentRedirected | ev.AgentRestarted) for e in logged)
    assert len(fake.chat_requests()) == 1


async def test_a_re_run_starts_a_finished_agent_over_and_counts_afresh(db: Path) -> None:
    # the first request fails (a retry), the rest stream: the re-run has no retry of its own
    scripts = {"m1": ModelScript(tokens=WORDS[:6], fail_first=1, fail_status=500)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}], retries=2)
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            agent = state.agents["a"]
            assert (agent.tokens, agent.retries, agent.status) == (6, 1, AgentStatus.FINISHED)
            await session.supervisor.restart("a")
            await wait_until(lambda: session.state.outcome is not None, what="the re-run's end")
            logged = await session.logged()
    agent = session.state.agents["a"]
    assert (agent.tokens, agent.retries, agent.output) == (6, 0, "".join(WORDS[:6]))
    rerun = fake.chat_requests()[-1].body
    assert rerun is not None and rerun["messages"] == [OPENING]  # from its opening
    assert [e.type for e in logged if e.agent == "a"].count("agent_started") == 2  # type: ignore[attr-defined]


async def test_a_reply_cut_off_by_num_predict_finishes_as_length_everywhere(
        db: Path, tmp_path: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=WORDS)}) as fake:
        crew = make_crew(fake.url, [{"name": "a", "options": {"num_predict": 3}}])
        progress = io.StringIO()
        assert await run_headless(crew, tmp_path / "crew.toml", db, stream=progress) == 0
    async with EventLog.open(db, create=False) as log:
        [row] = await log.sessions()
        state = fold([e async for e in log.iter_events(row.id)])
    agent = state.agents["a"]
    assert agent.output == "".join(WORDS[:3]) and agent.done_reason == "length"
    assert status_text(agent) == "finished (length)"
    finished = [line for line in progress.getvalue().splitlines() if " a " in line]
    assert finished and all("finished (length)" in line for line in finished[-2:])  # + summary
    record = status_record(row, state)
    assert record["agents"][0]["status_text"] == "finished (length)"
    assert "finished (length)" in cockpit_status(record)
    assert "| a | finished (length) |" in await report_of(db)


async def crash_mid_follow_up(crew: CrewConfig, db: Path, fake: FakeOllama) -> float:
    """Run `crew` until its agent has answered and has streamed part of a follow-up, then die
    as a killed process would: nothing more is logged. Returns the last event's time."""
    async with EventLog.open(db) as log:
        supervisor = Supervisor(crew, log, EventBus())
        await supervisor.start()
        await wait_until(lambda: supervisor.state.agents["a"].status is AgentStatus.FINISHED,
                         what="the first answer")
        await supervisor.redirect("a", "Go on.")
        await wait_until(lambda: supervisor.state.agents["a"].tokens >= 1 + 5,
                         what="part of the follow-up")
        drivers = list(supervisor._drivers.values())
        for driver in drivers:
            driver.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
        await supervisor.commit()
        await supervisor.aclose()
        last = supervisor.state.last_ts
    assert last is not None
    return last


async def test_a_follow_up_cut_off_by_a_crash_goes_on_after_resume(db: Path) -> None:
    released: list[bool] = []

    def reply(messages: Messages) -> list[str]:
        return ["first answer"] if sum(m["role"] == "user" for m in messages) == 1 else WORDS

    # The follow-up holds after 5 tokens until the crash is over.
    script = ModelScript(reply=reply, gate=lambda i: i < 5 or bool(released))
    async with FakeOllama({"m1": script}) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        crashed_at = await crash_mid_follow_up(crew, db, fake)
        released.append(True)
        async with EventLog.open(db) as log:
            found = await load_resumable(log, "last")
            before = found.state.agents["a"]
            assert before.status is AgentStatus.STREAMING and before.output == "first answer"
            partial = before.partial
            supervisor = Supervisor(found.crew, log, EventBus(), session=found.state.session)
            state = await supervisor.run(found.state)
            logged = [e async for e in log.iter_events(state.session)]
    assert state.outcome == "finished"
    assert state.agents["a"].output == "".join(WORDS)
    assert state.board["outputs.a"].value == "".join(WORDS)
    continued = fake.chat_requests()[-1].body
    assert continued is not None and continued["messages"] == [
        OPENING, {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "Go on."}, {"role": "assistant", "content": partial}]
    [resumed] = [e for e in logged if isinstance(e, ev.SessionResumed)]
    assert (resumed.previous, resumed.stopped_at) == ("crashed", crashed_at)

    report = await report_of(db)
    clock = "%H:%M"
    line = (f"── crashed at {time.strftime(clock, time.localtime(crashed_at))}, resumed at "
            f"{time.strftime(clock, time.localtime(resumed.ts))} ──")
    assert line in report
    section = report.split("### a")[1].split("## ")[0]
    assert section.index("> first answer") < section.index("Follow-up: Go on.") \
        < section.index("Answer 2") < section.index("> w0 w1")
