"""Edit a board value in a multi-line editor (`e` in the state inspector).

A value that is JSON (an object, a list, a number, a boolean, null) is edited as pretty-printed
JSON and must parse back to JSON to be saved: on an error the editor says where (line and
column) and stays open with the text, so nothing typed is lost. A string is edited as plain
text, newlines and all, unless it holds control characters: those cannot be shown in a terminal
(they would act on it), so such a string is edited as a JSON string, with `\\u` escapes for
them, and comes back exact. Escape asks before it throws changes away.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from cockpit.core.text import one_line, sanitize
from cockpit.ui.screens.arguments_modal import OrderedTextArea

UNSHOWABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2066-\u2069\ud800-\udfff]")
"""What `sanitize` would take out of the editor's text: in JSON it is written as an escape."""


@dataclass(frozen=True)
class Edited:
    """What the editor saved: the new value, and the board version it was an edit of."""

    value: Any
    version: int


def edited_as_json(value: Any) -> bool:
    """A string whose every character can be shown is edited as text; anything else as JSON."""
    return not isinstance(value, str) or sanitize(value) != value


def as_text(value: Any) -> str:
    """How `value` is edited: a showable string as it is, anything else as indented JSON in
    which every character a terminal would act on is a `\\u` escape (valid JSON, exact)."""
    if isinstance(value, str) and not edited_as_json(value):
        return value
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return UNSHOWABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def parse_json(text: str) -> tuple[Any, str | None]:
    """The JSON value `text` holds and None, or None and why it cannot be saved (where, for a
    syntax error). NaN and Infinity are refused: they are not JSON and no other reader takes
    them."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text, parse_constant=no_constant)
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode()  # inf, lone surrogates
    except json.JSONDecodeError as error:
        return None, f"Not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}."
    except (ValueError, UnicodeError) as error:
        reason = ("a lone surrogate (\\ud800-\\udfff) cannot be stored"
                  if isinstance(error, UnicodeError) else str(error))
        return None, f"Not valid JSON: {reason}."
    return value, None


class ValueEditor(ModalScreen[Edited | None]):
    """ctrl+s saves (as a `state_set` by the person), escape cancels."""

    DEFAULT_CSS = """
    ValueEditor { align: center middle; }
    ValueEditor > Vertical { width: 100; max-width: 95%; height: 80%; border: thick $accent;
                             padding: 0 1; background: $surface; }
    ValueEditor TextArea { height: 1fr; }
    ValueEditor #error { color: $text-error; height: auto; }
    ValueEditor #keys { color: $text-muted; height: 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="cockpit.value_save",
                tooltip="Save the value on the board (a state_set by you)"),
        Binding("escape", "cancel", "Cancel", id="cockpit.value_cancel",
                tooltip="Close the editor (asks first if you changed the value)"),
    ]

    def __init__(self, key: str, value: Any, version: int) -> None:
        super().__init__()
        self.key = key
        self.json = edited_as_json(value)
        """Edited as JSON (and saved only as JSON), else as plain text."""
        self.original = as_text(value)
        self.version = version

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    def compose(self) -> ComposeResult:
        kind = "JSON" if self.json else "text"
        with Vertical() as box:
            box.border_title = Text(f"Edit {one_line(self.key, 80)} ({kind})")  # never markup
            yield OrderedTextArea(self.original, id="value", soft_wrap=True,
                                  show_line_numbers=self.json)
            yield Static(id="error")
            must = " (it must be JSON)" if self.json else ""
            yield Static(Text(f"ctrl+s saves{must}, as a state_set by you · escape cancels"),
                         id="keys")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def on_text_area_changed(self) -> None:
        self.query_one("#error", Static).update("")

    def action_save(self) -> None:
        text = self.text
        if not self.json:
            self.dismiss(Edited(text, self.version))
            return
        value, error = parse_json(text)
        if error is not None:
            self.query_one("#error", Static).update(Text(error))
            return
        self.dismiss(Edited(value, self.version))

    def action_cancel(self) -> None:
        from cockpit.ui.screens.modals import ConfirmModal

        if self.text == self.original:
            self.dismiss(None)
            return

        def decided(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)

        self.app.push_screen(ConfirmModal(f"Throw away your changes to {one_line(self.key, 60)}?",
                                          yes="Discard"), decided)
