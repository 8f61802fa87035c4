"""A bounded, append-only view of plain text lines, for text that streams in fast.

Textual's `Log` does per-line work on every write (control-code scrubbing, width measuring, a
refresh per line, a thread per `write_lines`): at full speed, a frame's thousand new lines
cost more than drawing the screen. The pane already sanitises and wraps its text to the view's
width, so this view only appends strings and, when drawing, turns the visible ones into strips.

Lines are numbered from the first ever written (`dropped` counts those pruned from the front),
so a writer can remember where something began and later rewrite the view from there
(`truncate`): a tool call's line changes when its result arrives.

A search (`search`) highlights its matches as lines are drawn, and a mouse selection works as in
Textual's own widgets (`get_selection`): the view's text is what the person reads and copies.
"""

from __future__ import annotations

import re

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip

LINE_KINDS = ("mark", "tool", "waiting", "error", "note")
"""Kinds of line a writer may tag (`write(kind=...)`), each styled by a component class."""


class StreamView(ScrollView, can_focus=False):
    """Lines of plain text; `write` appends (a trailing piece stays open for the next write)."""

    COMPONENT_CLASSES = {f"stream-view--{kind}" for kind in LINE_KINDS} | {
        "stream-view--match", "stream-view--match-current"}
    DEFAULT_CSS = """
    StreamView > .stream-view--match { background: $warning 40%; }
    StreamView > .stream-view--match-current { background: $warning; color: $text; }
    StreamView { overflow-x: hidden; overflow-y: auto; }
    StreamView > .stream-view--tool { color: $text-muted; }
    StreamView > .stream-view--waiting { color: $text-warning; text-style: bold; }
    StreamView > .stream-view--error { color: $text-error; }
    StreamView > .stream-view--note { color: $text-accent; }
    """

    def __init__(self, max_lines: int, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: list[str] = []
        """Every kept line; the last one is still open (may be "")."""
        self.dropped = 0
        """Lines pruned from the front: `lines[i]` is line number `dropped + i`."""
        self.kinds: dict[int, str] = {}
        """Line number -> kind, for tagged lines (`LINE_KINDS`, except "mark": unstyled)."""
        self.auto_scroll = True
        self.pattern: re.Pattern[str] | None = None
        """What a search highlights (`search`)."""
        self.current: tuple[int, int] | None = None
        """The match the search is at: (line number, column)."""

    @property
    def line_count(self) -> int:
        if self.lines:
            return len(self.lines) - (self.lines[-1] == "")
        return 0

    @property
    def end(self) -> tuple[int, int]:
        """Where the next write goes: (line number, column)."""
        if not self.lines:
            return self.dropped, 0
        return self.dropped + len(self.lines) - 1, len(self.lines[-1])

    def write(self, text: str, scroll_end: bool | None = None, kind: str | None = None) -> None:
        """Append `text` (no control characters; "\n" ends a line). Lines that receive text
        from it are tagged `kind`, if given."""
        if not text:
            return
        lines = self.lines
        parts = text.split("\n")
        first = self.dropped + max(0, len(lines) - 1)
        if lines:
            lines[-1] += parts[0]
            lines.extend(parts[1:])
        else:
            lines.extend(parts)
        if kind is not None and kind != "mark":
            for offset, part in enumerate(parts):
                if part:
                    self.kinds[first + offset] = kind
        if len(lines) > self.max_lines:
            cut = len(lines) - self.max_lines
            del lines[:cut]
            self.dropped += cut
            if len(self.kinds) > self.max_lines:
                self.kinds = {n: k for n, k in self.kinds.items() if n >= self.dropped}
        self._grow(Size(self.scrollable_content_region.width, len(lines)))
        self.refresh()
        if self.auto_scroll if scroll_end is None else scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def truncate(self, line: int, column: int) -> bool:
        """Drop everything from (`line`, `column`) on; False (nothing done) when that line
        was already pruned."""
        index = line - self.dropped
        if index < 0 or index >= len(self.lines):
            return False
        del self.lines[index + 1:]
        self.lines[index] = self.lines[index][:column]
        self.kinds = {n: k for n, k in self.kinds.items()
                      if n < line or (n == line and column)}
        self._grow(Size(self.scrollable_content_region.width, len(self.lines)))
        self.refresh()
        return True

    def clear(self) -> None:
        self.lines = []
        self.dropped = 0
        self.kinds = {}
        self.virtual_size = Size(0, 0)
        self.refresh()

    def search(self, pattern: re.Pattern[str] | None) -> list[tuple[int, int]]:
        """Highlight `pattern` (None: stop) and return its matches, (line number, column),
        in order. A match that a wrap cut across two lines is not found."""
        self.pattern, self.current = pattern, None
        self.refresh()
        if pattern is None:
            return []
        return [(self.dropped + index, found.start())
                for index, line in enumerate(self.lines) if line
                for found in pattern.finditer(line) if found.end() > found.start()]

    def show_match(self, match: tuple[int, int]) -> bool:
        """Scroll to a match (line number, column) and mark it current; False when it was
        pruned from the view meanwhile."""
        index = match[0] - self.dropped
        if not 0 <= index < len(self.lines):
            return False
        self.current = match
        height = self.scrollable_content_region.height
        if not self.scroll_offset.y <= index < self.scroll_offset.y + height:
            self.scroll_to(y=max(0, index - height // 3), animate=False, immediate=True)
        self.refresh()
        return True

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The selected text (a mouse selection), as the lines show it."""
        return selection.extract("\n".join(self.lines)), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
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
        kind = self.kinds.get(self.dropped + index)
        line_style = style + self.get_component_rich_style(f"stream-view--{kind}",
                                                           partial=True) if kind else style
        spans = self._spans(index, text)
        if not spans:
            segments = [Segment(text, line_style)]
        else:
            segments, at = [], 0
            for start, end, span_style in spans:
                if start > at:
                    segments.append(Segment(text[at:start], line_style))
                segments.append(Segment(text[start:end], line_style + span_style))
                at = end
            if at < len(text):
                segments.append(Segment(text[at:], line_style))
        strip = Strip(segments).adjust_cell_length(width, style)
        return strip.apply_offsets(0, index)

    def _spans(self, index: int, text: str) -> list[tuple[int, int, Style]]:
        """Highlighted stretches of line `index`, in order, not overlapping: a selection, or
        else the search's matches."""
        selection = self.text_selection
        if selection is not None and (span := selection.get_span(index)) is not None:
            start, end = span
            end = len(text) if end == -1 else min(end, len(text))
            if start < end:
                return [(start, end, self.screen.get_component_rich_style("screen--selection"))]
        if self.pattern is None or not text:
            return []
        spans = []
        for found in self.pattern.finditer(text):
            if found.end() > found.start():
                current = self.current == (self.dropped + index, found.start())
                name = "stream-view--match-current" if current else "stream-view--match"
                spans.append((found.start(), found.end(),
                              self.get_component_rich_style(name, partial=True)))
        return spans
