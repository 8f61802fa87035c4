"""The turn loop against the fake server: a model that calls tools, reads their results and
answers; the board and message tools; max_turns; verified outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cockpit.core import events as ev
from tests.conftest import make_crew, running
from tests.fake_ollama import FakeOllama, ModelScript, Turn

Messages = list[dict[str, Any]]


def tool_results(messages: Messages) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "tool"]


def writer(messages: Messages) -> Turn:
    """Turn 1 writes the plan; turn 2 answers with what the tool said."""
    results = tool_results(messages)
    if not results:
        return Turn.call("board_write", key="plan", value="draft one")
    return Turn.say(f"done: {results[-1]}")


async def test_a_tool_call_runs_and_the_next_turn_reads_its_result(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writer)}) as fake:
        crew = make_crew(fake.url, [{"name": "w", "tools": ["board"]}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    assert state.outcome == "finished"
    assert state.board["plan"].value == "draft one"
    assert state.board["plan"].by == "w" and state.board["plan"].tool == "board_write"
    types = [e.type for e in logged if e.agent == "w"]  # type: ignore[attr-defined]
    assert types.count("message_completed") == 2
    first = next(e for e in logged if isinstance(e, ev.MessageCompleted))
    assert first.tool_calls == [{"id": "w.1.1", "function": {
        "name": "board_write", "arguments": {"key": "plan", "value": "draft one"}}}]
    called = next(e for e in logged if isinstance(e, ev.ToolCalled))
    result = next(e for e in logged if isinstance(e, ev.ToolResult))
    assert (called.call_id, called.tool, called.turn) == ("w.1.1", "board_write", 1)
    assert result.call_id == "w.1.1" and not result.error and result.duration_ms >= 0
    assert result.content == "wrote 'plan' (now version 1)"
    written = next(e for e in logged if isinstance(e, ev.StateSet) and e.key == "plan")
    assert types.index("tool_called") < types.index("state_set") < types.index("tool_result")
    assert written.by == "w"
    # The second request carried the assistant's call and the tool's result, in order.
    second = fake.chat_requests("m1")[1].body
    assert second is not None
    assert second["tools"] and {t["function"]["name"] for t in second["tools"]} == {
        "board_read", "board_list", "board_write"}
    tail = second["messages"][-2:]
    assert tail[0]["role"] == "assistant" and tail[0]["tool_calls"][0]["function"]["name"] == \
        "board_write"
    assert tail[1] == {"role": "tool", "tool_name": "board_write",
                       "content": "wrote 'plan' (now version 1)"}
    assert state.agents["w"].output == "done: wrote 'plan' (now version 1)"
    assert state.board["outputs.w"].value == state.agents["w"].output


async def test_a_stale_expected_version_is_refused_and_the_model_is_told(db: Path) -> None:
    def stale(messages: Messages) -> Turn:
        results = tool_results(messages)
        if not results:
            return Turn.call("board_write", key="plan", value="mine", expected_version=1)
        return Turn.say("ok")

    async with FakeOllama({"m1": ModelScript(turn=stale)}) as fake:
        crew = make_crew(fake.url, [{"name": "w", "tools": ["board"]}],
                         state={"plan": "theirs"})
        async with running(crew, db) as session:
            await session.supervisor.set_state("plan", "newer", by="person")  # version 2
            state = await session.supervisor.wait()
            logged = await session.logged()
    result = next(e for e in logged if isinstance(e, ev.ToolResult))
    assert result.error
    assert "refused: 'plan' is at version 2, written by person, not 1" in result.content
    assert state.board["plan"].value == "newer"  # nobody's work was overwritten


async def test_board_read_and_list(db: Path) -> None:
    def reader(messages: Messages) -> Turn:
        results = tool_results(messages)
        if len(results) == 0:
            return Turn.call("board_list", prefix="topic")
        if len(results) == 1:
            return Turn.call("board_read", key="topic")
        if len(results) == 2:
            return Turn.call("board_read", key="nope")
        return Turn.say("read")

    async with FakeOllama({"m1": ModelScript(turn=reader)}) as fake:
        crew = make_crew(fake.url, [{"name": "r", "tools": ["board"]}],
                         state={"topic": "tools", "other": 1})
        async with running(crew, db) as session:
            await session.supervisor.wait()
            logged = await session.logged()
    results = [e for e in logged if isinstance(e, ev.ToolResult)]
    assert json.loads(results[0].content) == [
        {"key": "topic", "value": "tools", "version": 1, "by": "crew"}]
    assert json.loads(results[1].content) == {"key": "topic", "value": "tools", "version": 1,
                                              "by": "crew"}
    assert results[2].error and "no key 'nope' on the board" in results[2].content


async def test_max_turns_ends_a_model_that_never_answers(db: Path) -> None:
    loop = ModelScript(turn=lambda messages: Turn.call("board_list"))
    async with FakeOllama({"m1": loop}) as fake:
        crew = make_crew(fake.url, [{"name": "l", "tools": ["board"], "max_turns": 3}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
    agent = state.agents["l"]
    assert agent.status == "failed"
    assert agent.error == ("no final answer after 3 turns in a row that called tools "
                           "(max_turns is 3)")
    assert len(fake.chat_requests("m1")) == 3


async def test_an_unknown_tool_is_an_error_result_not_a_crash(db: Path) -> None:
    def confused(messages: Messages) -> Turn:
        return Turn.say("fine") if tool_results(messages) else Turn.call("rm_rf", path="/")

    async with FakeOllama({"m1": ModelScript(turn=confused)}) as fake:
        crew = make_crew(fake.url, [{"name": "c", "tools": ["board"]}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    result = next(e for e in logged if isinstance(e, ev.ToolResult))
    assert result.error and "there is no tool named 'rm_rf'" in result.content
    assert state.agents["c"].status == "finished"
    assert not any(isinstance(e, ev.ToolCalled) for e in logged)  # nothing ran


async def test_a_structured_output_gets_one_correction_turn(db: Path) -> None:
    schema = {"type": "object", "required": ["verdict"],
              "properties": {"verdict": {"type": "string", "enum": ["ship", "hold"]}}}

    def reviewer(messages: Messages) -> Turn:
        corrected = any("did not pass its checks" in (m.get("content") or "")
                        for m in messages if m["role"] == "user")
        return Turn([json.dumps({"verdict": "ship"})]) if corrected else Turn(['{"verdict": 1}'])

    async with FakeOllama({"m1": ModelScript(turn=reviewer)}) as fake:
        crew = make_crew(fake.url, [{"name": "v", "format": schema}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    checked = [e for e in logged if isinstance(e, ev.OutputChecked)]
    assert [c.passed for c in checked] == [False, True]
    assert "at verdict: 1 is not of type 'string'" in checked[0].failures[0]
    assert state.agents["v"].status == "finished" and state.agents["v"].verified
    assert state.board["outputs.v"].value == {"verdict": "ship"}  # the parsed JSON
    assert fake.chat_requests("m1")[0].body["format"] == schema  # type: ignore[index]


async def test_an_output_that_never_passes_fails_with_the_checks_message(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(tokens=["too short"])}) as fake:
        crew = make_crew(fake.url, [{"name": "s", "checks": {"min_length": 50},
                                     "check_retries": 2}])
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
    agent = state.agents["s"]
    assert agent.status == "failed"
    assert agent.error == ("its answer failed its checks after 2 correction turns: the answer "
                           "is 9 characters; it must have at least 50")
    assert len(fake.chat_requests("m1")) == 3
