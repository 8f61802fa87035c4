"""Wake-ups at the edges: a crash between a message and its wake-up, a dependency woken while
its dependents wait, two running agents messaging each other every turn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.core.eventlog import EventLog
from cockpit.core.resume import load_resumable
from cockpit.core.supervisor import Supervisor
from tests.conftest import make_crew, running
from tests.fake_ollama import FakeOllama, ModelScript, Turn

Messages = list[dict[str, Any]]


def reader(messages: Messages) -> Turn:
    got = [m["content"] for m in messages if m["role"] == "user"
           and m["content"].startswith("Message from ")]
    return Turn.say(f"read: {got[-1]}" if got else "first")


async def test_resume_wakes_a_finished_agent_whose_message_the_crash_left_unread(
        db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=reader)}) as fake:
        crew = make_crew(fake.url, [{"name": "a"}, {"name": "b", "tools": ["messages"]}])
        # The log of a process that died right after b's message: a had finished, b had not.
        async with EventLog.open(db) as log:
            first = Supervisor(crew, log, EventBus())
            await first.record(ev.SessionStarted, None, crew=crew.name,
                               config=crew.model_dump(mode="json"), pid=os.getpid(), version="0")
            opening = [{"role": "user", "content": "Say hello."}]
            for name in "ab":
                await first.record(ev.AgentStarted, name, model="m1", host=fake.url,
                                   messages=opening)
            await first.record(ev.MessageCompleted, "a", content="first")
            await first.record(ev.AgentFinished, "a", output="first")
            await first.record(ev.MessageSent, "b", to="a", text="wake up", **{"from": "b"})
            await first.record(ev.MessageCompleted, "b", content="sent")
            await first.record(ev.AgentFinished, "b", output="sent")
            session = first.session
        async with EventLog.open(db) as log:
            found = await load_resumable(log, session)
            assert not found.complete  # a still has a message to read
            supervisor = Supervisor(found.crew, log, EventBus(), session=session)
            state = await supervisor.run(found.state)
    assert state.outcome == "finished"
    assert state.agents["a"].output == "read: Message from b: wake up"
    assert state.agents["a"].wakeups == 1


async def test_a_dependency_woken_while_its_dependent_waits_does_not_fail_it(db: Path) -> None:
    def sender(messages: Messages) -> Turn:
        done = [m for m in messages if m["role"] == "tool"]
        return Turn.say("sent") if done else Turn.call("send_message", to="a", text="more")

    scripts = {"m1": ModelScript(turn=reader),
               "slow": ModelScript(tokens=[f"s{i} " for i in range(30)], delay=0.01),
               "m2": ModelScript(turn=sender)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [
            {"name": "a"},
            {"name": "b", "model": "m2", "tools": ["messages"], "after": ["a"]},
            {"name": "d", "model": "slow"},
            {"name": "c", "after": ["a", "d"], "task": "Use {{outputs.a}}"},
        ])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
    assert state.outcome == "finished", {n: a.error for n, a in state.agents.items()}
    assert state.agents["a"].wakeups == 1 and state.agents["c"].status == "finished"


async def test_two_running_agents_messaging_every_turn_meet_max_turns(db: Path) -> None:
    def pester(other: str):  # type: ignore[no-untyped-def]
        return lambda messages: Turn.call("send_message", to=other, text="and again")

    scripts = {"m1": ModelScript(turn=pester("b")), "m2": ModelScript(turn=pester("a"))}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [
            {"name": "a", "tools": ["messages"]},
            {"name": "b", "model": "m2", "tools": ["messages"]},
        ], max_turns=4, max_wakeups=1)
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
    for agent in state.agents.values():
        assert agent.status == "failed" and "max_turns is 4" in (agent.error or "")
