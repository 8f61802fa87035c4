"""The event types: everything that happens in a session, as it happens.

The log of these events is the truth. The TUI, the headless printer, replay, reports and resume
are all views of it, so each event carries what those views need and nothing is derived from
process memory. Events are frozen pydantic models in one union discriminated by `type`; the
`type` strings and field names are the export contract in DESIGN.md.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ENVELOPE: set[str] = {"id", "session", "agent", "seq", "ts", "type"}
"""Fields every event has; the rest is the event's `data` in the export."""


class BaseEvent(BaseModel):
    """The envelope. The supervisor stamps `session`, `seq` and `ts`; the log assigns `id`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

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
    notable: ClassVar[bool] = False
    """Worth a line of its own wherever a session is told: the report's timeline, the replay
    transcript, the headless progress (`describe` words it)."""
    marker: ClassVar[str | None] = None
    """The replay timeline marks it, as this kind: "intervention", "retry", "failure",
    "finish" (or later kinds the views know)."""

    def data(self) -> dict[str, Any]:
        """The event-specific fields, as in the export's `data` object."""
        return self.model_dump(mode="json", exclude=ENVELOPE, by_alias=True)


class SessionStarted(BaseEvent):
    type: Literal["session_started"] = "session_started"
    notable: ClassVar[bool] = True
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
    notable: ClassVar[bool] = True
    durable: ClassVar[bool] = True
    pid: int
    hostname: str = ""
    proc_start: float | None = None
    only: list[str] | None = None
    """`cockpit resume --only`: the agents that continue; None for all of them."""
    stopped_at: float | None = None
    """The time of the last event logged before the resume: where the previous run stopped."""
    previous: str | None = None
    """How the previous run ended: its outcome (`interrupted`, `failed`), or `crashed` when
    the log has no `session_finished` for it."""


class SessionFinished(BaseEvent):
    type: Literal["session_finished"] = "session_finished"
    notable: ClassVar[bool] = True
    durable: ClassVar[bool] = True
    outcome: Literal["finished", "failed", "interrupted"]
    agents: dict[str, str]
    """Each agent's final status."""


class CrewUpdated(BaseEvent):
    """The crew file was edited and the running crew took what a running crew can take: agents
    that have not started run as the file now says, new agents join (and start once their
    `after` have finished); what it cannot take (a started agent's settings, a removed or
    renamed agent, crew-wide settings, tool servers) is listed in `diff` as ignored."""

    type: Literal["crew_updated"] = "crew_updated"
    durable: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "intervention"
    diff: list[str]
    """One readable line per change: `+ agent critic (after writer)`, `~ writer.task: "a" →
    "b"`, `! essay.system ignored: essay has started`. Empty when a valid file only ends an
    earlier rejection."""
    config: dict[str, Any]
    """The whole crew as updated (`CrewConfig.model_dump(mode="json")`): what resume and
    replay run and lay out from here on, ignored changes left out."""
    added: list[str] = Field(default_factory=list)
    """Agents that joined the crew, in file order."""
    changed: list[str] = Field(default_factory=list)
    """Agents not yet started whose settings changed."""
    path: str | None = None
    """The crew file that was read."""


class CrewRejected(BaseEvent):
    """An edit of the crew file did not validate; the crew goes on unchanged. Logged so that
    every viewer (they read the log) can show why the edit did not take."""

    type: Literal["crew_rejected"] = "crew_rejected"
    durable: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "failure"
    error: str
    """`ConfigError`'s text: one `file:line: field: message` line per problem."""
    path: str | None = None


class AgentStarted(BaseEvent):
    type: Literal["agent_started"] = "agent_started"
    notable: ClassVar[bool] = True
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
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    """The turn's tool calls in Ollama's shape, `{"function": {"name", "arguments"}}`, each
    with the `id` cockpit gave it (Ollama's own ids do not survive the client, REFERENCE-2
    F.4). A turn with calls is followed by their results and another turn."""


class AgentPaused(BaseEvent):
    type: Literal["agent_paused"] = "agent_paused"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "intervention"
    durable: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    by: str = "person"


class AgentResumed(BaseEvent):
    type: Literal["agent_resumed"] = "agent_resumed"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "intervention"
    durable: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    by: str = "person"


class AgentRedirected(BaseEvent):
    type: Literal["agent_redirected"] = "agent_redirected"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "intervention"
    durable: ClassVar[bool] = True
    instruction: str
    by: str = "person"
    follow_up: bool = False
    """Given to an agent that had finished: a new turn of its conversation, not a cut-off."""


class AgentStopped(BaseEvent):
    type: Literal["agent_stopped"] = "agent_stopped"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "intervention"
    durable: ClassVar[bool] = True
    terminal: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    by: str = "person"
    reason: str = ""


class AgentRestarted(BaseEvent):
    type: Literal["agent_restarted"] = "agent_restarted"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "intervention"
    durable: ClassVar[bool] = True
    by: str = "person"


class StateSet(BaseEvent):
    type: Literal["state_set"] = "state_set"
    durable: ClassVar[bool] = True
    key: str
    value: Any
    by: str
    tool: str | None = None
    """The tool that wrote it (`board_write`), when an agent wrote it through one."""


class ToolCalled(BaseEvent):
    """A tool call starts running (after its approval, if it needed one)."""

    type: Literal["tool_called"] = "tool_called"
    durable: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "tool"
    call_id: str
    tool: str
    arguments: dict[str, Any]
    turn: int
    rerun: bool = False
    """Run again after an interruption, which only a repeatable tool is (a board read)."""


class ToolResult(BaseEvent):
    type: Literal["tool_result"] = "tool_result"
    durable: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    call_id: str
    tool: str
    content: str
    """What the model reads, as its `role: "tool"` message."""
    error: bool = False
    duration_ms: float = 0.0


class ApprovalRequested(BaseEvent):
    """A call whose tool matches `approve` waits for a decision (it lives in the log, so it
    outlives a crash and comes back on resume)."""

    type: Literal["approval_requested"] = "approval_requested"
    durable: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "approval"
    call_id: str
    tool: str
    arguments: dict[str, Any]


class ApprovalDecided(BaseEvent):
    type: Literal["approval_decided"] = "approval_decided"
    durable: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "approval"
    call_id: str
    decision: Literal["approved", "denied", "edited"]
    reason: str = ""
    """Why it was denied; the model reads it as the call's result."""
    arguments: dict[str, Any] | None = None
    """The arguments the call runs with (the edited ones, for "edited")."""
    by: str = "person"


class MessageSent(BaseEvent):
    """One agent tells another something (`send_message`); the target reads it as a user
    message at its next turn, in its opening if it has not started, or woken if finished."""

    type: Literal["message_sent"] = "message_sent"
    durable: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "message"
    from_: str = Field(alias="from")
    to: str
    text: str


class MessageDelivered(BaseEvent):
    """The messages waiting for the agent go into its conversation now, as user messages."""

    type: Literal["message_delivered"] = "message_delivered"
    durable: ClassVar[bool] = True
    count: int


class AgentWoken(BaseEvent):
    """A finished agent runs again to read a message sent to it (`wakeups` so far)."""

    type: Literal["agent_woken"] = "agent_woken"
    durable: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "message"
    by: str
    wakeups: int


class WakeRefused(BaseEvent):
    """A message did not wake a finished agent: it has used its `max_wakeups`. The message
    stays in the log, unread, and no longer keeps the crew from ending."""

    type: Literal["wake_refused"] = "wake_refused"
    durable: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "message"
    by: str
    limit: int


class ToolServerRestarted(BaseEvent):
    """An MCP server died (noticed through a call, which returned an error to the model) and
    is being started again."""

    type: Literal["tool_server_restarted"] = "tool_server_restarted"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "failure"
    server: str
    reason: str


class OutputChecked(BaseEvent):
    """The verdict on a final answer (its `format` and `checks`). A failure sends the model a
    correction turn naming what failed, up to `check_retries`, then fails the agent."""

    type: Literal["output_checked"] = "output_checked"
    durable: ClassVar[bool] = True
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "check"
    passed: bool
    failures: list[str] = Field(default_factory=list)
    attempt: int = 1


class Retrying(BaseEvent):
    type: Literal["retrying"] = "retrying"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "retry"
    attempt: int
    """1 for the first retry."""
    reason: str
    delay: float
    host: str = ""
    """The host the failed attempt used."""


class Stalled(BaseEvent):
    type: Literal["stalled"] = "stalled"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "retry"
    seconds: float
    """How long no chunk had arrived."""


class HostWaiting(BaseEvent):
    """The agent's host cannot be reached (refused, reset, DNS, connect timeout): the agent
    waits for it, up to `limit` seconds, without spending its retries. Logged once per outage,
    not per attempt."""

    type: Literal["host_waiting"] = "host_waiting"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "retry"
    host: str
    reason: str
    limit: float
    """The agent's `host_wait`, in seconds."""


class HostBack(BaseEvent):
    """The host answered again after `host_waiting`; `waited` seconds were spent waiting."""

    type: Literal["host_back"] = "host_back"
    notable: ClassVar[bool] = True
    host: str
    waited: float


class HostSelected(BaseEvent):
    """The agent's next request goes to `host`, another host of its pool than before (the
    model is there, loaded, or the host is less busy; or the last one went down)."""

    type: Literal["host_selected"] = "host_selected"
    notable: ClassVar[bool] = True
    host: str
    reason: str = ""


class LogStuck(BaseEvent):
    """The event log has refused writes for a few seconds (locked, disk full, I/O error). The
    events from here on wait in memory, in order, and are written when the log recovers; the
    agents are paused meanwhile (`by="log"`) so memory cannot grow without bound."""

    type: Literal["log_stuck"] = "log_stuck"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "failure"
    cause: str


class LogRecovered(BaseEvent):
    type: Literal["log_recovered"] = "log_recovered"
    notable: ClassVar[bool] = True
    stuck_for: float
    """Seconds the log refused writes."""


class AgentFailed(BaseEvent):
    type: Literal["agent_failed"] = "agent_failed"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "failure"
    durable: ClassVar[bool] = True
    terminal: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    error: str


class AgentFinished(BaseEvent):
    type: Literal["agent_finished"] = "agent_finished"
    notable: ClassVar[bool] = True
    marker: ClassVar[str | None] = "finish"
    durable: ClassVar[bool] = True
    terminal: ClassVar[bool] = True
    settles: ClassVar[bool] = True
    output: str


Event = Annotated[
    SessionStarted
    | SessionResumed
    | SessionFinished
    | CrewUpdated
    | CrewRejected
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
    | ToolCalled
    | ToolResult
    | ApprovalRequested
    | ApprovalDecided
    | MessageSent
    | MessageDelivered
    | AgentWoken
    | WakeRefused
    | OutputChecked
    | ToolServerRestarted
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


def event_classes() -> dict[str, type[BaseEvent]]:
    """Every concrete event class, by its `type` string."""
    return {cls.model_fields["type"].default: cls for cls in BaseEvent.__subclasses__()}


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
