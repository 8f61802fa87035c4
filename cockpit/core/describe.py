"""One sentence per event, shared by every view that shows it (the TUI's pane markers, the
Markdown export, the report's timeline, the replay transcript), so they never word it
differently."""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from cockpit.core import events as ev
from cockpit.core.text import one_line

if TYPE_CHECKING:
    from cockpit.core.state import AgentState

HOST_WIDTH = 60
"""Host names come from crew files and pools: shown in full up to this, then cut."""


def duration(seconds: float) -> str:
    """`0.5 s`, `12 s`, `3 min`, `1 min 5 s`, `2 h 5 min`: a span for people (whole seconds
    from 10 s on)."""
    if not math.isfinite(seconds):
        return "ever"
    if 0 < seconds < 9.95 and seconds != int(seconds):
        return f"{seconds:.1f} s"
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, rest = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def wait_limit(limit: float) -> str:
    """`up to 10 min`: how long an agent waits for its host (`host_wait`)."""
    return f"up to {duration(limit)}" if math.isfinite(limit) else "no time limit"


def host_name(host: str, width: int = HOST_WIDTH) -> str:
    """A host as lines show it: one sanitised line, without the `http://` everybody has."""
    return one_line(host.removeprefix("http://").rstrip("/") or host, width)


def status_text(agent: AgentState) -> str:
    """The agent's status as every surface words it: `finished (length)` when Ollama cut
    the answer off (`num_predict`), so a truncated answer never passes for a whole one."""
    word = str(agent.status)
    if word == "finished" and agent.done_reason not in (None, "", "stop"):
        return f"{word} ({one_line(agent.done_reason, 20)})"
    return word


def resumed_line(event: ev.SessionResumed) -> str | None:
    """`crashed at 03:12, resumed at 07:40` (local time; the day too when it changed);
    None for a log that did not record where the previous run stopped."""
    if event.stopped_at is None:
        return None
    how = event.previous if event.previous in ("crashed", "interrupted", "failed") else \
        "stopped"
    stopped, resumed = time.localtime(event.stopped_at), time.localtime(event.ts)
    day = "%Y-%m-%d " if stopped[:3] != resumed[:3] else ""
    return (f"{how} at {time.strftime('%H:%M', stopped)}, "
            f"resumed at {time.strftime(day + '%H:%M', resumed)}")


def intervention(event: ev.BaseEvent) -> str | None:
    """`redirected by person: Be brief.`; None for events that are not interruptions."""
    match event:
        case ev.SessionResumed():
            return resumed_line(event)
        case ev.AgentResumed() if event.by == "resume":
            return "continued by cockpit resume"
        case ev.AgentPaused() | ev.AgentResumed() | ev.AgentStopped() | ev.AgentRestarted():
            return f"{event.type.removeprefix('agent_')} by {event.by}"
        case ev.AgentRedirected() if event.follow_up:
            return f"follow-up by {event.by}: {event.instruction}"
        case ev.AgentRedirected():
            return f"redirected by {event.by}: {event.instruction}"
        case ev.Retrying():
            at = f" (at {host_name(event.host)})" if event.host else ""
            return f"retry {event.attempt} in {event.delay:.1f} s: {event.reason}{at}"
        case ev.Stalled():
            return f"stalled: no chunk for {event.seconds:g} s"
        case ev.HostWaiting():
            return (f"waiting for Ollama at {host_name(event.host)}: {event.reason} "
                    f"({wait_limit(event.limit)})")
        case ev.HostBack():
            return f"Ollama at {host_name(event.host)} answered again after " \
                f"{duration(event.waited)}"
        case ev.HostSelected():
            why = f" ({event.reason})" if event.reason else ""
            return f"now on {host_name(event.host)}{why}"
        case ev.LogStuck():
            return f"event log not writable: {event.cause}; agents paused until it accepts " \
                "writes, nothing is lost"
        case ev.LogRecovered():
            return f"event log writable again after {duration(event.stuck_for)}; agents resume"
        case ev.AgentFailed():
            return f"failed: {event.error}"
        case ev.ApprovalRequested():
            return f"asks approval: {call_line(event.tool, event.arguments)}"
        case ev.ApprovalDecided():
            why = f": {event.reason}" if event.reason else ""
            return f"{event.decision} by {event.by} ({event.call_id}){why}"
        case ev.AgentWoken():
            return f"woken by a message from {event.by} (wake-up {event.wakeups})"
        case ev.WakeRefused():
            return (f"not woken by {event.by}'s message: it has used its {event.limit} "
                    "wake-ups (max_wakeups)")
        case ev.ToolServerRestarted():
            return f"mcp server {event.server!r} restarted: {event.reason}"
        case ev.OutputChecked() if not event.passed:
            return f"output failed its checks: {'; '.join(event.failures)}"
        case ev.CrewUpdated():
            if not event.diff:
                return "crew file valid again; the crew is as it was"
            return f"crew file changed: {'; '.join(event.diff)}"
        case ev.CrewRejected():
            return f"crew file change rejected, the crew goes on unchanged: " \
                f"{'; '.join(event.error.splitlines())}"
    return None


def call_line(tool: str, arguments: dict[str, Any], width: int = 80) -> str:
    """`board_write plan="draft"`: a call on one line, its arguments cut to `width`."""
    args = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return one_line(f"{tool} {args}".strip(), width)


def result_line(event: ev.ToolResult) -> str:
    """`⚙ board_write ✓ 12 ms` (or ✗ with the error's start)."""
    mark = "✗" if event.error else "✓"
    tail = f": {one_line(event.content, 60)}" if event.error else ""
    return f"⚙ {one_line(event.tool, 60)} {mark} {event.duration_ms:.0f} ms{tail}"


def describe(event: ev.BaseEvent) -> str:
    """One line for any event worth a line: an interruption, a start, an end."""
    if isinstance(event, ev.SessionResumed):
        only = f", only {', '.join(event.only)}" if event.only is not None else ""
        where = f": {line}" if (line := resumed_line(event)) else ""
        return f"session resumed (process {event.pid}{only}){where}"
    if (note := intervention(event)) is not None:
        return note
    match event:
        case ev.SessionStarted():
            return f"session started: crew {event.crew!r}"
        case ev.SessionFinished():
            return f"session {event.outcome}"
        case ev.AgentStarted():
            return f"started on {event.model} @ {event.host}"
        case ev.AgentFinished():
            return "finished"
        case ev.ToolCalled():
            again = " (again, after an interruption)" if event.rerun else ""
            return f"⚙ {call_line(event.tool, event.arguments)}{again}"
        case ev.ToolResult():
            return result_line(event)
        case ev.MessageSent():
            return f"message to {event.to}: {one_line(event.text, 120)}"
        case ev.OutputChecked():
            return "output passed its checks"
    return event.type  # type: ignore[attr-defined, no-any-return]
