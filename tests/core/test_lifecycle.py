"""One lifecycle, folded from the log: restarts reopen a session, pauses outlive a quit, resume
continues failed sessions (`--only` limits it), and a pid alone never identifies the owner."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.core.config import CrewConfig
from cockpit.core.eventlog import EventLog
from cockpit.core.process import owner_alive, start_time
from cockpit.core.resume import ResumeError, load_resumable, outcome_of
from cockpit.core.state import AgentStatus, SessionState
from cockpit.core.supervisor import Supervisor
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript

WORDS = [f"w{i} " for i in range(60)]
FULL = "".join(WORDS)
TIMEOUT = 60.0


async def resume(crew: CrewConfig, db: Path, only: list[str] | None = None,
                 ) -> tuple[SessionState, list[ev.BaseEvent]]:
    """`cockpit resume` in-process: load the session from the log and run it to its end."""
    async with EventLog.open(db) as log:
        found = await load_resumable(log, "last", only)
        supervisor = Supervisor(found.crew, log, EventBus(), session=found.state.session)
        state = await supervisor.run(found.state, only=found.only)
        logged = [e async for e in log.iter_events(state.session)]
    return state, logged


async def test_a_restart_reopens_a_failed_session_and_it_ends_anew(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, fail_first=1, fail_status=400,
                                 fail_message="bad request")}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            assert state.outcome == "failed"
            await session.supervisor.restart("a")
            assert session.state.outcome is None  # the fold reopened it
            await wait_until(lambda: session.state.outcome is not None, TIMEOUT,
                             "the reopened session to end")
            logged = await session.logged()
            rows = await session.log.sessions()
    finishes = [e for e in logged if isinstance(e, ev.SessionFinished)]
    assert [e.outcome for e in finishes] == ["failed", "finished"]
    assert rows[0].outcome == "finished"
    assert session.state.agents["a"].output == FULL


async def test_quitting_during_a_restart_leaves_the_session_resumable(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, fail_first=1, fail_status=400, delay=0.01)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            await session.supervisor.wait()
            await session.supervisor.restart("a")
            await wait_until(lambda: session.state.agents["a"].tokens > 3, TIMEOUT, "tokens")
        # leaving `running` is the quit: the supervisor shuts down
        async with EventLog.open(db) as log:
            row = (await log.sessions())[0]
        assert outcome_of(row) == "interrupted"
        state, _ = await resume(crew, db)
    assert state.outcome == "finished" and state.agents["a"].output == FULL


async def test_a_pause_outlives_quit_and_resume(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.01)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens > 3, TIMEOUT, "tokens")
            await session.supervisor.pause("a")
        requests = len(fake.chat_requests())
        async with EventLog.open(db) as log:
            found = await load_resumable(log, "last")
            assert found.state.agents["a"].status is AgentStatus.PAUSED
            supervisor = Supervisor(found.crew, log, EventBus(), session=found.state.session)
            await supervisor.resume_session(found.state)
            runner_started = supervisor._drivers["a"]
            await wait_until(lambda: "a" in supervisor._runners, TIMEOUT, "the runner")
            assert supervisor.state.agents["a"].status is AgentStatus.PAUSED
            assert len(fake.chat_requests()) == requests  # nothing was sent while paused
            assert not runner_started.done()
            await supervisor.resume("a")
            state = await supervisor.wait()
            await supervisor.aclose()
            logged = [e async for e in log.iter_events(state.session)]
    resumed = [e for e in logged if isinstance(e, ev.AgentResumed)]
    assert len(resumed) == 1 and resumed[0].by == "person"
    assert state.agents["a"].output == FULL


async def test_resume_continues_a_failed_session_and_starts_what_never_did(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, error_after=10, faults_for=1)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a", "retries": 0},
                                    {"name": "b", "after": ["a"]}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
        assert state.outcome == "failed" and state.agents["b"].started_at is None
        partial = state.agents["a"].partial
        assert partial == "".join(WORDS[:10])

        state, logged = await resume(crew, db)
    assert state.outcome == "finished"
    assert state.agents["a"].output == FULL and state.agents["b"].output == FULL
    continued = fake.chat_requests("m1")[1].body
    assert continued is not None
    assert continued["messages"][-1] == {"role": "assistant", "content": partial}
    resumed = [e for e in logged if isinstance(e, ev.AgentResumed)]
    assert [(e.agent, e.by) for e in resumed] == [("a", "resume")]


async def test_resume_only_continues_the_named_agents(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, error_after=5, faults_for=2)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a", "retries": 0}, {"name": "c", "retries": 0}])
        async with running(crew, db) as session:
            await session.supervisor.wait()
        try:
            await resume(crew, db, only=["nobody"])
            raise AssertionError("an unknown agent must be refused")
        except ResumeError as error:
            assert "no agent named 'nobody'" in str(error)
        state, _ = await resume(crew, db, only=["a"])
    assert state.agents["a"].status is AgentStatus.FINISHED
    assert state.agents["c"].status is AgentStatus.FAILED
    assert state.outcome == "failed"  # c still failed: resumable again


async def test_a_crash_after_the_last_agent_ended_is_closed_by_resume(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=WORDS)}) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        async with EventLog.open(db) as log:
            supervisor = Supervisor(crew, log, EventBus())
            await supervisor.start()
            await wait_until(lambda: supervisor.state.all_ended, TIMEOUT, "the agent's end")
            await supervisor.aclose()  # the process dies before session_finished
        async with EventLog.open(db) as log:
            found = await load_resumable(log, "last")
        assert found.complete
        state, logged = await resume(crew, db)
    assert state.outcome == "finished"
    assert [e.type for e in logged][-2:] == ["session_resumed", "session_finished"]  # type: ignore[attr-defined]
    assert len(fake.chat_requests()) == 1  # nothing was asked again


def test_a_reused_pid_is_not_the_owner() -> None:
    me = os.getpid()
    started = start_time(me)
    assert started is not None
    host = socket.gethostname()
    assert owner_alive(me, host, started)
    assert not owner_alive(me, host, started - 3600)  # same pid, another process
    assert owner_alive(me, "another-machine", started - 3600)  # cannot tell: assume alive
    assert not owner_alive(None)


async def test_headless_resume_with_only_paused_work_left_ends_interrupted(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.01)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "after": ["a"]}])
        async with running(crew, db) as session:
            await wait_until(lambda: session.state.agents["a"].tokens > 3, TIMEOUT, "tokens")
            await session.supervisor.pause("a")
        async with EventLog.open(db) as log:
            found = await load_resumable(log, "last")
            supervisor = Supervisor(found.crew, log, EventBus(), session=found.state.session)
            # b waits for a, which a person paused: nothing can happen without them
            state = await supervisor.run(found.state, until_idle=True)
    assert state.outcome == "interrupted"
    assert state.agents["a"].status is AgentStatus.PAUSED
    assert state.agents["b"].status is AgentStatus.WAITING


async def test_a_stopped_agent_does_not_keep_a_crashed_session_from_closing(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.01), "m2": ModelScript(tokens=WORDS)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "model": "m2"}])
        async with EventLog.open(db) as log:
            supervisor = Supervisor(crew, log, EventBus())
            await supervisor.start()
            await wait_until(lambda: supervisor.state.agents["a"].tokens > 3, TIMEOUT, "a")
            await supervisor.stop("a")
            await wait_until(lambda: supervisor.state.all_ended, TIMEOUT, "both ended")
            await supervisor.aclose()  # the process dies before session_finished
        state, logged = await resume(crew, db)
    assert state.outcome == "failed"  # a was stopped: exit 1, and the session is closed
    assert [e.type for e in logged][-2:] == ["session_resumed", "session_finished"]  # type: ignore[attr-defined]


async def test_stopping_an_agent_that_resume_only_held_back(db: Path) -> None:
    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.01), "m2": ModelScript(tokens=WORDS)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "after": ["a"]},
                                    {"name": "c", "model": "m2"}])
        async with EventLog.open(db) as log:
            supervisor = Supervisor(crew, log, EventBus())
            await supervisor.start()
            await wait_until(lambda: supervisor.state.agents["c"].status.ended
                             and supervisor.state.agents["a"].tokens > 3, TIMEOUT, "c's end")
            for task in supervisor._drivers.values():
                task.cancel()  # the process dies: a mid-reply, b waiting for it
            await supervisor.aclose()
        async with EventLog.open(db) as log:
            found = await load_resumable(log, "last", ["a"])
            supervisor = Supervisor(found.crew, log, EventBus(), session=found.state.session)
            await supervisor.resume_session(found.state, ["a"])
            assert supervisor.state.agents["b"].status is AgentStatus.WAITING  # held
            await supervisor.stop("b")
            state = await supervisor.wait()
            await supervisor.aclose()
    assert state.agents["b"].status is AgentStatus.STOPPED
    assert state.agents["a"].output == FULL
    assert state.outcome == "failed"  # b was stopped


async def test_shutting_down_on_a_locked_log_does_not_wait_for_the_lock(db: Path) -> None:
    import asyncio
    import sqlite3

    from cockpit.core.eventlog import LogError

    scripts = {"m1": ModelScript(tokens=WORDS, delay=0.01)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [{"name": "a"}])
        holder = None
        try:
            async with EventLog.open(db, stuck_after=0.2, close_grace=0.5) as log:
                supervisor = Supervisor(crew, log, EventBus())
                await supervisor.start()
                await wait_until(lambda: supervisor.state.agents["a"].tokens > 3, TIMEOUT,
                                 "tokens")
                holder = sqlite3.connect(db, isolation_level=None)
                holder.execute("BEGIN IMMEDIATE")  # a backup or a sqlite3 shell
                await wait_until(lambda: supervisor.state.log_stuck is not None, TIMEOUT,
                                 "the log to be stuck")
                # the quit: returns while the lock is still held
                await asyncio.wait_for(supervisor.shutdown(), TIMEOUT)
            raise AssertionError("closing a stuck log must report what was not written")
        except LogError as error:
            assert "rescue" in str(error)
        finally:
            if holder is not None:
                holder.rollback()
                holder.close()
