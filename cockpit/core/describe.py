"""One sentence per event, shared by every view that shows it (the TUI's pane markers, the
Markdown export, the report's timeline, the replay transcript), so they never word it
differently."""

from __future__ import annotations

from cockpit.core import events as ev


def intervention(event: ev.BaseEvent) -> str | None:
    """`redirected by person: Be brief.`; None for events that are not interruptions."""
    match event:
        case ev.AgentPaused() | ev.AgentResumed() | ev.AgentStopped() | ev.AgentRestarted():
            return f"{event.type.removeprefix('agent_')} by {event.by}"
        case ev.AgentRedirected():
            return f"redirected by {event.by}: {event.instruction}"
        case ev.Retrying():
            return f"retry {event.attempt} in {event.delay:.1f} s: {event.reason}"
        case ev.Stalled():
            return f"stalled: no chunk for {event.seconds:g} s"
        case ev.AgentFailed():
            return f"failed: {event.error}"
    return None


def describe(event: ev.BaseEvent) -> str:
    """One line for any event worth a line: an interruption, a start, an end."""
    if (note := intervention(event)) is not None:
        return note
    match event:
        case ev.SessionStarted():
            return f"session started: crew {event.crew!r}"
        case ev.SessionResumed():
            return f"session resumed (process {event.pid})"
        case ev.SessionFinished():
            return f"session {event.outcome}"
        case ev.AgentStarted():
            return f"started on {event.model} @ {event.host}"
        case ev.AgentFinished():
            return "finished"
    return event.type  # type: ignore[attr-defined, no-any-return]
