"""Edit a tool call's arguments as JSON before approving it (`e` in the approval inbox).

The text must stay a valid JSON object: saving anything else is refused with the parser's
reason, and the modal stays open so nothing typed is lost.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

from cockpit.core.text import one_line
from cockpit.ui.screens.modals import KeysInOrder


def parse_arguments(text: str) -> dict[str, Any] | str:
    """The arguments `text` holds, or why it cannot be saved."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text, parse_constant=no_constant)
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode()  # inf, lone surrogates
    except json.JSONDecodeError as error:
        return (f"Not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}). "
                "Fix it, or press escape to leave the call as it is.")
    except (ValueError, UnicodeError) as error:
        reason = ("a lone surrogate (\\ud800-\\udfff) cannot be stored"
                  if isinstance(error, UnicodeError) else str(error))
        return f"Not valid JSON: {reason}. Fix it, or press escape to leave the call as it is."
    if not isinstance(value, dict):
        return (f"The arguments must be a JSON object ({{\"name\": value, ...}}), "
                f"not {type(value).__name__ if value is not None else 'null'}.")
    return value


class OrderedTextArea(KeysInOrder, TextArea):
    """A `TextArea` that applies keys in the order they were typed (`KeysInOrder`): typed
    fast, `down end x` put the x at the top."""


class ArgumentsModal(ModalScreen[dict[str, Any] | None]):
    """A multi-line JSON editor; ctrl+s approves the call with what it holds, escape cancels."""

    DEFAULT_CSS = """
    ArgumentsModal { align: center middle; }
    ArgumentsModal > Vertical { width: 100; max-width: 95%; height: 80%; border: thick $accent;
                                padding: 0 1; background: $surface; }
    ArgumentsModal TextArea { height: 1fr; }
    ArgumentsModal #error { color: $text-error; height: auto; }
    ArgumentsModal Horizontal { height: auto; align-horizontal: right; }
    ArgumentsModal Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Approve edited", id="cockpit.arguments_save",
                tooltip="Approve the call with these arguments (they must be a JSON object)"),
        Binding("escape", "cancel", "Cancel", id="cockpit.arguments_cancel"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = Text(one_line(self.title_text, 120))  # never markup
            yield Static(Text("Edit the arguments (JSON). ctrl+s approves the call with them; "
                              "escape leaves it waiting.", style="dim"))
            yield OrderedTextArea(self.text, id="arguments", soft_wrap=True,
                                  show_line_numbers=True)
            yield Static(id="error")
            with Horizontal():
                yield Button("Approve edited (ctrl+s)", variant="warning", id="save")
                yield Button("Cancel (escape)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def on_text_area_changed(self) -> None:
        self.query_one("#error", Static).update("")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def action_save(self) -> None:
        parsed = parse_arguments(self.query_one(TextArea).text)
        if isinstance(parsed, str):
            self.query_one("#error", Static).update(Text(parsed))
            return
        self.dismiss(parsed)

    def action_cancel(self) -> None:
        self.dismiss(None)
