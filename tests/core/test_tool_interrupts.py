"""Pause, redirect and stop while a tool runs or a call waits; an MCP server that crashes in a
crew's call; templates that reach into a structured output."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cockpit.core import events as ev
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript, Turn

SERVER = str(Path(__file__).parent.parent / "mcp_server.py")
Messages = list[dict[str, Any]]


def tool_crew(url: str, tool: str, **crew: Any):  # type: ignore[no-untyped-def]
    return make_crew(url, [{"name": "s", "tools": [tool]}],
                     mcp=[{"name": "t", "command": sys.executable, "args": [SERVER]}], **crew)


def calls_then_answers(call: Turn):  # type: ignore[no-untyped-def]
    def turn(messages: Messages) -> Turn:
        done = [m["content"] for m in messages if m["role"] == "tool"]
        return Turn.say(f"after: {done[-1]}") if done else call
    return turn


async def test_pause_while_a_tool_runs_cuts_it_off_and_tells_the_model(
        db: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    script = ModelScript(turn=calls_then_answers(
        Turn.call("t.slow", seconds=300, started=str(started))))
    async with FakeOllama({"m1": script}) as fake, \
            running(tool_crew(fake.url, "t.slow"), db) as session:
        await wait_until(started.exists, what="the tool to be running")
        await session.supervisor.pause("s")
        assert session.state.agents["s"].status == "paused"
        await session.supervisor.resume("s")
        state = await session.supervisor.wait()
        logged = await session.logged()
    result = next(e for e in logged if isinstance(e, ev.ToolResult))
    assert result.error and "cut off by a pause and was not retried" in result.content
    assert sum(isinstance(e, ev.ToolCalled) for e in logged) == 1
    assert state.agents["s"].output == f"after: {result.content}"


async def test_stop_while_a_tool_runs_ends_the_agent(db: Path) -> None:
    script = ModelScript(turn=calls_then_answers(Turn.call("t.slow", seconds=300)))
    async with FakeOllama({"m1": script}) as fake, \
            running(tool_crew(fake.url, "t.slow"), db) as session:
        await wait_until(lambda: "tool_called" in session.types("s"), what="the call")
        await session.supervisor.stop("s")
        state = await session.supervisor.wait()
    assert state.agents["s"].status == "stopped" and not state.agents["s"].calls


async def test_redirect_while_a_call_waits_for_approval_closes_it(db: Path) -> None:
    def turn(messages: Messages) -> Turn:
        last = messages[-1]
        if last["role"] == "user" and last["content"] == "Just say hi.":
            return Turn.say("hi")
        return Turn.call("board_write", key="k", value="v")

    async with FakeOllama({"m1": ModelScript(turn=turn)}) as fake:
        crew = make_crew(fake.url, [{"name": "w", "tools": ["board"]}], approve=["board_*"])
        async with running(crew, db) as session:
            await session.wait_status("w", "awaiting approval")
            await session.supervisor.redirect("w", "Just say hi.")
            state = await session.supervisor.wait()
            logged = await session.logged()
    assert state.agents["w"].output == "hi" and not state.approvals
    result = next(e for e in logged if isinstance(e, ev.ToolResult))
    assert result.error and result.content == "not run: person redirected the agent"
    assert "k" not in state.board


async def test_an_mcp_server_that_crashes_in_a_call_is_restarted(db: Path) -> None:
    def turn(messages: Messages) -> Turn:
        done = [m["content"] for m in messages if m["role"] == "tool"]
        if not done:
            return Turn.call("t.die")
        if len(done) == 1:
            return Turn.call("t.add", a=2, b=3)
        return Turn.say(f"sum {done[-1]}")

    async with FakeOllama({"m1": ModelScript(turn=turn)}) as fake, \
            running(tool_crew(fake.url, "mcp:t"), db) as session:
        state = await session.supervisor.wait()
        logged = await session.logged()
    results = [e for e in logged if isinstance(e, ev.ToolResult)]
    assert results[0].error and "crashed during the call" in results[0].content
    restarted = next(e for e in logged if isinstance(e, ev.ToolServerRestarted))
    assert restarted.server == "t" and restarted.agent is None
    assert not results[1].error and results[1].content == "5"
    assert state.agents["s"].output == "sum 5"


async def test_a_template_reaches_into_a_structured_output(db: Path) -> None:
    plan = ModelScript(tokens=['{"steps": ["draft", "review"], "owner": "ana"}'])
    echo = ModelScript(reply=lambda messages: [messages[-1]["content"]])
    async with FakeOllama({"m1": plan, "m2": echo}) as fake:
        crew = make_crew(fake.url, [
            {"name": "plan", "format": "json"},
            {"name": "do", "model": "m2", "after": ["plan"],
             "task": "Owner {{outputs.plan.owner}}, first {{outputs.plan.steps.0}}, all "
                     "{{outputs.plan.steps}}"},
        ])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
    assert state.agents["do"].output == 'Owner ana, first draft, all ["draft", "review"]'
