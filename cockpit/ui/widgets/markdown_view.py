"""A finished reply rendered as Markdown (`m`): parsed once, when the reply is complete.

Streaming text stays plain. A chat client that re-renders Markdown on every chunk pays for the
square of the reply; here the text is parsed once per finished reply and again only if a
follow-up replaces it. Code blocks are highlighted by Textual's fences. Model text is untrusted:
its control sequences are removed first, Markdown never reads it as Rich markup, and its links
are not followed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import VerticalScroll

from cockpit.core.state import AgentStatus
from cockpit.core.text import sanitize

if TYPE_CHECKING:
    from cockpit.core.state import AgentState


class MarkdownView(VerticalScroll, can_focus=False):
    """Shown in place of the plain reply while it is wanted and the agent has finished."""

    DEFAULT_CSS = """
    MarkdownView { height: 1fr; display: none; background: $surface; padding: 0 1;
                   scrollbar-size-vertical: 1; }
    MarkdownView.-shown { display: block; }
    MarkdownView > Markdown { padding: 0; margin: 0; }
    """

    def __init__(self) -> None:
        from textual.widgets import Markdown  # only when asked for: start-up stays light

        super().__init__(id="markdown")
        self.wanted = False
        self.rendered: str | None = None
        """The text last rendered: the same reply is never parsed twice."""
        self.document: Markdown = Markdown(open_links=False)

    def compose(self) -> ComposeResult:
        yield self.document

    def on_mount(self) -> None:
        if self.rendered is not None:  # asked for before it was mounted
            self.document.update(sanitize(self.rendered))

    @property
    def shown(self) -> bool:
        return self.has_class("-shown")

    def show(self, agent: AgentState | None) -> None:
        """Render the agent's finished reply if it is wanted and new; show or hide."""
        text = agent.output if agent is not None and agent.status is AgentStatus.FINISHED \
            else None
        visible = self.wanted and text is not None
        self.set_class(visible, "-shown")
        if self.parent is not None:
            self.parent.set_class(visible, "-markdown")
        if visible and text != self.rendered:
            self.rendered = text
            if self.is_mounted:
                self.document.update(sanitize(text or ""))
                self.scroll_home(animate=False)
