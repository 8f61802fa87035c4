"""One line above the footer for what just happened: agents that ended, calls that wait, why a
key did nothing.

Toasts stacked over the panes hid the text they were about, and five agents ending at once
made five of them. The flash line holds one message: a new one replaces it, and it clears
itself after its timeout. Callers that add to what it says (endings that keep coming) pass a
`key` and ask `showing(key)` whether their message is still up. The line always takes its row,
shown or not, so the panes never move when it flashes.
"""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from cockpit.core.text import one_line

Severity = Literal["information", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("information", "warning", "error")
FLASH_SECONDS = 6.0
MAX_TEXT = 500
"""Characters kept of a message; the line crops to its width with an ellipsis anyway."""


class FlashLine(Static):
    """The last message, until it times out."""

    DEFAULT_CSS = """
    FlashLine { height: 1; padding: 0 1; color: $text-muted; }
    FlashLine.-information { color: $text; }
    FlashLine.-warning { color: $warning; text-style: bold; }
    FlashLine.-error { color: $error; text-style: bold; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__("", id=id, markup=False)
        self.text = ""
        """What the line says now, as plain text ("" when clear)."""
        self.last = ""
        """What it said last, kept after it clears (what a key press answered)."""
        self.severity: Severity = "information"
        self.key: str | None = None
        self._timer: Timer | None = None
        self._timeout = FLASH_SECONDS

    def flash(self, text: str, severity: str = "information", timeout: float = FLASH_SECONDS,
              key: str | None = None) -> None:
        """Say `text` (untrusted: sanitised, never markup) for `timeout` seconds, replacing
        whatever the line said."""
        level: Severity = severity if severity in SEVERITIES else "information"
        self._stop_timer()
        self.text = self.last = one_line(text, MAX_TEXT)
        self.severity, self.key = level, key
        self.set_classes(f"-{level}")
        self.update(Text(self.text, no_wrap=True, overflow="ellipsis"))
        self._timeout = timeout
        if self.is_mounted:
            self._timer = self.set_timer(timeout, self.clear, name="flash line")

    def on_mount(self) -> None:
        if self.text:  # flashed before the screen was up: the timeout starts now
            self._timer = self.set_timer(self._timeout, self.clear, name="flash line")

    def showing(self, key: str) -> bool:
        """The message flashed with `key` is still up (nothing has replaced it or timed out)."""
        return bool(self.text) and self.key == key

    def clear(self) -> None:
        self._stop_timer()
        self.text, self.key = "", None
        self.set_classes("")
        self.update("")

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
