"""What a pane's body shows, in the order it happened: reply text, and lines between it (an
intervention, a tool call, a message, a check).

The flow keeps its pieces (within `WINDOW_CHARS`) and writes them, wrapped, to a `StreamView`.
Text is written as it streams; a line that changes later (a tool call's result arrives, its
approval is decided) is rewritten in place by truncating the view where the piece began and
writing the pieces from there again. A call is nearly always the last piece, so that costs one
line; a resize or a toggle of the details rewrites the whole window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rich.cells import cell_len, get_character_cell_size

from cockpit.core import events as ev
from cockpit.core.text import one_line, sanitize
from cockpit.ui.calls import CallView
from cockpit.ui.widgets.stream_view import StreamView

WINDOW_CHARS = 200_000
"""Text kept to re-wrap the window when the pane is resized."""
NOTE_CHARS = 300
"""A message or a note is cut to this many characters unless details are shown."""
CallEvent = ev.ToolCalled | ev.ToolResult | ev.ApprovalRequested | ev.ApprovalDecided


def cells(text: str) -> int:
    """The terminal cells `text` takes: a CJK character or an emoji takes two."""
    return len(text) if text.isascii() else cell_len(text)


def _fitting(text: str, room: int) -> int:
    """How many characters of `text`, from its start, fit in `room` cells."""
    if text.isascii():
        return min(len(text), room)
    used = 0
    for index, char in enumerate(text):
        used += get_character_cell_size(char)
        if used > room:
            return index
    return len(text)


def _wide(char: str) -> bool:
    return not char.isascii() and get_character_cell_size(char) == 2


def _wide_break(text: str, fit: int) -> int:
    """The last place in `text[:fit]` a line may break beside a wide character (CJK text has
    no spaces: a break may come before or after any of its characters); 0 if none."""
    if text.isascii():
        return 0
    for index in range(min(fit, len(text) - 1), 0, -1):
        if _wide(text[index - 1]) or _wide(text[index]):
            return index
    return 0


def held_back(text: str) -> int:
    """Where the trailing partial word of streamed `text` begins: what follows the last space,
    line break or wide character waits for the rest of its word (see `wrap_chunk`)."""
    index = len(text)
    while index > 0 and text[index - 1] not in " \n" and not _wide(text[index - 1]):
        index -= 1
    return index


def wrap_chunk(text: str, column: int, width: int) -> tuple[str, int]:
    """Insert line breaks into `text`, written at `column`, so no line exceeds `width` cells.

    Breaks after the last space that fits, or beside a wide character, when there is one, else
    mid-word. Returns the text to write and the column (in cells) after it. Text already
    written is never moved, so callers pass whole words (`held_back`): the result is then the
    same however the text was split into chunks. Widths are terminal cells, not characters, so
    a wide character (CJK, emoji) is never cut in half.
    """
    if width <= 0:
        return text, column
    out: list[str] = []
    for piece, ending in _lines(text):
        while column + cells(piece) > width:
            fit = _fitting(piece, width - column)
            cut = piece.rfind(" ", 0, fit + 1)
            at = max(cut + 1 if cut > 0 else 0, _wide_break(piece, fit))
            if at > 0:  # after the last space that fits (the space stays, as it does when
                out.append(piece[:at] + "\n")  # a line ends at a chunk edge), or by CJK
                piece = piece[at:]
            elif cut == 0 or column > 0:  # nothing fits here: start a new line
                out.append("\n")
                piece = piece[1:] if cut == 0 else piece
            else:  # one word wider than the pane (a wide character is never split)
                fit = max(1, fit)
                out.append(piece[:fit] + "\n")
                piece = piece[fit:]
            column = 0
        out.append(piece)
        column += cells(piece)
        if ending:
            out.append("\n")
            column = 0
    return "".join(out), column


def plain(text: str) -> str:
    """Untrusted text as the body shows it: no control sequences, tabs as spaces (a tab has
    no width of its own in a strip, and the wrapping counts cells)."""
    return sanitize(text).replace("\t", "    ")


def hanging(text: str, width: int) -> str:
    """Lines wrapped to `width`, each continuation indented as far as its line (JSON stays
    readable when a long string wraps)."""
    out: list[str] = []
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip(" "))  # spaces: one cell each
        if width <= 0 or width - indent < 20:
            out.append(line)
            continue
        wrapped, _ = wrap_chunk(line[indent:], 0, width - indent)
        out += [" " * indent + part for part in wrapped.split("\n")]
    return "\n".join(out) + "\n"


def _lines(text: str) -> list[tuple[str, bool]]:
    parts = text.split("\n")
    return [(part, index < len(parts) - 1) for index, part in enumerate(parts)]


@dataclass(eq=False)
class _Piece:
    start: tuple[int, int] = (0, 0)
    """Where in the view its output begins (line number, column)."""


@dataclass(eq=False)
class _Text(_Piece):
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


@dataclass(eq=False)
class _Line(_Piece):
    text: str = ""
    kind: str = "mark"
    full: str = ""
    """The whole text, shown with the details (a long message)."""


@dataclass(eq=False)
class _Call(_Piece):
    call: CallView = field(default_factory=lambda: CallView("", "", {}))


def _size(piece: _Piece) -> int:
    """What a piece costs the window, in characters (a call: about a line, and its result)."""
    if isinstance(piece, _Text):
        return len(piece.text)
    if isinstance(piece, _Line):
        return len(piece.full)
    assert isinstance(piece, _Call)
    return 80 + len(piece.call.content or "")


class PaneFlow:
    """The body of one pane."""

    def __init__(self, view: StreamView, width: Callable[[], int]) -> None:
        self.view = view
        self.width = width
        """The columns a line may use (the view's width, known after layout)."""
        self.follow = True
        self.details = False
        """Tool calls show their arguments and result; messages are shown whole."""
        self.calls: dict[str, _Call] = {}
        self._pieces: list[_Piece] = []
        self._chars = 0
        self._column = 0
        self._pending = ""
        """The end of the reply after its last space: written once the word is complete.
        Always the tail of the last piece, which is then text."""

    # -- what the pane calls -------------------------------------------------------------------

    def append(self, text: str) -> None:
        """New reply text. A trailing partial word waits for its end (see `wrap_chunk`)."""
        if not text:
            return
        clean = plain(text)
        last = self._pieces[-1] if self._pieces else None
        if not isinstance(last, _Text):
            last = _Text(start=self.view.end)
            self._add(last)
        last.parts.append(clean)
        self._remember(len(clean))
        combined = self._pending + clean
        end = held_back(combined)
        self._pending = combined[end:]
        self._write(combined[:end])

    def flush_pending(self) -> None:
        """Show a held-back partial word: the stream has stopped for now."""
        pending, self._pending = self._pending, ""
        self._write(pending)

    def line(self, text: str, kind: str = "mark") -> None:
        """A line of its own between reply text: `mark` lines are framed (`── … ──`)."""
        full = one_line(text, 100_000)  # host and model texts are untrusted too
        shown = full if kind == "mark" else one_line(full, NOTE_CHARS)
        self._new(_Line(text=shown, kind=kind, full=full))

    def call_event(self, event: CallEvent) -> None:
        """A call asked for approval, was decided, ran or returned: its one line changes."""
        piece = self.calls.get(event.call_id)
        if piece is None:
            piece = _Call(call=CallView.of(event))
            self.calls[event.call_id] = piece
            self._new(piece)
            return
        before = _size(piece)
        piece.call.apply(event)
        self._rewrite_from(piece)
        self._remember(_size(piece) - before)  # its result came

    def running_call(self) -> CallView | None:
        """The call the flow ends with, if it is still running."""
        last = self._pieces[-1] if self._pieces else None
        return last.call if isinstance(last, _Call) and last.call.state == "running" else None

    def clear(self) -> None:
        self.view.clear()
        self.calls = {}
        self._pieces = []
        self._chars = self._column = 0
        self._pending = ""

    def rewrite(self) -> None:
        """Write the whole window again (a new width, details shown or hidden)."""
        if not self._pieces:
            return
        self.view.clear()
        self._column = 0
        self._replay(self._pieces)

    # -- internals -----------------------------------------------------------------------------

    def _add(self, piece: _Piece) -> None:
        self._pieces.append(piece)

    def _new(self, piece: _Line | _Call) -> None:
        self.flush_pending()
        self._add(piece)
        self._remember(_size(piece))
        self._emit(piece)

    def _write(self, text: str, kind: str | None = None) -> None:
        if text:
            wrapped, self._column = wrap_chunk(text, self._column, self.width())
            self.view.write(wrapped, scroll_end=self.follow, kind=kind)

    def _emit(self, piece: _Piece) -> None:
        """Write a line piece (a text piece is written by `append` or `_replay`)."""
        piece.start = self.view.end
        if self._column:
            self._write("\n")
        if isinstance(piece, _Line):
            text = piece.full if self.details else piece.text
            self._write(f"── {text} ──\n" if piece.kind == "mark" else text + "\n", piece.kind)
        elif isinstance(piece, _Call):
            call = piece.call
            self._write(call.line(self.width()) + "\n", call.kind)
            if self.details:
                self._write(hanging(call.details(), self.width()), "tool")

    def _rewrite_from(self, piece: _Piece) -> None:
        index = next(i for i in range(len(self._pieces) - 1, -1, -1)
                     if self._pieces[i] is piece)
        line, column = piece.start
        if not self.view.truncate(line, column):  # scrolled out of the kept lines
            self.rewrite()
            return
        self._column = column
        self._replay(self._pieces[index:])

    def _replay(self, pieces: list[_Piece]) -> None:
        for index, piece in enumerate(pieces):
            if not isinstance(piece, _Text):
                self._emit(piece)
                continue
            piece.start = self.view.end
            text = piece.text
            if index == len(pieces) - 1 and self._pending:
                text = text[:len(text) - len(self._pending)]
            self._write(text)

    def _remember(self, chars: int) -> None:
        """Keep the window within bounds: drop the oldest pieces (the view keeps its lines)."""
        self._chars += chars
        if self._chars <= 2 * WINDOW_CHARS:
            return
        pieces = self._pieces
        while self._chars > WINDOW_CHARS and len(pieces) > 1:
            first = pieces[0]
            size = _size(first)
            if isinstance(first, _Text) and size > self._chars - WINDOW_CHARS:
                cut = size - (self._chars - WINDOW_CHARS)
                first.parts[:] = [first.text[-cut:]]
                self._chars -= size - cut
                break
            pieces.pop(0)
            self._chars -= size
            if isinstance(first, _Call):
                self.calls.pop(first.call.call_id, None)
