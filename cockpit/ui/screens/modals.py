"""Small modal dialogs: confirm, leave a session, redirect, edit a board value, show a value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from cockpit.core.text import one_line, sanitize

if TYPE_CHECKING:
    from textual.widget import Widget


class ConfirmModal(ModalScreen[bool]):
    """`y` confirms, `n` or escape cancels."""

    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical { width: 70; height: auto; border: thick $warning; padding: 1 2;
                              background: $surface; }
    ConfirmModal Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ConfirmModal Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="cockpit.confirm_yes"),
        Binding("n,escape", "answer(False)", "No", id="cockpit.confirm_no"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question))
            with Horizontal():
                yield Button(f"{self.yes} (y)", variant="warning", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class LeaveModal(ModalScreen[str | None]):
    """Leaving a session that runs in its own process: `d` detaches (the crew goes on), `y`
    stops the crew (what `q`, `y` always did), `n` or escape stays."""

    DEFAULT_CSS = """
    LeaveModal { align: center middle; }
    LeaveModal > Vertical { width: 76; height: auto; border: thick $warning; padding: 1 2;
                            background: $surface; }
    LeaveModal Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    LeaveModal Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("d", "answer('detach')", "Detach", id="cockpit.leave_detach"),
        Binding("y", "answer('stop')", "Stop the crew", id="cockpit.leave_stop"),
        Binding("n,escape", "answer(None)", "Stay", id="cockpit.leave_stay"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question))
            with Horizontal():
                yield Button("Detach (d)", variant="primary", id="detach")
                yield Button("Stop the crew (y)", variant="warning", id="stop")
                yield Button("Stay (n)", id="stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)


if TYPE_CHECKING:
    _Mixin = Widget
else:
    _Mixin = object  # a plain mixin: a second Widget base would upset Textual's class setup


class KeysInOrder(_Mixin):
    """Runs the widget's own bindings as the keys arrive (textual#6605).

    Textual inserts printable keys in the widget's own handler, but keys with a binding (ctrl+u,
    backspace, Enter, cursor keys) first bubble up to the app, several message queues later.
    When a terminal delivers "ctrl+u 0.3 Enter" in one read, the text went in, ctrl+u then
    erased it, and Enter submitted nothing. Mixed in before the widget class.
    """

    async def _on_key(self, event: events.Key) -> None:
        if not event.is_printable:
            bindings = self._bindings.key_to_bindings.get(event.key, [])
            if bindings:
                event.stop()
                event.prevent_default()
                await self.run_action(bindings[0].action)
                return
        await super()._on_key(event)


class OrderedInput(KeysInOrder, Input):
    """An `Input` that applies keys in the order they were typed (`KeysInOrder`)."""


class InputModal(ModalScreen[str | None]):
    """One line of input; Enter sends, escape cancels (None). Enter on an empty line cancels
    too, unless `allow_empty` (then it sends "")."""

    DEFAULT_CSS = """
    InputModal { align: center middle; }
    InputModal > Vertical { width: 90; max-width: 95%; height: auto; border: thick $accent;
                            padding: 1 2;
                            background: $surface; }
    InputModal #prompt { margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cockpit.input_cancel")]

    def __init__(self, prompt: str, value: str = "", placeholder: str = "", *,
                 allow_empty: bool = False) -> None:
        super().__init__()
        self.prompt = prompt
        self.value = value
        self.placeholder = placeholder
        self.allow_empty = allow_empty

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(sanitize(self.prompt)), id="prompt")  # wraps; a Label cuts
            yield OrderedInput(self.value, placeholder=self.placeholder, id="input")
            yield Static(Text("enter sends · escape cancels", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value)
        else:
            self.dismiss("" if self.allow_empty else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RedirectModal(InputModal):
    def __init__(self, agent: str) -> None:
        super().__init__(f"Redirect {agent}: its reply is cut off here and it carries on from "
                         "your instruction.", placeholder="New instruction")


class TextModal(ModalScreen[None]):
    """A long value, read-only and scrollable."""

    DEFAULT_CSS = """
    TextModal { align: center middle; }
    TextModal > VerticalScroll { width: 90%; height: 80%; border: thick $primary;
                                 padding: 0 1; background: $surface; }
    """
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close", id="cockpit.text_close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = Text(one_line(self.title_text, 120))  # never markup
            yield Static(Text(sanitize(self.text)))
