"""One sentence for an event that interrupts a reply, shared by every view that shows it
(the TUI's pane markers and the Markdown export), so they never word it differently."""

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
