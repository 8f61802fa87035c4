"""How calls are worded: safe JSON that parses back exactly, one line that fits its pane, and
the editor's refusal of anything but a JSON object."""

from __future__ import annotations

import json
import re

import pytest

from cockpit.core import events as ev
from cockpit.ui.calls import CallView, pretty_json
from cockpit.ui.screens.arguments_modal import parse_arguments

HOSTILE = {"key": "k\x1b]52;c;aGk=\x07", "value": ["\x9b2J", "\u202eevil", "é 中 ✓", "\ud800"],
           "n": 3}
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def test_pretty_json_is_safe_to_show_and_parses_back_to_the_same_value() -> None:
    text = pretty_json(HOSTILE)
    assert not UNSAFE.search(text)
    assert json.loads(text) == HOSTILE
    assert "é 中 ✓" in text  # readable text stays as it is
    assert text.startswith('{\n  "key": ')


def call(state: str) -> CallView:
    view = CallView("w.1.1", "board_write", {"key": "plan", "value": "x" * 300})
    events: dict[str, list[ev.BaseEvent]] = {
        "waiting": [ev.ApprovalRequested(call_id="w.1.1", tool="board_write",
                                         arguments=view.arguments)],
        "running": [ev.ToolCalled(call_id="w.1.1", tool="board_write",
                                  arguments=view.arguments, turn=1)],
        "done": [ev.ApprovalDecided(call_id="w.1.1", decision="approved"),
                 ev.ToolResult(call_id="w.1.1", tool="board_write", content="ok",
                               duration_ms=12.4)],
        "failed": [ev.ToolResult(call_id="w.1.1", tool="board_write", content="boom " * 50,
                                 error=True, duration_ms=3)],
        "denied": [ev.ApprovalDecided(call_id="w.1.1", decision="denied",
                                      reason="frozen " * 40)],
    }
    for event in events[state]:
        view.apply(event)
    return view


@pytest.mark.parametrize("state", ["waiting", "running", "done", "failed", "denied"])
@pytest.mark.parametrize("width", [30, 37, 60, 78, 158])
def test_a_call_is_one_line_that_fits_and_says_what_became_of_it(state: str,
                                                                   width: int) -> None:
    line = call(state).line(width)
    assert len(line) <= width and "\n" not in line
    assert line.startswith("⚙ board_write")
    mark = {"waiting": "⏸ wait", "running": "… running", "done": "✓ 12 ms",
            "failed": "✗ 3 ms", "denied": "✗ denied"}[state]
    assert mark in line.replace("awaiting approval", "waits")
    assert len(line.split(" ", 2)[1]) >= len("board_write")  # the tool's name is never cut
    if width >= 78 and state == "done":
        assert line.endswith("✓ 12 ms · approved by person")


def test_the_editor_takes_a_json_object_only() -> None:
    assert parse_arguments('{"key": "plan"}') == {"key": "plan"}
    refused = parse_arguments('{"key": "plan",}')
    assert isinstance(refused, str) and refused.startswith("Not valid JSON: ")
    assert "(line 1, column 16)" in refused
    assert parse_arguments("[1, 2]") == ("The arguments must be a JSON object "
                                         '({"name": value, ...}), not list.')
    assert "not null" in str(parse_arguments("null"))
    # What the log cannot keep exactly is refused, not stored changed or fatal to the writer.
    for text in ('{"x": NaN}', '{"x": Infinity}', '{"x": 1e400}', '{"x": "\\ud800"}'):
        refused = parse_arguments(text)
        assert isinstance(refused, str) and refused.startswith("Not valid JSON: "), text
