"""Each event type's traits are declared once, on its class; these tests keep the views that
read them honest (a new type cannot be forgotten by the reducer or worded by nobody)."""

from __future__ import annotations

import typing

from cockpit.core import events as ev
from cockpit.core.describe import describe
from cockpit.core.state import _HANDLERS

MARKER_KINDS = {"intervention", "retry", "failure", "finish", "tool", "approval", "message",
                "check"}


def _union() -> set[type[ev.BaseEvent]]:
    union = typing.get_args(ev.Event)[0]
    return set(typing.get_args(union))


def test_every_event_class_is_in_the_union() -> None:
    assert set(ev.event_classes().values()) == _union()


def test_every_event_type_is_folded() -> None:
    assert set(ev.event_classes()) <= set(_HANDLERS), "add a handler in state.py"


def test_notable_events_are_worded() -> None:
    for type_, cls in ev.event_classes().items():
        if cls.notable:
            assert describe(_sample(cls)) != type_, f"describe() has no words for {type_}"


def test_markers_are_kinds_the_timeline_knows() -> None:
    for cls in ev.event_classes().values():
        assert cls.marker is None or cls.marker in MARKER_KINDS
        assert cls.marker is None or cls.notable, "a marked event has a line of its own"


def test_terminal_events_settle_and_are_durable() -> None:
    for cls in ev.event_classes().values():
        if cls.terminal:
            assert cls.settles and cls.durable


def _sample(cls: type[ev.BaseEvent]) -> ev.BaseEvent:
    """An instance with placeholder values for the required fields."""
    values: dict[str, typing.Any] = {}
    for name, field in cls.model_fields.items():
        if not field.is_required():
            continue
        annotation = str(field.annotation)
        values[name] = (0 if "int" in annotation or "float" in annotation else
                        {} if "dict" in annotation else [] if "list" in annotation else
                        "finished" if name == "outcome" else "x")
    return cls.model_construct(agent="a", **values)
