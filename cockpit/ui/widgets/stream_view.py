"""A bounded, append-only view of plain text lines, for text that streams in fast.

Textual's `Log` does per-line work on every write (control-code scrubbing, width measuring, a
refresh per line, a thread per `write_lines`): at full speed, a frame's thousand new lines
cost more than drawing the screen. The pane already sanitises and wraps its text to the view's
width, so this view only appends strings and, when drawing, turns the visible ones into strips.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


class StreamView(ScrollView, can_focus=False):
    """Lines of plain text; `write` appends (a trailing piece stays open for the next write)."""

    DEFAULT_CSS = """
    StreamView { overflow-x: hidden; overflow-y: auto; }
    """

    def __init__(self, max_lines: int, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: list[str] = []
        """Every kept line; the last one is still open (may be "")."""
        self.auto_scroll = True

    @property
    def line_count(self) -> int:
        if self.lines:
            return len(self.lines) - (self.lines[-1] == "")
        return 0

    def write(self, text: str, scroll_end: bool | None = None) -> None:
        """Append `text` (no control characters; "\n" ends a line)."""
        if not text:
            return
        lines = self.lines
        parts = text.split("\n")
        if lines:
            lines[-1] += parts[0]
            lines.extend(parts[1:])
        else:
            lines.extend(parts)
        if len(lines) > self.max_lines:
            del lines[: len(lines) - self.max_lines]
        self._grow(Size(self.scrollable_content_region.width, len(lines)))
        self.refresh()
        if self.auto_scroll if scroll_end is None else scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def clear(self) -> None:
        self.lines = []
        self.virtual_size = Size(0, 0)
        self.refresh()

    def _grow(self, size: Size) -> None:
        """Set the virtual size without a screen-wide layout pass.

        `virtual_size` is a layout reactive: assigning it re-arranges every widget and redraws
        the whole screen, which made each frame cost ~15 ms however little changed. Growing a
        view only moves its own scrollbar (Textual's own `_size_updated(layout=False)` path);
        when the scrollbar appears, `show_vertical_scrollbar` still asks for the layout.
        """
        self.set_reactive(ScrollView.virtual_size, size)
        self._scroll_update(size)

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if index >= len(self.lines):
            return Strip.blank(width, style)
        text = self.lines[index]
        return Strip([Segment(text, style)]).adjust_cell_length(width, style)
