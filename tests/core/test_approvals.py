"""Approval gates: a gated call waits for a decision that lives in the log; approve, deny,
edit, approve all; the run's policy; approval_timeout; pausing while a call waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cockpit.core import events as ev
from tests.conftest import make_crew, running, wait_until
from tests.fake_ollama import FakeOllama, ModelScript, Turn

Messages = list[dict[str, Any]]


def writes(messages: Messages) -> Turn:
    done = [m["content"] for m in messages if m["role"] == "tool"]
    if not done:
        return Turn.call("board_write", key="plan", value="v1")
    return Turn.say(f"result: {done[-1]}")


def crew_for(url: str, **agent: Any):  # type: ignore[no-untyped-def]
    return make_crew(url, [{"name": "w", "tools": ["board"], **agent}],
                     approve=["board_write"])


async def test_approve_runs_the_call(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes)}) as fake, \
            running(crew_for(fake.url), db) as session:
        await session.wait_status("w", "awaiting approval")
        pending = session.state.approvals["w.1.1"]
        assert (pending.tool, pending.arguments) == ("board_write", {"key": "plan",
                                                                     "value": "v1"})
        assert "plan" not in session.state.board  # nothing ran before the decision
        await session.supervisor.decide("w.1.1", "approved")
        state = await session.supervisor.wait()
        logged = await session.logged()
    assert state.board["plan"].value == "v1"
    types = [e.type for e in logged if e.agent == "w"]  # type: ignore[attr-defined]
    assert types.index("approval_requested") < types.index("approval_decided") \
        < types.index("tool_called")
    decided = next(e for e in logged if isinstance(e, ev.ApprovalDecided))
    assert (decided.decision, decided.by, decided.arguments) == (
        "approved", "person", {"key": "plan", "value": "v1"})
    assert not state.approvals


async def test_deny_gives_the_model_the_reason_and_the_agent_carries_on(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes)}) as fake, \
            running(crew_for(fake.url), db) as session:
        await session.wait_status("w", "awaiting approval")
        await session.supervisor.decide("w.1.1", "denied", reason="plan is frozen")
        state = await session.supervisor.wait()
    assert "plan" not in state.board
    assert state.agents["w"].status == "finished"
    assert state.agents["w"].output == (
        "result: the call was denied and did not run: plan is frozen")


async def test_edit_runs_the_call_with_the_new_arguments(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes)}) as fake, \
            running(crew_for(fake.url), db) as session:
        await session.wait_status("w", "awaiting approval")
        await session.supervisor.decide("w.1.1", "edited",
                                        arguments={"key": "plan", "value": "v1, edited"})
        state = await session.supervisor.wait()
        logged = await session.logged()
    assert state.board["plan"].value == "v1, edited"
    called = next(e for e in logged if isinstance(e, ev.ToolCalled))
    assert called.arguments == {"key": "plan", "value": "v1, edited"}


async def test_a_decided_call_cannot_be_decided_again(db: Path) -> None:
    import pytest

    from cockpit.core.commands import CommandError

    async with FakeOllama({"m1": ModelScript(turn=writes)}) as fake, \
            running(crew_for(fake.url), db) as session:
        await session.wait_status("w", "awaiting approval")
        await session.supervisor.decide("w.1.1", "approved")
        with pytest.raises(CommandError, match="no call 'w.1.1' is waiting"):
            await session.supervisor.decide("w.1.1", "denied")
        await session.supervisor.wait()


async def test_policy_all_and_none(db: Path, tmp_path: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes)}) as fake:
        async with running(crew_for(fake.url), db, approve="all") as session:
            state = await session.supervisor.wait()
        assert state.board["plan"].value == "v1"
        async with running(crew_for(fake.url), tmp_path / "two.db", approve="none") as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    assert "plan" not in state.board
    decided = next(e for e in logged if isinstance(e, ev.ApprovalDecided))
    assert (decided.decision, decided.by) == ("denied", "policy")
    assert "--approve none" in (state.agents["w"].output or "")


async def test_approval_timeout_denies_with_a_reason_the_model_sees(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes)}) as fake:
        crew = crew_for(fake.url, approval_timeout=0.2)
        async with running(crew, db) as session:
            state = await session.supervisor.wait()
            logged = await session.logged()
    decided = next(e for e in logged if isinstance(e, ev.ApprovalDecided))
    assert (decided.decision, decided.by) == ("denied", "timeout")
    assert state.agents["w"].output == ("result: the call was denied and did not run: "
                                        "no decision within 0.2 s (approval_timeout)")


async def test_pause_while_a_call_waits_keeps_it_pending(db: Path) -> None:
    async with FakeOllama({"m1": ModelScript(turn=writes)}) as fake, \
            running(crew_for(fake.url), db) as session:
        await session.wait_status("w", "awaiting approval")
        await session.supervisor.pause("w")
        assert session.state.agents["w"].status == "paused"
        assert "w.1.1" in session.state.approvals  # still in the inbox
        await session.supervisor.decide("w.1.1", "approved")  # decided while paused
        assert "plan" not in session.state.board  # ... but nothing runs while paused
        await session.supervisor.resume("w")
        await wait_until(lambda: session.state.agents["w"].status.ended)
        state = await session.supervisor.wait()
        logged = await session.logged()
    assert state.board["plan"].value == "v1"
    assert sum(isinstance(e, ev.ApprovalRequested) for e in logged) == 1  # not asked again


async def test_approve_all(db: Path) -> None:
    def two(messages: Messages) -> Turn:
        if any(m["role"] == "tool" for m in messages):
            return Turn.say("both")
        return Turn([], [{"name": "board_write", "arguments": {"key": "a", "value": "1"}},
                         {"name": "board_write", "arguments": {"key": "b", "value": "2"}}])

    async with FakeOllama({"m1": ModelScript(turn=two)}) as fake, \
            running(crew_for(fake.url), db) as session:
        await session.wait_status("w", "awaiting approval")
        approved = await session.supervisor.approve_all()
        await wait_until(lambda: "w.1.2" in session.state.approvals
                         or session.state.agents["w"].status.ended)
        approved += await session.supervisor.approve_all()
        state = await session.supervisor.wait()
    assert approved == ["w.1.1", "w.1.2"]
    assert state.board["a"].value == "1" and state.board["b"].value == "2"
