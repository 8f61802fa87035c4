"""One agent's pane: a header with its status, live counts, thinking, and the streamed reply.

The pane shows state; it never changes it. The bridge hands it new text once per frame, and the
screen hands it the agent's folded state. Model text is untrusted: it is sanitised of control
sequences and written to a `StreamView`, which renders plain text, never Rich markup.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from cockpit.core.describe import host_name
from cockpit.core.state import AgentState, AgentStatus
from cockpit.core.text import one_line, sanitize
from cockpit.ui.widgets.stream_view import StreamView

HEADER_HOST = 32
"""How much of a host the status word shows (`waiting for Ollama at HOST`)."""
BODY_LINES = 2000
"""The in-memory window of a pane; the full reply is always in the log."""
WINDOW_CHARS = 200_000
"""Text kept to re-wrap the window when the pane is resized."""


def wrap_chunk(text: str, column: int, width: int) -> tuple[str, int]:
    """Insert line breaks into `text`, written at `column`, so no line exceeds `width`.

    Breaks after the last space that fits when there is one, else mid-word. Returns the text to
    write and the column after it. Text already written is never moved, so callers pass whole
    words: the result is then the same however the text was split into chunks.
    """
    if width <= 0:
        return text, column
    out: list[str] = []
    for piece, ending in _lines(text):
        while column + len(piece) > width:
            room = width - column
            cut = piece.rfind(" ", 0, room + 1)
            if cut > 0:  # break after the last space that fits (the space stays, as it
                out.append(piece[:cut + 1] + "\n")  # does when a line ends at a chunk edge)
                piece = piece[cut + 1:]
            elif cut == 0 or column > 0:  # nothing fits here: start a new line
                out.append("\n")
                piece = piece[1:] if cut == 0 else piece
            else:  # one word wider than the pane
                out.append(piece[:width] + "\n")
                piece = piece[width:]
            column = 0
        out.append(piece)
        column += len(piece)
        if ending:
            out.append("\n")
            column = 0
    return "".join(out), column


def _plain(text: str) -> str:
    """Untrusted text as the body shows it: no control sequences, tabs as spaces (a tab has
    no width of its own in a strip, and the wrapping counts characters)."""
    return sanitize(text).replace("\t", "    ")


def _lines(text: str) -> list[tuple[str, bool]]:
    parts = text.split("\n")
    return [(part, index < len(parts) - 1) for index, part in enumerate(parts)]


def format_counts(agent: AgentState, now: float) -> str:
    """`412 tok · 38.5 tok/s · 0:11`: live while running, Ollama's rate once finished."""
    parts = [f"{agent.tokens} tok"]
    rate = agent.tokens_per_second if agent.status.ended else None
    if rate is None and agent.first_token_at is not None:
        span = (agent.ended_at or now) - agent.first_token_at
        rate = agent.tokens / span if span > 0.5 else None
    parts.append(f"{rate:.1f} tok/s" if rate is not None else "– tok/s")
    if agent.started_at is not None:
        seconds = int(max(0.0, (agent.ended_at or now) - agent.started_at))
        parts.append(f"{seconds // 60}:{seconds % 60:02d}")
    if agent.retries:
        parts.append(f"{agent.retries} retries")
    if agent.stalls:
        parts.append(f"{agent.stalls} stalls")
    waited = agent.waited
    if agent.waiting_since is not None and agent.status is AgentStatus.WAITING_HOST:
        waited += max(0.0, now - agent.waiting_since)
    if waited >= 1:
        seconds = int(waited)
        parts.append(f"waited {seconds // 60}:{seconds % 60:02d} for Ollama")
    if agent.status is AgentStatus.PAUSED and agent.paused_by not in (None, "person"):
        parts.append("paused: event log not writable" if agent.paused_by == "log"
                     else f"paused by {agent.paused_by}")
    return " · ".join(parts)


def status_word(agent: AgentState) -> str:
    """The header's status: the status itself, and for a host wait, the host waited for."""
    if agent.status is AgentStatus.WAITING_HOST:
        return f"{agent.status} at {host_name(agent.host, HEADER_HOST)}"
    return str(agent.status)


class AgentPane(Vertical, can_focus=True):
    """A live view of one agent."""

    DEFAULT_CSS = """
    AgentPane { border: round $panel; height: 1fr; min-height: 8; }
    AgentPane:focus, AgentPane:focus-within { border: round $accent; }
    AgentPane.-flash { border: heavy $warning; }
    AgentPane > .agent-pane--header { height: 1; padding: 0 1; background: $boost; }
    AgentPane > .agent-pane--counts { height: 1; padding: 0 1; color: $text-muted; }
    AgentPane > #thinking { height: auto; max-height: 6; color: $text-muted; display: none; }
    AgentPane.-show-thinking > #thinking { display: block; }
    AgentPane > #body { height: 1fr; }
    AgentPane > StreamView { background: $surface; overflow-x: hidden; padding-left: 1;
                             scrollbar-size-vertical: 1; scrollbar-background: $surface; }
    """

    follow: reactive[bool] = reactive(True)
    """Keep the reply scrolled to its end; scrolling up breaks it, `end` restores it."""

    def __init__(self, agent: AgentState, number: int) -> None:
        super().__init__(id=f"pane-{agent.name}")
        self.agent_name = agent.name
        self.number = number
        self._column = 0
        self._pending = ""
        """The end of the reply after its last space: written once the word is complete."""
        self._window: list[str] = []
        self._window_chars = 0
        self._thinking_column = 0

        self.header = Static(classes="agent-pane--header", id="header")
        self.counts = Static(classes="agent-pane--counts", id="counts")
        self.thinking = StreamView(200, id="thinking")
        self.body = StreamView(BODY_LINES, id="body")

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.counts
        yield self.thinking
        yield self.body

    # -- what the screen calls --------------------------------------------------------------

    def show_state(self, agent: AgentState, now: float) -> None:
        """Header and counts from the agent's folded state."""
        status = str(agent.status)
        if self._pending and agent.status not in (AgentStatus.STREAMING, AgentStatus.THINKING):
            self.flush_pending()
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append(f"{self.number} ", style="dim")
        header.append(agent.name, style="bold")
        header.append(" · ", style="dim")
        where = one_line(agent.model, 60)
        if agent.status is not AgentStatus.WAITING_HOST:  # else the status names the host
            where += f" @ {one_line(agent.host, 80)}"
        header.append(where, style="dim")
        header.append(" · ", style="dim")
        header.append(f" {status_word(agent)} ", style=STATUS_STYLES.get(status, "reverse"))
        self.header.update(header, layout=False)  # one fixed line: no reflow
        counts = format_counts(agent, now)
        if agent.thinking_parts and not self.has_class("-show-thinking"):
            counts += " · thinking hidden (t)"
        if not self.follow:
            counts += " · scrolled (end to follow)"
        self.counts.update(Text(counts, no_wrap=True), layout=False)

    def write_segments(self, segments: list[tuple[str, str]]) -> None:
        """A frame's new content in order: ("text" | "thinking" | "mark", string)."""
        text: list[str] = []
        for kind, value in segments:
            if kind == "text":
                text.append(value)
                continue
            self.append("".join(text))
            text = []
            if kind == "thinking":
                self.append_thinking(value)
            else:
                self.mark(value)
        self.append("".join(text))

    def append(self, text: str) -> None:
        """New reply text. A trailing partial word waits for its end (see `wrap_chunk`)."""
        if not text:
            return
        clean = _plain(text)
        self._remember(clean)
        combined = self._pending + clean
        end = max(combined.rfind(" "), combined.rfind("\n")) + 1
        self._pending = combined[end:]
        self._write(combined[:end])

    def flush_pending(self) -> None:
        """Show a held-back partial word: the stream has stopped for now."""
        pending, self._pending = self._pending, ""
        self._write(pending)

    def _write(self, text: str) -> None:
        if text:
            wrapped, self._column = wrap_chunk(text, self._column, self._width(self.body))
            self.body.write(wrapped, scroll_end=self.follow)

    def append_thinking(self, thinking: str) -> None:
        log = self.thinking
        wrapped, self._thinking_column = wrap_chunk(_plain(thinking), self._thinking_column,
                                                    self._width(log))
        log.write(wrapped, scroll_end=True)

    def mark(self, line: str) -> None:
        """A line between replies: an intervention, a retry, a stall."""
        self.flush_pending()
        line = one_line(line, 1000)  # error texts come from the host: untrusted too
        self._write(("\n" if self._column else "") + "── " + line + " ──\n")

    def restart(self) -> None:
        """The agent starts over (restart): clear the reply."""
        self.body.clear()
        self.thinking.clear()
        self._column = self._thinking_column = 0
        self._pending = ""
        self._window, self._window_chars = [], 0

    def toggle_thinking(self) -> None:
        self.toggle_class("-show-thinking")

    def follow_tail(self) -> None:
        self.follow = True
        self.body.scroll_end(animate=False)

    # -- internals ---------------------------------------------------------------------------

    def _remember(self, text: str) -> None:
        self._window.append(text)
        self._window_chars += len(text)
        if self._window_chars > 2 * WINDOW_CHARS:
            joined = "".join(self._window)[-WINDOW_CHARS:]
            self._window, self._window_chars = [joined], len(joined)

    @staticmethod
    def _width(log: StreamView) -> int:
        return max(0, log.scrollable_content_region.width - 1)

    def on_resize(self) -> None:
        """Re-wrap the kept window of text to the new width."""
        if not self._window:
            return
        text = "".join(self._window)
        end = max(text.rfind(" "), text.rfind("\n")) + 1 if self._pending else len(text)
        self.body.clear()
        self._column = 0
        self._write(text[:end])

    def on_mouse_scroll_up(self) -> None:
        self.follow = False

    def watch_follow(self, follow: bool) -> None:
        self.body.auto_scroll = follow


STATUS_STYLES = {
    "waiting": "black on grey50",
    "queued": "black on grey70",
    "streaming": "black on green3",
    "thinking": "black on medium_purple1",
    "paused": "black on yellow3",
    "waiting for Ollama": "black on magenta",
    "retrying": "black on dark_orange",
    "stalled": "black on orange_red1",
    "finished": "black on steel_blue1",
    "failed": "white on red3",
    "stopped": "white on grey35",
}
"""Each status its own colour; the word itself is always shown, so colour is never alone."""
