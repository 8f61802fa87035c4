"""The narrow port between a runner and the session that owns it.

A runner drives one agent. It may emit that agent's events, wait for them to be committed, read
that agent's folded state and reach Ollama through the host pool; nothing else of the
supervisor. Keeping the port this small is what lets the turn loop grow (tools, approvals,
messages) without the runner reaching into the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cockpit.core import events as ev

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cockpit.core.hosts import HostPool
    from cockpit.core.state import AgentState, Call
    from cockpit.core.tools.base import Tool

E = TypeVar("E", bound=ev.BaseEvent)


class AgentPort(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def agent(self) -> AgentState:
        """The agent's state as folded from its events so far."""
        ...

    @property
    def pool(self) -> HostPool: ...

    def emit(self, event_type: type[E], **fields: Any) -> E:
        """Stamp, fold and publish one of the agent's events (not yet on disk)."""
        ...

    def emit_text(self, event_type: type[ev.TokenStreamed] | type[ev.ThinkingStreamed],
                  text: str, chunks: int) -> None: ...

    async def record(self, event_type: type[E], **fields: Any) -> E:
        """`emit`, and for a durable type wait until it is on disk."""
        ...

    async def commit(self) -> None:
        """Wait until every event emitted so far is on disk."""
        ...

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The tools the agent may call, by the name the model uses."""
        ...

    def now(self) -> float:
        """The session's clock (event time)."""
        ...

    async def request_approval(self, call: Call) -> None:
        """Log that `call` waits for a decision; the run's policy may decide it at once."""
        ...

    def requested_at(self, call_id: str) -> float | None:
        """When the log says approval of `call_id` was asked, if it waits."""
        ...

    async def apply_policy(self, call_id: str) -> None:
        """Decide a waiting call by the run's `--approve all|none`, if that is the policy."""
        ...

    async def decided(self, call_id: str) -> None:
        """Return once `call_id` has a decision (at once if it has one already)."""
        ...

    async def decide(self, call_id: str, decision: str, *, reason: str = "",
                     by: str) -> None:
        """Decide a waiting call (the runner does so when `approval_timeout` runs out)."""
        ...
