"""One agent's pane: a header with its status, live counts, thinking, and the streamed reply.

The pane shows state; it never changes it. The bridge hands it new text and events once per
frame, and the screen hands it the agent's folded state. Model text, tool arguments and results
are untrusted: they are sanitised of control sequences and written to a `StreamView`, which
renders plain text, never Rich markup.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from cockpit.core import events as ev
from cockpit.core.describe import call_line, describe, host_name, intervention, status_text
from cockpit.core.state import AgentState, AgentStatus, PendingApproval, message_text
from cockpit.core.text import one_line
from cockpit.ui.aliases import ALIAS_WIDTH
from cockpit.ui.widgets.markdown_view import MarkdownView
from cockpit.ui.widgets.pane_flow import PaneFlow, plain, wrap_chunk
from cockpit.ui.widgets.stream_view import StreamView

HEADER_HOST = 32
"""How much of a host the header shows while the agent waits for it."""
BADGE_WIDTH = 12
"""Cells of the status badge: every common status fits, so the names line up across panes
(the long ones, `waiting for Ollama`, `awaiting approval`, take what they need)."""
BODY_LINES = 2000
"""The in-memory window of a pane; the full reply is always in the log."""
Segment = tuple[str, str | ev.BaseEvent]
"""A frame's content for a pane, in order: ("text" | "thinking", str) or ("event", event)."""
RECEIVED = re.compile(re.escape(message_text("SENDER", "TEXT")).replace("SENDER", "([a-z0-9_-]+)")
                      .replace("TEXT", "(.*)"), re.DOTALL)
"""A crewmate's message as the agent reads it (`message_text`): sender and text."""
CALL_EVENTS = (ev.ToolCalled, ev.ToolResult, ev.ApprovalRequested, ev.ApprovalDecided)


def format_counts(agent: AgentState, now: float) -> str:
    """`412 tok · 38.5 tok/s · 0:11`: live while running, Ollama's rate once finished.
    Paused, queued and crashed time count in neither (the fold's clocks)."""
    parts = [f"{agent.tokens} tok"]
    rate = agent.rate(now)
    parts.append(f"{rate:.1f} tok/s" if rate is not None else "– tok/s")
    if agent.started_at is not None:
        seconds = int(agent.elapsed(now))
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
    """The header's status word."""
    return status_text(agent)



class AgentPane(Vertical, can_focus=True):
    """A live view of one agent."""

    DEFAULT_CSS = """
    AgentPane { border: round $panel; height: 1fr; min-height: 8; }
    AgentPane.-awaiting { border: round $warning; }
    AgentPane:focus, AgentPane:focus-within { border: round $accent; }
    AgentPane.-flash { border: heavy $warning; }
    AgentPane > .agent-pane--header { height: 1; padding: 0 1; background: $boost; }
    AgentPane > .agent-pane--counts { height: 1; padding: 0 1; color: $text-muted; }
    AgentPane > #waiting { height: 1; padding: 0 1; display: none; color: $text-warning;
                           background: $warning-muted; text-style: bold; }
    AgentPane.-awaiting > #waiting { display: block; }
    AgentPane > #thinking { height: auto; max-height: 6; color: $text-muted; display: none; }
    AgentPane.-show-thinking > #thinking { display: block; }
    AgentPane > #body { height: 1fr; }
    AgentPane.-markdown > #body { display: none; }
    AgentPane > StreamView { background: $surface; overflow-x: hidden; padding-left: 1;
                             scrollbar-size-vertical: 1; scrollbar-background: $surface; }
    """

    follow: reactive[bool] = reactive(True)
    """Keep the reply scrolled to its end; scrolling up breaks it, `end` restores it."""

    def __init__(self, agent: AgentState, number: int) -> None:
        super().__init__(id=f"pane-{agent.name}")
        self.agent_name = agent.name
        self.number = number
        self._thinking_column = 0
        self._waiting: list[PendingApproval] = []
        self._shown_state: tuple[AgentState, float] | None = None
        self.keys = {"approvals": "a", "tool_details": "c", "thinking": "t"}
        """How the hints the pane shows name their keys (the screen sets the mapped ones)."""
        self.host_aliases: dict[str, str] = {}
        """Short names of the crew's hosts (none with one host: it is not shown)."""
        self.markdown_view: MarkdownView | None = None
        """The finished reply rendered as Markdown, made the first time `m` asks for it."""

        self.header = Static(classes="agent-pane--header", id="header")
        self.counts = Static(classes="agent-pane--counts", id="counts")
        self.waiting = Static(id="waiting")
        self.thinking = StreamView(200, id="thinking")
        self.body = StreamView(BODY_LINES, id="body")
        self.flow = PaneFlow(self.body, lambda: self._width(self.body))

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.counts
        yield self.waiting
        yield self.thinking
        yield self.body

    # -- what the screen calls --------------------------------------------------------------

    def show_state(self, agent: AgentState, now: float) -> None:
        """Header and counts from the agent's folded state."""
        self._shown_state = (agent, now)
        if agent.status not in (AgentStatus.STREAMING, AgentStatus.THINKING):
            self.flow.flush_pending()
        self.header.update(self._header(agent), layout=False)  # one fixed line: no reflow
        counts = self._counts(agent, now, short=False)
        if len(counts) > self.content_region.width - 2 > 0:
            counts = self._counts(agent, now, short=True)
        self.counts.update(Text(counts, no_wrap=True, overflow="ellipsis"), layout=False)
        if self.markdown_view is not None:
            self.markdown_view.show(agent)

    def _header(self, agent: AgentState) -> Text:
        """`[streaming ] 1 planner · llama3.2 @ gpu1`: the status first, in a badge of fixed
        width, so it is the last thing a narrow pane cuts; then the name; then what fits."""
        word = status_word(agent)
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append(f" {word} ".ljust(BADGE_WIDTH),
                      style=STATUS_STYLES.get(str(agent.status), "reverse"))
        header.append(f" {self.number} ", style="dim")
        header.append(agent.name, style="bold")
        if agent.status is AgentStatus.WAITING_HOST:  # which host is down matters most
            where = f"at {host_name(agent.host, HEADER_HOST)}"
        else:
            where = one_line(agent.model, 60)
            alias = self.host_aliases.get(agent.host)
            if alias is None:  # not one of the crew's hosts
                alias = host_name(agent.host, ALIAS_WIDTH)
            if alias:
                where += f" @ {alias}"
        room = self.content_region.width - 2 - header.cell_len - 3
        if self.content_region.width and room < cell_len(where):
            where = one_line(where, room) if room >= 6 else ""
        if where:
            header.append(f" · {where}", style="dim")
        return header

    def _counts(self, agent: AgentState, now: float, short: bool) -> str:
        counts = format_counts(agent, now)
        if agent.tool_calls:
            calls = f"{agent.tool_calls} {'call' if short else 'tool call'}" + \
                ("s" if agent.tool_calls > 1 else "")
            key = self.keys["tool_details"]
            hint = "" if self.flow.details else f" ({key})" if short else f" ({key} details)"
            counts += f" · {calls}{hint}"
        if agent.thinking_parts and not self.has_class("-show-thinking"):
            counts += f" · thinking ({self.keys['thinking']})" if short else \
                f" · thinking hidden ({self.keys['thinking']})"
        if not self.follow:
            counts += " · scrolled (end)" if short else " · scrolled (end to follow)"
        return counts

    def show_approvals(self, pending: list[PendingApproval]) -> None:
        """The calls of this agent that wait for a decision (oldest first), on a line of
        their own above the reply: it stays in view however the reply is scrolled."""
        self._waiting = pending
        self.set_class(bool(pending), "-awaiting")
        if not pending:
            self.waiting.update("")
            return
        first = pending[0]
        more = f" (+{len(pending) - 1} more)" if len(pending) > 1 else ""
        press = f" — press {self.keys['approvals']}"
        tool = one_line(first.tool, 40)
        width = self.content_region.width - 2  # the line's padding
        room = width - len("⏸ waits for approval: ") - len(more) - len(press) if width > 0 \
            else 80
        # The key to press always shows: in a narrow pane the call gives way first.
        for text in (f"⏸ waits for approval: {call_line(first.tool, first.arguments, room)}"
                     f"{more}{press}" if room >= 16 else "",
                     f"⏸ {tool} waits for approval{more}{press}",
                     f"⏸ {tool}{more}{press}", f"⏸ approval{press}"):
            if text and (width <= 0 or len(text) <= width):
                break
        self.waiting.update(Text(text, no_wrap=True, overflow="ellipsis"), layout=False)

    def write_segments(self, segments: list[Segment]) -> None:
        """A frame's new content in order."""
        text: list[str] = []
        for kind, value in segments:
            if kind == "text" and isinstance(value, str):
                text.append(value)
                continue
            self.append("".join(text))
            text = []
            if isinstance(value, str):
                self.append_thinking(value)
            else:
                self.show_event(value)
        self.append("".join(text))

    def show_event(self, event: ev.BaseEvent) -> None:
        """An event's line in the reply's flow, if it has one: tool calls (one line each,
        updated as they run), messages, checks, interventions."""
        flow = self.flow
        if isinstance(event, CALL_EVENTS):
            flow.call_event(event)
        elif isinstance(event, ev.MessageSent):
            if event.from_ != self.agent_name:
                flow.line(f"✉ from {event.from_}: {event.text}", "note")
            elif (call := flow.running_call()) is None or call.tool != "send_message":
                flow.line(f"✉ to {event.to}: {event.text}", "note")  # else its call's line says
        elif isinstance(event, ev.AgentStarted):  # messages that waited are in the opening
            for message in event.messages:
                found = RECEIVED.fullmatch(str(message.get("content", "")))
                if message.get("role") == "user" and found:
                    flow.line(f"✉ from {found[1]}: {found[2]}", "note")
        elif isinstance(event, ev.OutputChecked):
            flow.line(("☑ " if event.passed else "☒ ") + describe(event),
                      "note" if event.passed else "error")
        elif event.marker == "message":
            flow.line("✉ " + describe(event), "note")
        elif (line := intervention(event)) is not None:
            flow.line(line)

    def append(self, text: str) -> None:
        """New reply text. A trailing partial word waits for its end."""
        self.flow.append(text)

    def flush_pending(self) -> None:
        """Show a held-back partial word: the stream has stopped for now."""
        self.flow.flush_pending()

    def append_thinking(self, thinking: str) -> None:
        log = self.thinking
        wrapped, self._thinking_column = wrap_chunk(plain(thinking), self._thinking_column,
                                                    self._width(log))
        log.write(wrapped, scroll_end=True)

    def mark(self, line: str) -> None:
        """A line between replies: an intervention, a retry, a stall."""
        self.flow.line(line)

    def restart(self) -> None:
        """The agent starts over (restart): clear the reply."""
        self.flow.clear()
        self.thinking.clear()
        self._thinking_column = 0

    def toggle_thinking(self) -> None:
        self.toggle_class("-show-thinking")

    def toggle_details(self) -> None:
        """Show tool calls' arguments and results (and whole messages), or one line each."""
        self.flow.details = not self.flow.details
        self.flow.rewrite()

    def follow_tail(self) -> None:
        self.follow = True
        self.body.scroll_end(animate=False)

    # -- reading -------------------------------------------------------------------------------

    @property
    def reading(self) -> StreamView | VerticalScroll:
        """What the reading keys scroll: the Markdown view when it shows, else the reply."""
        view = self.markdown_view
        return view if view is not None and view.shown else self.body

    def scroll_lines(self, lines: int) -> None:
        """Scroll the reply (`j`/`k`); scrolling up stops following the end."""
        target = self.reading
        if lines < 0 and target is self.body:
            self.follow = False
        target.scroll_relative(y=lines, animate=False, immediate=True)

    def scroll_pages(self, pages: int) -> None:
        target = self.reading
        self.scroll_lines(pages * max(1, target.scrollable_content_region.height - 1))

    def scroll_to_start(self) -> None:
        """`g`: the reply's first kept line."""
        if self.reading is self.body:
            self.follow = False
        self.reading.scroll_home(animate=False, immediate=True)

    def scroll_to_end(self) -> None:
        """`G`: the end, following new text again."""
        if self.reading is self.body:
            self.follow_tail()
        else:
            self.reading.scroll_end(animate=False, immediate=True)

    def search(self, pattern: re.Pattern[str] | None) -> list[tuple[int, int]]:
        """Highlight `pattern` in the reply (shown plain: Markdown has no lines to point at)."""
        if self.markdown_view is not None:
            self.markdown_view.wanted = False
            self.markdown_view.show(None)
        return self.body.search(pattern)

    def show_match(self, match: tuple[int, int]) -> bool:
        self.follow = False
        return self.body.show_match(match)

    def toggle_markdown(self, agent: AgentState) -> bool:
        """`m`: the finished reply as Markdown, or the plain view; True when it is wanted."""
        if self.markdown_view is None:
            self.markdown_view = MarkdownView()
            self.mount(self.markdown_view, after=self.body)
        self.markdown_view.wanted = not self.markdown_view.wanted
        self.markdown_view.show(agent)
        return self.markdown_view.wanted

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _width(log: StreamView) -> int:
        return max(0, log.scrollable_content_region.width - 1)

    def on_resize(self) -> None:
        """Re-wrap the kept window to the new width."""
        self.flow.rewrite()
        if self._shown_state is not None:
            self.show_state(*self._shown_state)
        if self._waiting:
            self.show_approvals(self._waiting)

    def on_mouse_scroll_up(self) -> None:
        self.follow = False

    def watch_follow(self, follow: bool) -> None:
        self.body.auto_scroll = follow
        self.flow.follow = follow


STATUS_STYLES = {
    "waiting": "black on grey50",
    "queued": "black on grey70",
    "streaming": "black on green3",
    "thinking": "black on medium_purple1",
    "paused": "black on yellow3",
    "calling tool": "black on cyan3",
    "awaiting approval": "black on orange1",
    "waiting for Ollama": "black on magenta",
    "retrying": "black on dark_orange",
    "stalled": "black on orange_red1",
    "finished": "black on steel_blue1",
    "failed": "white on red3",
    "stopped": "white on grey35",
}
"""Each status its own colour; the word itself is always shown, so colour is never alone."""
