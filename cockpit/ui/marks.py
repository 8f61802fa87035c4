"""How the views mark an event of each `BaseEvent.marker` kind: a glyph and a colour, the
same in the replay timeline and the event log. The glyph carries the meaning; the colour only
helps."""

from __future__ import annotations

from cockpit.core import events as ev

MARKS: dict[str, tuple[str, str]] = {
    "failure": ("✖", "red"),
    "intervention": ("▲", "yellow"),
    "approval": ("⚑", "orange1"),
    "finish": ("✔", "steel_blue1"),
    "check": ("☑", "green3"),
    "message": ("✉", "medium_purple1"),
    "retry": ("↻", "dark_orange"),
    "tool": ("⚙", "cyan3"),
}
"""By precedence: where two markers fall on one cell of the timeline, the earlier kind shows."""
LABELS = {"failure": "failure", "intervention": "intervention", "approval": "approval",
          "finish": "finish", "check": "check", "message": "message", "retry": "retry/stall",
          "tool": "tool"}
RANK = {kind: rank for rank, kind in enumerate(MARKS)}
UNKNOWN = ("•", "")
"""A kind this version does not know (a newer log): still marked."""


def mark_kind(event: ev.BaseEvent) -> str | None:
    """The event's marker kind; a tool's result is marked like its call."""
    if isinstance(event, ev.ToolResult):
        return "tool"
    return event.marker


def mark(kind: str) -> tuple[str, str]:
    return MARKS.get(kind, UNKNOWN)


def event_mark(event: ev.BaseEvent) -> tuple[str, str] | None:
    """The mark of one event in the event log: its kind's, red when it reports a failure."""
    kind = mark_kind(event)
    if kind is None:
        return None
    glyph, colour = mark(kind)
    if isinstance(event, ev.OutputChecked) and not event.passed:
        return "☒", "red"
    if isinstance(event, ev.ToolResult) and event.error:
        return glyph, "red"
    if isinstance(event, ev.ApprovalDecided) and event.decision == "denied":
        return glyph, "red"
    return glyph, colour
