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
    CALLING = "calling tool"
    """Between turns: the model asked for tool calls and they are running."""
    AWAITING_APPROVAL = "awaiting approval"
    """A call it made waits for a person's (or the policy's) decision."""
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
    AgentStatus.STALLED, AgentStatus.WAITING_HOST, AgentStatus.CALLING,
    AgentStatus.AWAITING_APPROVAL,
})
ACTIVE = RUNNING - {AgentStatus.QUEUED}
"""The statuses whose time counts as the agent's elapsed time: not waiting for a dependency,
queued, paused or ended (and never the gap of a crash or a quit)."""
STREAMED = frozenset({AgentStatus.STREAMING, AgentStatus.THINKING})
"""The statuses whose time the live tok/s divides by."""
CORRECTION = "Your answer did not pass its checks:\n{failures}\nAnswer again, in full, fixing this."
"""The user message a failed check adds: the model's correction turn."""


@dataclass
class Call:
    """A tool call of the agent's last turn that has no result yet."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    turn: int
    running: bool = False
    """`tool_called` is logged: it may have run, so it is not run again unless repeatable."""
    approval: str | None = None
    """None (not gated, or not asked yet), "pending", or the decision."""
    reason: str = ""


@dataclass
class PendingApproval:
    call_id: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    requested_at: float


def message_text(sender: str, text: str) -> str:
    """How a message reaches its target: a user message naming the sender."""
    return f"Message from {sender}: {text}"


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
    turns: int = 0
    """Completed model turns over the session: numbers tool calls."""
    tool_turns: int = 0
    """Turns in a row that called tools since the last user message (`max_turns`)."""
    calls: list[Call] = field(default_factory=list)
    """The last turn's calls still without a result, in call order."""
    tool_calls: int = 0
    inbox: list[tuple[str, str]] = field(default_factory=list)
    """(sender, text) of messages sent to the agent that it has not read yet."""
    wakeups: int = 0
    follow_ups: int = 0
    """Instructions given to it once it had finished (`r` on a finished agent)."""
    check_failures: int = 0
    """Failed checks since the last user message: correction turns used."""
    verified: bool | None = None
    """Whether its last answer passed its checks; None if it has none or was not checked."""
    eval_count: int = 0
    eval_duration: int = 0
    done_reason: str | None = None
    """Ollama's `done_reason` of the last completed message (`length`: `num_predict` cut it)."""
    active: float = 0.0
    """Seconds spent in ACTIVE statuses up to `since` (see `elapsed`)."""
    streamed: float = 0.0
    """Seconds spent streaming up to `since` (see `streaming_seconds`)."""
    since: float | None = None
    """When the current status began to count; None while the session does not run (after
    `session_finished`, or a crash), so that time never counts."""

    def settle(self, ts: float, status: AgentStatus | None = None) -> None:
        """Count the time spent in `status` (default: the current one) up to `ts`, and count
        on from there."""
        status = status or self.status
        if self.since is not None and ts > self.since:
            if status in ACTIVE:
                self.active += ts - self.since
            if status in STREAMED:
                self.streamed += ts - self.since
        self.since = ts

    def _running_for(self, statuses: frozenset[AgentStatus], now: float | None) -> float:
        if now is None or self.since is None or self.status not in statuses:
            return 0.0
        return max(0.0, now - self.since)

    def elapsed(self, now: float | None = None) -> float:
        """Seconds the agent has worked: paused, queued and crashed time excluded. `now`
        counts the current stretch (a live view); None, only what the log has settled."""
        return self.active + self._running_for(ACTIVE, now)

    def streaming_seconds(self, now: float | None = None) -> float:
        return self.streamed + self._running_for(STREAMED, now)

    def rate(self, now: float | None = None) -> float | None:
        """Tokens per second: Ollama's eval rate once the agent has ended (when known),
        else the chunks over the time spent streaming (half a second at least)."""
        if self.status.ended and self.eval_duration > 0:
            return self.eval_count / (self.eval_duration / 1e9)
        span = self.streaming_seconds(now)
        return self.tokens / span if span > (0.0 if self.status.ended else 0.5) else None

    def reset_counts(self) -> None:
        """A restart discards the attempt: its tokens, time, retries and stalls with it."""
        self.tokens = self.retries = self.stalls = self.eval_count = self.eval_duration = 0
        self.active = self.streamed = self.waited = 0.0
        self.first_token_at = self.done_reason = None

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

    @property
    def unread(self) -> bool:
        """Finished with a message waiting: it is about to be woken (or, after a crash, must
        be on resume), so the session has not ended."""
        return self.status is AgentStatus.FINISHED and bool(self.inbox)

    def clear_partial(self) -> None:
        self.partial_parts = []
        self.thinking_parts = []

    @property
    def tokens_per_second(self) -> float | None:
        """Ollama's eval rate when known, else chunks over the settled streaming time."""
        if self.eval_duration > 0:
            return self.eval_count / (self.eval_duration / 1e9)
        return self.rate()

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
    tool: str | None = None
    """The tool an agent wrote it through, if any."""


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
    history: dict[str, list[BoardEntry]] = field(default_factory=dict)
    """Every version of each board key, oldest first: who wrote it, through what, when."""
    approvals: dict[str, PendingApproval] = field(default_factory=dict)
    """Calls waiting for a decision, oldest first, across all agents."""
    last_seq: int = 0
    last_id: int = 0
    last_ts: float | None = None
    events: int = 0
    log_stuck: str | None = None
    """Why the event log refuses writes (`log_stuck` until `log_recovered`), else None."""
    crew_error: str | None = None
    """Why the last edit of the crew file was rejected (`crew_rejected`, until the next
    `crew_updated`), else None."""

    def apply(self, event: ev.BaseEvent) -> None:
        """Fold one event into the state. An agent's clocks (`AgentState.elapsed`) move on
        at each change of its status, at the event's time."""
        self.events += 1
        handler = _HANDLERS.get(getattr(event, "type", ""))
        if handler is not None:
            agent = self.agents.get(event.agent) if event.agent is not None else None
            if agent is None:
                handler(self, event)
            else:
                before = agent.status
                handler(self, event)
                if agent.status is not before:
                    agent.settle(event.ts, before)
        self.last_seq = max(self.last_seq, event.seq)
        self.last_id = event.id or self.last_id
        self.last_ts = event.ts  # after the handler: a resume reads where the log stopped

    def agent(self, event: ev.BaseEvent) -> AgentState:
        assert event.agent is not None, f"{event!r} has no agent"
        return self.agents[event.agent]

    def board_values(self) -> dict[str, Any]:
        return {key: entry.value for key, entry in self.board.items()}

    @property
    def all_ended(self) -> bool:
        return all(agent.status.ended for agent in self.agents.values())

    def goes_on(self, name: str, only: list[str] | None = None) -> bool:
        """Agent `name` runs again when the session is resumed (`only`: with `--only`): it
        had not ended, or failed, or finished with a message unread (a crash came between
        the message and its wake-up)."""
        agent = self.agents[name]
        continues = agent.status not in (AgentStatus.FINISHED, AgentStatus.STOPPED)
        return (continues or agent.unread) and (only is None or name in only)


def fold(events: Iterable[ev.BaseEvent], state: SessionState | None = None) -> SessionState:
    """Apply events in order to `state` (or a new one) and return it."""
    state = state if state is not None else SessionState()
    for event in events:
        state.apply(event)
    return state


# -- handlers: one per event type ---------------------------------------------------------------


def _new_agent(config: dict[str, Any], agent: dict[str, Any]) -> AgentState:
    """An agent as the crew `config` declares it, before it starts."""
    after = list(agent.get("after", []))
    return AgentState(
        name=agent["name"],
        model=agent.get("model") or config.get("model") or "",
        host=agent.get("host") or config.get("host", ""),
        after=after,
        status=AgentStatus.WAITING if after else AgentStatus.QUEUED,
    )


def _session_started(state: SessionState, event: ev.SessionStarted) -> None:
    state.session, state.crew, state.config = event.session, event.crew, event.config
    state.started_at = event.ts
    for agent in event.config.get("agents", []):
        state.agents[agent["name"]] = _new_agent(event.config, agent)
    for key, value in flatten_state(event.config.get("state", {})).items():
        entry = BoardEntry(value=value, by="crew", ts=event.ts, version=1)
        state.board[key] = entry
        state.history[key] = [entry]


def _crew_updated(state: SessionState, event: ev.CrewUpdated) -> None:
    """The crew as updated: new agents join, agents not yet started take their new settings
    (a started one is never touched, whatever the event says). A new agent reopens a session
    that had ended, as a restart does."""
    state.config, state.crew_error = event.config, None
    declared = {agent["name"]: agent for agent in event.config.get("agents", [])}
    for name in event.changed:
        agent = state.agents.get(name)
        if agent is not None and name in declared and agent.started_at is None \
                and not agent.status.ended:
            fresh = _new_agent(event.config, declared[name])
            agent.model, agent.host, agent.after = fresh.model, fresh.host, fresh.after
            if agent.status in (AgentStatus.WAITING, AgentStatus.QUEUED):
                agent.status = fresh.status
    for name in event.added:
        if name in declared and name not in state.agents:
            state.agents[name] = _new_agent(event.config, declared[name])
            state.ended_at = state.outcome = None


def _crew_rejected(state: SessionState, event: ev.CrewRejected) -> None:
    state.crew_error = event.error


def _session_resumed(state: SessionState, event: ev.SessionResumed) -> None:
    """A new process, a new log. The time since the last event before the resume (a crash,
    or the quit's `session_finished`) is nobody's elapsed time. The event says when that was
    (a tail that merged the last tokens into one event dates them by their first)."""
    stopped = event.stopped_at if event.stopped_at is not None else state.last_ts
    for agent in state.agents.values():
        if agent.since is not None and stopped is not None:
            agent.settle(stopped)  # a crash: the clocks ran to the last event
        agent.since = event.ts
    state.ended_at = state.outcome = state.log_stuck = None


def _session_finished(state: SessionState, event: ev.SessionFinished) -> None:
    state.ended_at, state.outcome = event.ts, event.outcome
    for agent in state.agents.values():  # quit with agents running: their clocks stop here
        agent.settle(event.ts)
        agent.since = None


def _agent_started(state: SessionState, event: ev.AgentStarted) -> None:
    agent = state.agent(event)
    agent.model, agent.host = event.model, event.host
    agent.messages = [dict(message) for message in event.messages]
    agent.inbox = []  # the opening carries the messages that were waiting
    agent.calls = []
    agent.tool_turns = agent.check_failures = 0
    agent.verified = None
    agent.clear_partial()
    agent.output = agent.error = agent.ended_at = agent.paused_by = agent.waiting_since = None
    agent.done_reason = None
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
    agent.turns += 1
    if event.tool_calls:
        message["tool_calls"] = [{"function": call["function"]} for call in event.tool_calls]
        agent.calls = [Call(call_id=call["id"], tool=call["function"]["name"],
                            arguments=dict(call["function"].get("arguments") or {}),
                            turn=agent.turns) for call in event.tool_calls]
        agent.tool_turns += 1
        agent.status = AgentStatus.CALLING
    agent.messages.append(message)
    agent.clear_partial()
    agent.metrics = {
        name: getattr(event, name)
        for name in ("prompt_eval_count", "eval_count", "total_duration", "load_duration",
                     "prompt_eval_duration", "eval_duration", "done_reason")
    }
    agent.eval_count += event.eval_count or 0
    agent.eval_duration += event.eval_duration or 0
    agent.done_reason = event.done_reason


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
        for call in agent.calls:
            if call.approval == "pending":
                state.approvals[call.call_id] = PendingApproval(
                    call.call_id, agent.name, call.tool, call.arguments, event.ts)
    agent.status, agent.paused_by = _between_turns(agent), None
    agent.interventions += event.by != "log"


def _restarted(state: SessionState, event: ev.AgentRestarted) -> None:
    """A restarted agent runs again from its opening, counted afresh (the attempt it discards
    takes its tokens, time, retries and stalls with it), so a session that had ended is open
    again."""
    agent = state.agent(event)
    agent.status, agent.paused_by = AgentStatus.QUEUED, None
    agent.error = agent.ended_at = None
    agent.reset_counts()
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
    """A new instruction. To a finished agent it is a follow-up: a new turn of the same
    conversation, so it runs again and the session is open again until it finishes anew."""
    agent = state.agent(event)
    if agent.partial_parts or agent.thinking_parts:
        agent.messages = agent.conversation()
        agent.clear_partial()
    if agent.status is AgentStatus.FINISHED:
        agent.follow_ups += 1
        agent.ended_at = None
        state.ended_at = state.outcome = None
    agent.messages.append({"role": "user", "content": event.instruction})
    agent.tool_turns = agent.check_failures = 0
    agent.verified = None
    agent.status, agent.paused_by = AgentStatus.QUEUED, None
    agent.interventions += 1


def _stopped(state: SessionState, event: ev.AgentStopped) -> None:
    agent = state.agent(event)
    agent.status, agent.ended_at = AgentStatus.STOPPED, event.ts
    agent.calls = []
    _drop_approvals(state, agent.name)
    if event.by != "supervisor":
        agent.interventions += 1


def _between_turns(agent: AgentState) -> AgentStatus:
    """The status of an agent that goes on: its calls, if its last turn made some."""
    if any(call.approval == "pending" for call in agent.calls):
        return AgentStatus.AWAITING_APPROVAL
    return AgentStatus.CALLING if agent.calls else AgentStatus.QUEUED


def _noted(state: SessionState, event: ev.BaseEvent) -> None:
    """Events that change nothing in the state; views word them (`describe`)."""


def _drop_approvals(state: SessionState, agent: str) -> None:
    for call_id in [c for c, pending in state.approvals.items() if pending.agent == agent]:
        del state.approvals[call_id]


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
    _drop_approvals(state, agent.name)  # back on resume: the calls keep them


def _finished(state: SessionState, event: ev.AgentFinished) -> None:
    agent = state.agent(event)
    agent.status, agent.output, agent.ended_at = AgentStatus.FINISHED, event.output, event.ts


def _state_set(state: SessionState, event: ev.StateSet) -> None:
    previous = state.board.get(event.key)
    version = previous.version + 1 if previous else 1
    entry = BoardEntry(value=event.value, by=event.by, ts=event.ts, version=version,
                       tool=event.tool)
    state.board[event.key] = entry
    state.history.setdefault(event.key, []).append(entry)


def _call(agent: AgentState, call_id: str) -> Call | None:
    return next((call for call in agent.calls if call.call_id == call_id), None)


def _tool_called(state: SessionState, event: ev.ToolCalled) -> None:
    agent = state.agent(event)
    call = _call(agent, event.call_id)
    if call is not None:
        call.running, call.arguments = True, dict(event.arguments)
    agent.tool_calls += 1
    agent.status = AgentStatus.CALLING


def _tool_result(state: SessionState, event: ev.ToolResult) -> None:
    agent = state.agent(event)
    agent.messages.append({"role": "tool", "tool_name": event.tool, "content": event.content})
    agent.calls = [call for call in agent.calls if call.call_id != event.call_id]
    state.approvals.pop(event.call_id, None)
    if not agent.status.ended and agent.status is not AgentStatus.PAUSED:
        agent.status = AgentStatus.CALLING if agent.calls else AgentStatus.QUEUED


def _approval_requested(state: SessionState, event: ev.ApprovalRequested) -> None:
    agent = state.agent(event)
    call = _call(agent, event.call_id)
    if call is not None:
        call.approval = "pending"
    state.approvals[event.call_id] = PendingApproval(
        call_id=event.call_id, agent=agent.name, tool=event.tool,
        arguments=dict(event.arguments), requested_at=event.ts)
    if agent.status is not AgentStatus.PAUSED:
        agent.status = AgentStatus.AWAITING_APPROVAL


def _approval_decided(state: SessionState, event: ev.ApprovalDecided) -> None:
    pending = state.approvals.pop(event.call_id, None)
    if pending is None:
        return
    agent = state.agents[pending.agent]
    call = _call(agent, event.call_id)
    if call is not None:
        call.approval, call.reason = event.decision, event.reason
        if event.arguments is not None:
            call.arguments = dict(event.arguments)
    if agent.status is AgentStatus.AWAITING_APPROVAL:
        agent.status = AgentStatus.CALLING


def _message_sent(state: SessionState, event: ev.MessageSent) -> None:
    target = state.agents.get(event.to)
    if target is not None:
        target.inbox.append((event.from_, event.text))


def _message_delivered(state: SessionState, event: ev.MessageDelivered) -> None:
    agent = state.agent(event)
    if agent.partial_parts or agent.thinking_parts:
        agent.messages = agent.conversation()
        agent.clear_partial()
    delivered, agent.inbox = agent.inbox[:event.count], agent.inbox[event.count:]
    for sender, text in delivered:
        agent.messages.append({"role": "user", "content": message_text(sender, text)})
    # tool_turns goes on: two agents messaging each other every turn still meet max_turns


def _woken(state: SessionState, event: ev.AgentWoken) -> None:
    agent = state.agent(event)
    agent.status, agent.ended_at, agent.wakeups = AgentStatus.QUEUED, None, event.wakeups
    agent.tool_turns = agent.check_failures = 0
    state.ended_at = state.outcome = None


def _wake_refused(state: SessionState, event: ev.WakeRefused) -> None:
    state.agent(event).inbox = []


def _output_checked(state: SessionState, event: ev.OutputChecked) -> None:
    agent = state.agent(event)
    agent.verified = event.passed
    if not event.passed:
        agent.check_failures += 1
        failures = "\n".join(f"- {failure}" for failure in event.failures)
        agent.messages.append({"role": "user", "content": CORRECTION.format(failures=failures)})


_HANDLERS: dict[str, Callable[..., None]] = {
    "session_started": _session_started,
    "session_resumed": _session_resumed,
    "session_finished": _session_finished,
    "crew_updated": _crew_updated,
    "crew_rejected": _crew_rejected,
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
    "tool_called": _tool_called,
    "tool_result": _tool_result,
    "approval_requested": _approval_requested,
    "approval_decided": _approval_decided,
    "message_sent": _message_sent,
    "message_delivered": _message_delivered,
    "agent_woken": _woken,
    "wake_refused": _wake_refused,
    "output_checked": _output_checked,
    "tool_server_restarted": _noted,
    "retrying": _retrying,
    "stalled": _stalled,
    "agent_failed": _failed,
    "agent_finished": _finished,
}
