"""Tool calls as the TUI shows them: a pane's one-line record of each call, and arguments as
JSON a person can read, check and edit.

Arguments and results come from the model or a tool server: untrusted. Lines go through
`one_line` (which drops control sequences); JSON keeps every character but writes the ones a
terminal would act on as JSON escapes (`\\u001b`), so what a person approves is exactly what
runs, yet nothing in it can reach the terminal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from cockpit.core import events as ev
from cockpit.core.describe import call_line, duration
from cockpit.core.text import one_line, sanitize

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""C0 except tab and newline, DEL, C1, bidi embeddings/overrides/isolates, lone surrogates
(REFERENCE-2 K.3)."""
RESULT_CHARS = 2000
"""How much of a result the expanded view of a call shows; the log has all of it."""
RESULT_LINES = 30
CallState = Literal["waiting", "approved", "running", "done", "failed", "denied"]


def pretty_json(value: Any, indent: int | None = 2) -> str:
    """`value` as indented JSON that parses back to the same value and is safe to show."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, default=str)
    # Outside strings JSON is ASCII, so every match is inside a string, where \uXXXX is valid.
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def clock(seconds: float) -> str:
    """`1:05`: elapsed time as the panes count it."""
    whole = int(max(0.0, seconds))
    if whole >= 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def milliseconds(value: float) -> str:
    return f"{value:.0f} ms" if value < 1000 else duration(value / 1000)


@dataclass(eq=False)
class CallView:
    """One call as a pane shows it, folded from its events (request, decision, run, result)."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    state: CallState = "running"
    decided: str = ""
    """`approved by person`, `edited by person`: how a gated call got to run."""
    reason: str = ""
    content: str | None = None
    """The start of the result (`RESULT_CHARS`): what the details show."""
    content_chars: int = 0
    duration_ms: float | None = None

    @classmethod
    def of(cls, event: ev.ToolCalled | ev.ToolResult | ev.ApprovalRequested
           | ev.ApprovalDecided) -> CallView:
        """The view of a call first seen at `event` (the pane may have missed its start)."""
        arguments = getattr(event, "arguments", None) or {}
        view = cls(event.call_id, getattr(event, "tool", "?"), dict(arguments))
        view.apply(event)
        return view

    def apply(self, event: ev.BaseEvent) -> None:
        if self.tool == "?" and isinstance(tool := getattr(event, "tool", None), str):
            self.tool = tool  # first seen at its decision (a resumed session), which has none
        match event:
            case ev.ApprovalRequested():
                self.state, self.arguments = "waiting", dict(event.arguments)
            case ev.ApprovalDecided():
                if event.arguments is not None:
                    self.arguments = dict(event.arguments)
                if event.decision == "denied":
                    self.state, self.reason = "denied", event.reason
                    self.decided = f"denied by {event.by}"
                else:
                    self.state, self.decided = "approved", f"{event.decision} by {event.by}"
            case ev.ToolCalled():
                self.state, self.arguments = "running", dict(event.arguments)
            case ev.ToolResult():
                self.content, self.duration_ms = event.content[:RESULT_CHARS], event.duration_ms
                self.content_chars = len(event.content)
                if self.state != "denied":
                    self.state = "failed" if event.error else "done"

    @property
    def kind(self) -> str:
        """The StreamView line kind: how the line is coloured."""
        if self.state == "waiting":
            return "waiting"
        return "error" if self.state in ("failed", "denied") else "tool"

    def status(self, short: bool = False) -> str:
        """What became of the call; `short`, for a narrow pane, leaves out who decided and
        the error's text."""
        if short:
            ms = milliseconds(self.duration_ms or 0)
            return {"waiting": "⏸ waits", "approved": "✓ approved", "running": "… running",
                    "denied": "✗ denied", "failed": f"✗ {ms}"}.get(self.state, f"✓ {ms}")
        match self.state:
            case "waiting":
                return "⏸ awaiting approval"
            case "approved":
                return f"{self.decided}, about to run"
            case "running":
                return "… running"
            case "denied":
                return f"✗ {self.decided}" + (f": {one_line(self.reason, 200)}"
                                               if self.reason else "")
            case "failed":
                return f"✗ {milliseconds(self.duration_ms or 0)}: " \
                    f"{one_line(self.content or '', 200)}"
        done = f"✓ {milliseconds(self.duration_ms or 0)}"
        return f"{done} · {self.decided}" if self.decided else done

    def line(self, width: int) -> str:
        """`⚙ board_write key="plan" value="v1" ✓ 12 ms`, at most `width` wide (0: any):
        the arguments give way first, then the status."""
        whole = call_line(self.tool, self.arguments, 200)
        if width <= 0:
            return f"⚙ {whole} {self.status()}"
        for status in (self.status(), self.status(short=True)):  # a narrow pane: the short
            status = one_line(status, max(12, width * 2 // 3))   # one, and the call shows
            room = width - len(status) - 3
            if room >= min(24, len(whole)):
                break
        call = call_line(self.tool, self.arguments, max(room, 1))
        return one_line(f"⚙ {call} {status}", width)

    def details(self) -> str:
        """The arguments as JSON and the result's start, indented under the line."""
        lines = ["  arguments:"]
        lines += ["    " + line for line in pretty_json(self.arguments).split("\n")]
        if self.content is not None:
            content = sanitize(self.content).replace("\t", "    ")
            shown = content.split("\n")[:RESULT_LINES]
            lines.append("  result:" if self.state != "failed" else "  error:")
            lines += ["    " + line for line in shown]
            if len("\n".join(shown)) < len(content) or self.content_chars > RESULT_CHARS:
                lines.append(f"    … ({self.content_chars} characters in all; the log has "
                             "them)")
        return "\n".join(lines)
