"""What agents that act need from their session: board writes, messages, approvals, tools.

The supervisor owns the session; this module is the part of it that agents' tools and the
runner's turn loop reach, through `AgentPort` (the runner) and `Crew` (the built-in tools).
Every step is an event recorded before it is acknowledged, so what an agent was told ("written",
"sent", "approved") is what the log says happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cockpit.core import events as ev
from cockpit.core.commands import CommandError, Decision
from cockpit.core.state import AgentState, AgentStatus, BoardEntry, Call
from cockpit.core.tools.base import Tool, ToolError
from cockpit.core.tools.builtin import board_tools, message_tools

if TYPE_CHECKING:
    from cockpit.core.hosts import HostPool
    from cockpit.core.supervisor import Supervisor

E = TypeVar("E", bound=ev.BaseEvent)
Policy = Literal["ask", "all", "none"]
POLICIES: tuple[Policy, ...] = ("ask", "all", "none")


class Approvals:
    """Calls waiting for a decision: the log holds them (`SessionState.approvals`); this only
    wakes the runners that wait. `policy` is the run's `--approve`: "ask" waits for a person,
    "all" approves and "none" denies as soon as a call asks."""

    def __init__(self, supervisor: Supervisor, policy: Policy = "ask") -> None:
        self._supervisor = supervisor
        self.policy: Policy = policy
        self._waiters: dict[str, asyncio.Future[None]] = {}

    async def request(self, agent: str, call: Call) -> None:
        await self._supervisor.record(ev.ApprovalRequested, agent, call_id=call.call_id,
                                      tool=call.tool, arguments=call.arguments)
        await self.apply_policy(call.call_id)

    async def apply_policy(self, call_id: str) -> None:
        if self.policy == "all":
            await self.decide(call_id, "approved", by="policy")
        elif self.policy == "none":
            await self.decide(call_id, "denied", by="policy",
                              reason="this run approves no calls (--approve none)")

    async def decided(self, call_id: str) -> None:
        """Return once `call_id` is decided. A call asked before a crash and resumed under
        `--approve all|none` is decided by this run's policy."""
        if call_id not in self._supervisor.state.approvals:
            return
        await self.apply_policy(call_id)
        if call_id not in self._supervisor.state.approvals:
            return
        waiter = self._waiters.get(call_id)
        if waiter is None or waiter.done():
            waiter = self._waiters[call_id] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    async def decide(self, call_id: str, decision: Decision, *, reason: str = "",
                     arguments: dict[str, Any] | None = None, by: str = "person") -> None:
        """Log the decision, then wake the agent. "edited" runs the call with `arguments`."""
        pending = self._supervisor.state.approvals.get(call_id)
        if pending is None:
            raise CommandError(f"no call {call_id!r} is waiting for approval")
        if decision == "denied" and not reason.strip():
            reason = f"denied by {by}"
        if decision == "edited" and arguments is None:
            raise CommandError("an edited approval needs the new arguments")
        try:
            await self._supervisor.record(
                ev.ApprovalDecided, pending.agent, call_id=call_id, decision=decision,
                reason=reason, by=by,
                arguments=arguments if arguments is not None else pending.arguments)
        finally:
            # Folded already: wake the agent even if whoever decided stops waiting for the
            # commit (a closed screen); the tool's own commit writes the decision first.
            waiter = self._waiters.pop(call_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def decide_all(self, by: str = "person", ids: list[str] | None = None) -> list[str]:
        """Approve every pending call (or those of `ids` still pending: what a person saw),
        oldest first; the ids approved."""
        done = []
        pending = list(self._supervisor.state.approvals)
        for call_id in pending if ids is None else [i for i in ids if i in pending]:
            try:
                await self.decide(call_id, "approved", by=by)
            except CommandError:
                continue  # decided meanwhile (a timeout, another viewer)
            done.append(call_id)
        return done


class AgentCrew:
    """The session as one agent's built-in tools see it (`tools.builtin.Crew`)."""

    def __init__(self, supervisor: Supervisor, name: str) -> None:
        self._supervisor = supervisor
        self._name = name

    @property
    def board(self) -> Mapping[str, BoardEntry]:
        return self._supervisor.state.board

    @property
    def crewmates(self) -> list[str]:
        return [name for name in self._supervisor.state.agents if name != self._name]

    async def write(self, key: str, value: Any, expected_version: int | None) -> int:
        key = key.strip()
        if key.startswith("outputs."):
            raise ToolError(f"{key!r} is not writable: cockpit writes outputs.<agent> when "
                            "an agent finishes. Use another key.")
        board = self._supervisor.state.board
        current = board.get(key)
        if expected_version is not None:
            version = current.version if current is not None else 0
            if version != expected_version:
                who = f", written by {current.by}" if current is not None else ""
                raise ToolError(
                    f"refused: {key!r} is at version {version}{who}, not {expected_version}: "
                    f"it changed since you read it. board_read it again, then write with "
                    f"expected_version {version}.")
        self._supervisor.emit(ev.StateSet, self._name, key=key, value=value, by=self._name,
                              tool="board_write")
        version = board[key].version  # now: another write may land during the commit
        await self._supervisor.commit()
        return version

    async def send(self, to: str, text: str) -> str:
        return await self._supervisor.send_message(self._name, to, text)


def agent_tools(supervisor: Supervisor, name: str) -> dict[str, Tool]:
    """The agent's `tools` list as tools, by the name the model calls them."""
    crew = AgentCrew(supervisor, name)
    tools: list[Tool] = []
    for ref in supervisor.crew.agent(name).tools:
        if ref == "board":
            tools += board_tools(crew)
        elif ref == "messages":
            tools += message_tools(crew)
        else:
            tools += supervisor.mcp_tools(ref)
    return {tool.name: tool for tool in tools}


class Port:
    """The supervisor as one agent's runner sees it (`AgentPort`)."""

    def __init__(self, supervisor: Supervisor, name: str) -> None:
        self._supervisor = supervisor
        self._name = name
        self._tools = agent_tools(supervisor, name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def agent(self) -> AgentState:
        return self._supervisor.state.agents[self._name]

    @property
    def pool(self) -> HostPool:
        return self._supervisor.pool

    @property
    def tools(self) -> Mapping[str, Tool]:
        return self._tools

    def now(self) -> float:
        return self._supervisor.now()

    def emit(self, event_type: type[E], **fields: Any) -> E:
        return self._supervisor.emit(event_type, self._name, **fields)

    def emit_text(self, event_type: type[ev.TokenStreamed] | type[ev.ThinkingStreamed],
                  text: str, chunks: int) -> None:
        self._supervisor.emit_text(event_type, self._name, text, chunks)

    async def record(self, event_type: type[E], **fields: Any) -> E:
        return await self._supervisor.record(event_type, self._name, **fields)

    async def commit(self) -> None:
        await self._supervisor.commit()

    async def request_approval(self, call: Call) -> None:
        await self._supervisor.approvals.request(self._name, call)

    def requested_at(self, call_id: str) -> float | None:
        pending = self._supervisor.state.approvals.get(call_id)
        return pending.requested_at if pending is not None else None

    async def apply_policy(self, call_id: str) -> None:
        if call_id in self._supervisor.state.approvals:
            await self._supervisor.approvals.apply_policy(call_id)

    async def decided(self, call_id: str) -> None:
        await self._supervisor.approvals.decided(call_id)

    async def decide(self, call_id: str, decision: str, *, reason: str = "",
                     by: str) -> None:
        assert decision in ("approved", "denied")
        await self._supervisor.approvals.decide(
            call_id, "approved" if decision == "approved" else "denied", reason=reason, by=by)


def delivery_note(target: AgentState) -> str:
    """What `send_message` tells the sender about when its message will be read."""
    match target.status:
        case AgentStatus.WAITING:
            return f"sent: {target.name} has not started; it reads it in its opening"
        case AgentStatus.FINISHED:
            return f"sent: {target.name} had finished and wakes up to read it"
        case AgentStatus.FAILED | AgentStatus.STOPPED:
            return (f"sent, but {target.name} is {target.status}: it will read it only if "
                    "someone restarts it")
        case AgentStatus.PAUSED:
            return f"sent: {target.name} is paused; it reads it when it goes on"
    return f"sent: {target.name} reads it at its next turn"
