"""Messages between agents: delivery at the next turn, in the opening of an agent that has not
started, waking a finished agent, and the wake-up limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cockpit.core import events as ev
from tests.conftest import make_crew, running
from tests.fake_ollama import FakeOllama, ModelScript, Turn

Messages = list[dict[str, Any]]


def results(messages: Messages) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "tool"]


def inbox(messages: Messages) -> list[str]:
    return [m["content"] for m in messages
            if m["role"] == "user" and m["content"].startswith("Message from ")]


async def test_a_message_wakes_a_finished_agent_which_answers_it(db: Path) -> None:
    def sender(messages: Messages) -> Turn:
        if not results(messages):
            return Turn.call("send_message", to="reader", text="the plan is on the board")
        return Turn.say("sent")

    def reader(messages: Messages) -> Turn:
        got = inbox(messages)
        return Turn.say(f"read: {got[-1]}" if got else "nothing yet")

    scripts = {"m1": ModelScript(turn=sender), "m2": ModelScript(turn=reader)}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [
            {"name": "reader", "model": "m2"},
            {"name": "writer", "tools": ["messages"], "after": ["reader"]},
        ])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    sent = next(e for e in logged if isinstance(e, ev.MessageSent))
    assert (sent.from_, sent.to, sent.text) == ("writer", "reader", "the plan is on the board")
    assert sent.data()["from"] == "writer"
    result = next(e for e in logged if isinstance(e, ev.ToolResult))
    assert result.content == "sent: reader had finished and wakes up to read it"
    woken = next(e for e in logged if isinstance(e, ev.AgentWoken))
    assert (woken.by, woken.wakeups) == ("writer", 1)
    assert state.outcome == "finished"
    assert state.agents["reader"].output == "read: Message from writer: the plan is on the board"
    assert state.board["outputs.reader"].value == state.agents["reader"].output
    finished = [e.output for e in logged if isinstance(e, ev.AgentFinished) and e.agent == "reader"]
    assert finished == ["nothing yet", state.agents["reader"].output]


async def test_an_agent_that_has_not_started_gets_the_message_in_its_opening(db: Path) -> None:
    def sender(messages: Messages) -> Turn:
        if not results(messages):
            return Turn.call("send_message", to="later", text="use the short form")
        return Turn.say("sent")

    async with FakeOllama({"m1": ModelScript(turn=sender),
                           "m2": ModelScript(tokens=["ok"])}) as fake:
        crew = make_crew(fake.url, [
            {"name": "early", "tools": ["messages"]},
            {"name": "later", "model": "m2", "after": ["early"]},
        ])
        async with running(crew, db) as session:
            await session.supervisor.wait()
            logged = await session.logged()
    started = next(e for e in logged if isinstance(e, ev.AgentStarted) and e.agent == "later")
    assert started.messages[-1] == {"role": "user",
                                    "content": "Message from early: use the short form"}
    assert not any(isinstance(e, ev.AgentWoken) for e in logged)


async def test_the_wake_up_limit_stops_two_agents_trading_messages(db: Path) -> None:
    def chatty(other: str):  # type: ignore[no-untyped-def]
        def turn(messages: Messages) -> Turn:
            last = messages[-1]
            if last["role"] == "tool":
                return Turn.say("done")
            return Turn.call("send_message", to=other, text="your turn")
        return turn

    scripts = {"m1": ModelScript(turn=chatty("b")), "m2": ModelScript(turn=chatty("a"))}
    async with FakeOllama(scripts) as fake:
        crew = make_crew(fake.url, [
            {"name": "a", "tools": ["messages"], "max_wakeups": 2},
            {"name": "b", "model": "m2", "tools": ["messages"], "after": ["a"],
             "max_wakeups": 2},
        ])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    refused = [e for e in logged if isinstance(e, ev.WakeRefused)]
    assert len(refused) == 1 and refused[0].limit == 2
    assert state.outcome == "finished"
    assert all(not agent.inbox for agent in state.agents.values() if agent.name != refused[0].agent)
    woken = [e for e in logged if isinstance(e, ev.AgentWoken)]
    assert sorted(e.agent for e in woken).count(refused[0].agent) == 2


async def test_a_message_to_nobody_is_an_error_result(db: Path) -> None:
    def sender(messages: Messages) -> Turn:
        return Turn.say("ok") if results(messages) else Turn.call(
            "send_message", to="ghost", text="hi")

    async with FakeOllama({"m1": ModelScript(turn=sender)}) as fake:
        crew = make_crew(fake.url, [{"name": "s", "tools": ["messages"]},
                                    {"name": "t", "model": "m1"}])
        async with running(crew, db) as session:
            await session.supervisor.wait()
            logged = await session.logged()
    result = next(e for e in logged if isinstance(e, ev.ToolResult) and e.agent == "s")
    assert result.error and result.content == "no agent named 'ghost'; the crew: t"
