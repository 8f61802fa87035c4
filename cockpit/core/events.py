"""The event types: everything that happens in a session, as it happens.

The log of these events is the truth. The TUI, the headless printer, replay, reports and resume
are all views of it, so each event carries what those views need and nothing is derived from
process memory. Events are frozen pydantic models in one union discriminated by `type`; the
`type` strings and field names are the export contract in DESIGN.md.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ENVELOPE: set[str] = {"id", "session", "agent", "seq", "ts", "type"}
"""Fields every event has; the rest is the event's `data` in the export."""


class BaseEvent(BaseModel):
    """The envelope. The supervisor stamps `session`, `seq` and `ts`; the log assigns `id`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session: str = ""
    agent: str | None = None
    """The agent's name from the crew file, or None for session-level events."""
    seq: int = 0
    """Per-session sequence number, strictly increasing in emission order."""
    ts: float = 0.0
    """Unix time in seconds."""
    id: int | None = None
    """The log's row id; None until the event has been read back from the log."""

    durable: ClassVar[bool] = False
    """On disk before whatever caused it goes on: `Supervisor.record` awaits the log's commit
    for these (interventions, completed messages, lifecycle, board writes), and never for text
    (tokens are batched by the writer). The one statement of that rule."""
    terminal: ClassVar[bool] = False
    """Ends the agent's run (until a restart or a resume)."""
    settles: ClassVar[bool] = False
    """May change whether the session can end (every terminal event; a pause or a resume,
    since paused agents can end a headless run)."""

    def data(self) -> dict[str, Any]:
        """The event-specific fields, as in the export's `data` object."""
        return self.model_dump(mode="json", exclude=ENVELOPE)


class SessionStarted(BaseEvent):
    type: Literal["session_started"] = "session_started"
    durable: ClassVar[bool] = True
    crew: str
    crew_path: str | None = None
    config: dict[str, Any]
    """The validated crew, so a session can be resumed or replayed without the file."""
    pid: int
    version: str
    hostname: str = ""
    """With `proc_start`, what tells the owning process from a later one that reused its pid."""
    proc_start: float | None = None
    """When the owning process started (Unix time, from /proc), if known."""


class SessionResumed(BaseEvent):
    type: Literal["session_resumed"] = "session_resumed"
    durable: ClassVar[bool] = True
    pid: int
    hostname: str = ""
    proc_start: float | None = None
    only: list[str] | None = None
    """`cockpit resume --only`: the agents that continue; None for all of them."""


class SessionFinished(BaseEvent):
    type: Literal["session_finished"] = "session_finished"
    durable: ClassVar[bool] = True
    outcome: Literal["finished", "failed", "interrupted"]
    agents: dict[str, str]
    """Each agent's final status."""


class AgentStarted(BaseEvent):
    type: Literal["agent_started"] = "agent_started"
    durable: ClassVar[bool] = True
    model: str
    host: str
    messages: list[dict[str, Any]]
    """The opening conversation (system and user messages, templates filled)."""
    options: dict[str, Any] = Field(default_factory=dict)


class TokenStreamed(BaseEvent):
    """Reply text. Chunks that arrive within one frame are merged; `chunks` says how many."""

    type: Literal["token"] = "token"
    text: str
    chunks: int = 1


class ThinkingStreamed(BaseEvent):
    type: Literal["thinking"] = "thinking"
    text: str
    chunks: int = 1


class MessageCompleted(BaseEvent):
    """An assistant reply ended with `done`. `content` is the whole reply, including any partial
    that was continued after a pause or a retry; the metrics are Ollama's for the last request."""

    type: Literal["message_completed"] = "message_completed"
    durable: ClassVar[bool] = True
    content: str
    thinking: str = ""
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_duration: int | None = None
    eval_duration: int | None = None


class AgentPaused(BaseEvent):
    type: Literal["agent_paused"] = "agent_paused"
    durable: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    by: str = "person"


class AgentResumed(BaseEvent):
    type: Literal["agent_resumed"] = "agent_resumed"
    durable: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    by: str = "person"


class AgentRedirected(BaseEvent):
    type: Literal["agent_redirected"] = "agent_redirected"
    durable: ClassVar[bool] = True
    instruction: str
    by: str = "person"


class AgentStopped(BaseEvent):
    type: Literal["agent_stopped"] = "agent_stopped"
    durable: ClassVar[bool] = True
    terminal: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    by: str = "person"
    reason: str = ""


class AgentRestarted(BaseEvent):
    type: Literal["agent_restarted"] = "agent_restarted"
    durable: ClassVar[bool] = True
    by: str = "person"


class StateSet(BaseEvent):
    type: Literal["state_set"] = "state_set"
    durable: ClassVar[bool] = True
    key: str
    value: Any
    by: str


class Retrying(BaseEvent):
    type: Literal["retrying"] = "retrying"
    attempt: int
    """1 for the first retry."""
    reason: str
    delay: float
    host: str = ""
    """The host the failed attempt used."""


class Stalled(BaseEvent):
    type: Literal["stalled"] = "stalled"
    seconds: float
    """How long no chunk had arrived."""


class HostWaiting(BaseEvent):
    """The agent's host cannot be reached (refused, reset, DNS, connect timeout): the agent
    waits for it, up to `limit` seconds, without spending its retries. Logged once per outage,
    not per attempt."""

    type: Literal["host_waiting"] = "host_waiting"
    host: str
    reason: str
    limit: float
    """The agent's `host_wait`, in seconds."""


class HostBack(BaseEvent):
    """The host answered again after `host_waiting`; `waited` seconds were spent waiting."""

    type: Literal["host_back"] = "host_back"
    host: str
    waited: float


class HostSelected(BaseEvent):
    """The agent's next request goes to `host`, another host of its pool than before (the
    model is there, loaded, or the host is less busy; or the last one went down)."""

    type: Literal["host_selected"] = "host_selected"
    host: str
    reason: str = ""


class LogStuck(BaseEvent):
    """The event log has refused writes for a few seconds (locked, disk full, I/O error). The
    events from here on wait in memory, in order, and are written when the log recovers; the
    agents are paused meanwhile (`by="log"`) so memory cannot grow without bound."""

    type: Literal["log_stuck"] = "log_stuck"
    cause: str


class LogRecovered(BaseEvent):
    type: Literal["log_recovered"] = "log_recovered"
    stuck_for: float
    """Seconds the log refused writes."""


class AgentFailed(BaseEvent):
    type: Literal["agent_failed"] = "agent_failed"
    durable: ClassVar[bool] = True
    terminal: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    error: str


class AgentFinished(BaseEvent):
    type: Literal["agent_finished"] = "agent_finished"
    durable: ClassVar[bool] = True
    terminal: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    output: str


Event = Annotated[
    SessionStarted
    | SessionResumed
    | SessionFinished
    | AgentStarted
    | TokenStreamed
    | ThinkingStreamed
    | MessageCompleted
    | AgentPaused
    | AgentResumed
    | AgentRedirected
    | AgentStopped
    | AgentRestarted
    | StateSet
    | Retrying
    | Stalled
    | HostWaiting
    | HostBack
    | HostSelected
    | LogStuck
    | LogRecovered
    | AgentFailed
    | AgentFinished,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_from_row(
    row_id: int, session: str, agent: str | None, seq: int, ts: float, type_: str, data: str
) -> BaseEvent:
    """Decode one stored row (see eventlog.py) back into its event."""
    fields = json.loads(data)
    fields.update(id=row_id, session=session, agent=agent, seq=seq, ts=ts, type=type_)
    event: BaseEvent = EVENT_ADAPTER.validate_python(fields)
    return event


def export_record(event: BaseEvent) -> dict[str, Any]:
    """The export contract: `{"id", "session", "agent", "type", "ts", "data"}`."""
    return {
        "id": event.id,
        "session": event.session,
        "agent": event.agent,
        "type": getattr(event, "type"),  # noqa: B009 - every concrete event has one
        "ts": event.ts,
        "data": event.data(),
    }
