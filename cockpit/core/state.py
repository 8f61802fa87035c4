"""Session state as a fold over events: `fold(events) -> SessionState`.

This is the one place that knows what an event means. The supervisor applies every event it
publishes, so the live state and the state rebuilt from the log (replay, resume, reports) are
the same by construction. `apply` mutates in place for speed (replaying a million events must be
fast) but is deterministic: no clocks, no I/O, nothing but the event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cockpit.core import events as ev
from cockpit.core.config import flatten_state


class AgentStatus(StrEnum):
    WAITING = "waiting"
    """For a dependency (`after`) to finish."""
    QUEUED = "queued"
    """Request sent, nothing streamed yet (Ollama may be loading the model or queueing)."""
    STREAMING = "streaming"
    THINKING = "thinking"
    PAUSED = "paused"
    WAITING_HOST = "waiting for Ollama"
    """Its host cannot be reached; the agent retries until `host_wait` runs out."""
    RETRYING = "retrying"
    STALLED = "stalled"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def ended(self) -> bool:
        return self in ENDED

    @property
    def running(self) -> bool:
        """Holding or waiting for a stream: the states pause and redirect apply to."""
        return self in RUNNING


ENDED = frozenset({AgentStatus.FINISHED, AgentStatus.FAILED, AgentStatus.STOPPED})
RUNNING = frozenset({
    AgentStatus.QUEUED, AgentStatus.STREAMING, AgentStatus.THINKING, AgentStatus.RETRYING,
    AgentStatus.STALLED, AgentStatus.WAITING_HOST,
})


@dataclass
class AgentState:
    name: str
    model: str
    host: str
    after: list[str]
    status: AgentStatus = AgentStatus.QUEUED
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Completed conversation: system, user and finished assistant messages."""
    partial_parts: list[str] = field(default_factory=list, repr=False)
    """Chunks of the reply being streamed; see `partial`."""
    thinking_parts: list[str] = field(default_factory=list, repr=False)
    tokens: int = 0
    """Chunks streamed (content and thinking); Ollama sends one token per chunk."""
    started_at: float | None = None
    first_token_at: float | None = None
    ended_at: float | None = None
    output: str | None = None
    error: str | None = None
    retries: int = 0
    stalls: int = 0
    interventions: int = 0
    paused_by: str | None = None
    """Who paused the agent while it is paused ("person", "log", ...)."""
    waiting_since: float | None = None
    """When the agent began waiting for its unreachable host (`host_waiting`), else None."""
    waited: float = 0.0
    """Seconds spent waiting for unreachable hosts, over the whole run."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Ollama's metrics from the last completed message."""
    eval_count: int = 0
    eval_duration: int = 0

    @property
    def partial(self) -> str:
        """The assistant reply being streamed (kept across pause, retry and crash).

        Stored as chunks and joined on demand: appending to a str attribute copies the whole
        reply on every token, which turns long replies quadratic.
        """
        return _joined(self.partial_parts)

    @property
    def partial_thinking(self) -> str:
        return _joined(self.thinking_parts)

    def clear_partial(self) -> None:
        self.partial_parts = []
        self.thinking_parts = []

    @property
    def tokens_per_second(self) -> float | None:
        """Ollama's eval rate when known, else chunks over the time since the first token."""
        if self.eval_duration > 0:
            return self.eval_count / (self.eval_duration / 1e9)
        if self.first_token_at is not None and self.ended_at is not None:
            span = self.ended_at - self.first_token_at
            return self.tokens / span if span > 0 else None
        return None

    def conversation(self) -> list[dict[str, Any]]:
        """What to send Ollama next: the messages, plus the partial reply to continue."""
        if not self.partial_parts and not self.thinking_parts:
            return list(self.messages)
        partial: dict[str, Any] = {"role": "assistant", "content": self.partial}
        if self.partial_thinking:
            partial["thinking"] = self.partial_thinking
        return [*self.messages, partial]


def _joined(parts: list[str]) -> str:
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


@dataclass
class BoardEntry:
    value: Any
    by: str
    ts: float
    version: int


@dataclass
class SessionState:
    session: str = ""
    crew: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None
    agents: dict[str, AgentState] = field(default_factory=dict)
    """In crew order."""
    board: dict[str, BoardEntry] = field(default_factory=dict)
    last_seq: int = 0
    last_id: int = 0
    last_ts: float | None = None
    events: int = 0
    log_stuck: str | None = None
    """Why the event log refuses writes (`log_stuck` until `log_recovered`), else None."""

    def apply(self, event: ev.BaseEvent) -> None:
        """Fold one event into the state."""
        self.events += 1
        self.last_seq = max(self.last_seq, event.seq)
        self.last_id = event.id or self.last_id
        self.last_ts = event.ts
        handler = _HANDLERS.get(getattr(event, "type", ""))
        if handler is not None:
            handler(self, event)

    def agent(self, event: ev.BaseEvent) -> AgentState:
        assert event.agent is not None, f"{event!r} has no agent"
        return self.agents[event.agent]

    def board_values(self) -> dict[str, Any]:
        return {key: entry.value for key, entry in self.board.items()}

    @property
    def all_ended(self) -> bool:
        return all(agent.status.ended for agent in self.agents.values())


def fold(events: Iterable[ev.BaseEvent], state: SessionState | None = None) -> SessionState:
    """Apply events in order to `state` (or a new one) and return it."""
    state = state if state is not None else SessionState()
    for event in events:
        state.apply(event)
    return state


# -- handlers: one per event type ---------------------------------------------------------------


def _session_started(state: SessionState, event: ev.SessionStarted) -> None:
    state.session, state.crew, state.config = event.session, event.crew, event.config
    state.started_at = event.ts
    crew_host = event.config.get("host", "")
    for agent in event.config.get("agents", []):
        after = list(agent.get("after", []))
        state.agents[agent["name"]] = AgentState(
            name=agent["name"],
            model=agent.get("model") or event.config.get("model") or "",
            host=agent.get("host") or crew_host,
            after=after,
            status=AgentStatus.WAITING if after else AgentStatus.QUEUED,
        )
    for key, value in flatten_state(event.config.get("state", {})).items():
        state.board[key] = BoardEntry(value=value, by="crew", ts=event.ts, version=1)


def _session_resumed(state: SessionState, event: ev.SessionResumed) -> None:
    state.ended_at = state.outcome = state.log_stuck = None  # a new process, a new log


def _session_finished(state: SessionState, event: ev.SessionFinished) -> None:
    state.ended_at, state.outcome = event.ts, event.outcome


def _agent_started(state: SessionState, event: ev.AgentStarted) -> None:
    agent = state.agent(event)
    agent.model, agent.host = event.model, event.host
    agent.messages = [dict(message) for message in event.messages]
    agent.clear_partial()
    agent.output = agent.error = agent.ended_at = agent.paused_by = agent.waiting_since = None
    agent.started_at = event.ts
    agent.status = AgentStatus.QUEUED


def _token(state: SessionState, event: ev.TokenStreamed) -> None:
    agent = state.agent(event)
    agent.partial_parts.append(event.text)
    agent.tokens += event.chunks
    if agent.first_token_at is None:
        agent.first_token_at = event.ts
    agent.status = AgentStatus.STREAMING


def _thinking(state: SessionState, event: ev.ThinkingStreamed) -> None:
    agent = state.agent(event)
    agent.thinking_parts.append(event.text)
    agent.tokens += event.chunks
    if agent.first_token_at is None:
        agent.first_token_at = event.ts
    agent.status = AgentStatus.THINKING


def _message_completed(state: SessionState, event: ev.MessageCompleted) -> None:
    agent = state.agent(event)
    message: dict[str, Any] = {"role": "assistant", "content": event.content}
    if event.thinking:
        message["thinking"] = event.thinking
    agent.messages.append(message)
    agent.clear_partial()
    agent.metrics = {
        name: getattr(event, name)
        for name in ("prompt_eval_count", "eval_count", "total_duration", "load_duration",
                     "prompt_eval_duration", "eval_duration", "done_reason")
    }
    agent.eval_count += event.eval_count or 0
    agent.eval_duration += event.eval_duration or 0


def _paused(state: SessionState, event: ev.AgentPaused) -> None:
    agent = state.agent(event)
    agent.status, agent.paused_by = AgentStatus.PAUSED, event.by
    agent.interventions += event.by != "log"


def _resumed(state: SessionState, event: ev.AgentResumed) -> None:
    """Resumed by a person, by the log recovering, or by `cockpit resume` continuing a failed
    agent (its error is then history: the partial reply goes on)."""
    agent = state.agent(event)
    if agent.status.ended:
        agent.error = agent.ended_at = None
        state.ended_at = state.outcome = None
    agent.status, agent.paused_by = AgentStatus.QUEUED, None
    agent.interventions += event.by != "log"


def _restarted(state: SessionState, event: ev.AgentRestarted) -> None:
    """A restarted agent runs again, so a session that had ended is open again."""
    agent = state.agent(event)
    agent.status, agent.paused_by = AgentStatus.QUEUED, None
    agent.error = agent.ended_at = None
    agent.interventions += 1
    state.ended_at = state.outcome = None


def _host_waiting(state: SessionState, event: ev.HostWaiting) -> None:
    agent = state.agent(event)
    agent.status, agent.host, agent.waiting_since = AgentStatus.WAITING_HOST, event.host, event.ts


def _host_back(state: SessionState, event: ev.HostBack) -> None:
    agent = state.agent(event)
    agent.waiting_since = None
    agent.waited += event.waited
    if agent.status is AgentStatus.WAITING_HOST:
        agent.status = AgentStatus.QUEUED


def _host_selected(state: SessionState, event: ev.HostSelected) -> None:
    state.agent(event).host = event.host


def _log_stuck(state: SessionState, event: ev.LogStuck) -> None:
    state.log_stuck = event.cause


def _log_recovered(state: SessionState, event: ev.LogRecovered) -> None:
    state.log_stuck = None


def _redirected(state: SessionState, event: ev.AgentRedirected) -> None:
    agent = state.agent(event)
    if agent.partial_parts or agent.thinking_parts:
        agent.messages = agent.conversation()
        agent.clear_partial()
    agent.messages.append({"role": "user", "content": event.instruction})
    agent.status, agent.paused_by = AgentStatus.QUEUED, None
    agent.interventions += 1


def _stopped(state: SessionState, event: ev.AgentStopped) -> None:
    agent = state.agent(event)
    agent.status, agent.ended_at = AgentStatus.STOPPED, event.ts
    if event.by != "supervisor":
        agent.interventions += 1


def _retrying(state: SessionState, event: ev.Retrying) -> None:
    agent = state.agent(event)
    agent.status = AgentStatus.RETRYING
    agent.retries += 1
    agent.waiting_since = None


def _stalled(state: SessionState, event: ev.Stalled) -> None:
    agent = state.agent(event)
    agent.status = AgentStatus.STALLED
    agent.stalls += 1


def _failed(state: SessionState, event: ev.AgentFailed) -> None:
    agent = state.agent(event)
    agent.status, agent.error, agent.ended_at = AgentStatus.FAILED, event.error, event.ts
    agent.waiting_since = None


def _finished(state: SessionState, event: ev.AgentFinished) -> None:
    agent = state.agent(event)
    agent.status, agent.output, agent.ended_at = AgentStatus.FINISHED, event.output, event.ts


def _state_set(state: SessionState, event: ev.StateSet) -> None:
    previous = state.board.get(event.key)
    version = previous.version + 1 if previous else 1
    state.board[event.key] = BoardEntry(value=event.value, by=event.by, ts=event.ts,
                                        version=version)


_HANDLERS: dict[str, Callable[..., None]] = {
    "session_started": _session_started,
    "session_resumed": _session_resumed,
    "session_finished": _session_finished,
    "agent_started": _agent_started,
    "token": _token,
    "thinking": _thinking,
    "message_completed": _message_completed,
    "agent_paused": _paused,
    "agent_resumed": _resumed,
    "agent_redirected": _redirected,
    "agent_stopped": _stopped,
    "agent_restarted": _restarted,
    "host_waiting": _host_waiting,
    "host_back": _host_back,
    "host_selected": _host_selected,
    "log_stuck": _log_stuck,
    "log_recovered": _log_recovered,
    "state_set": _state_set,
    "retrying": _retrying,
    "stalled": _stalled,
    "agent_failed": _failed,
    "agent_finished": _finished,
}
