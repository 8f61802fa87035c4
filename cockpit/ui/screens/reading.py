"""Reading a pane: scrolling, search, copy, the pager and the Markdown view.

These keys change nothing in the session, only what the person sees of it, so they live apart
from the interventions. `CockpitScreen` mixes them in; they act on its selected pane.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import tempfile
from typing import TYPE_CHECKING

from textual import events
from textual.binding import Binding
from textual.widgets import Input

from cockpit.core.text import one_line, sanitize

if TYPE_CHECKING:
    from cockpit.core.state import AgentState
    from cockpit.ui.app import CockpitApp
    from cockpit.ui.widgets.agent_pane import AgentPane

CLIPBOARD_NOTE = "your terminal must allow OSC 52 (see the README)"


def reply_of(agent: AgentState) -> str:
    """The agent's latest reply: the finished answer, else what streams now."""
    return agent.output if agent.output is not None else agent.partial


class SearchBar(Input):
    """`/`: one line at the bottom; enter searches the focused pane, escape closes it."""

    DEFAULT_CSS = """
    SearchBar { dock: bottom; display: none; height: 1; border: none; padding: 0 1;
                background: $boost; }
    SearchBar.-shown { display: block; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="cockpit.search_close", show=False)]

    def action_close(self) -> None:
        self.remove_class("-shown")
        self.screen.focus_selected()  # type: ignore[attr-defined]


class PaneReading:
    """The reading keys of the cockpit screen (a mixin: it needs `focused_pane`,
    `focused_agent`, `flash` and `app` from the screen)."""

    if TYPE_CHECKING:
        app: CockpitApp
        search_bar: SearchBar

        @property
        def focused_pane(self) -> AgentPane | None: ...

        @property
        def focused_agent(self) -> AgentState | None: ...

    _search: tuple[str, re.Pattern[str]] | None = None
    """The agent searched and the pattern, while matches are highlighted."""

    if TYPE_CHECKING:
        def flash(self, text: str, severity: str = "information") -> None: ...

    def focus_selected(self) -> None:
        if (pane := self.focused_pane) is not None:
            pane.focus()

    # -- scrolling -----------------------------------------------------------------------------

    def action_scroll(self, lines: int) -> None:
        if (pane := self.focused_pane) is not None:
            pane.scroll_lines(lines)

    def action_scroll_page(self, pages: int) -> None:
        if (pane := self.focused_pane) is not None:
            pane.scroll_pages(pages)

    def action_scroll_start(self) -> None:
        if (pane := self.focused_pane) is not None:
            pane.scroll_to_start()

    # -- search --------------------------------------------------------------------------------

    def action_search(self) -> None:
        bar = self.search_bar
        bar.add_class("-shown")
        bar.placeholder = f"search {self.focused_pane.agent_name if self.focused_pane else ''}" \
                          " (enter finds, escape closes)"
        bar.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not isinstance(event.input, SearchBar):
            return
        event.stop()
        self.search_bar.remove_class("-shown")
        self.focus_selected()
        pane = self.focused_pane
        words = event.value.strip()
        if pane is None:
            return
        if not words:
            self.clear_search()
            return
        self._search = (pane.agent_name, re.compile(re.escape(words), re.IGNORECASE))
        matches = pane.search(self._search[1])
        if not matches:
            self.flash(f"no match for “{one_line(words, 40)}” in {pane.agent_name}",
                       severity="warning")
            return
        top = pane.body.dropped + pane.body.scroll_offset.y
        at = next((i for i, match in enumerate(matches) if match[0] >= top), 0)
        self._show_match(pane, matches, at)

    def action_next_match(self, step: int) -> None:
        pane = self.focused_pane
        if self._search is None or pane is None or pane.agent_name != self._search[0]:
            self.flash("nothing searched in this pane: / searches")
            return
        current = pane.body.current
        matches = pane.search(self._search[1])  # the reply may have grown
        if not matches:
            self.flash("no match any more", severity="warning")
            return
        if current is None:
            at = 0 if step > 0 else len(matches) - 1
        elif step > 0:
            at = next((i for i, match in enumerate(matches) if match > current), 0)
        else:
            at = next((i for i in range(len(matches) - 1, -1, -1) if matches[i] < current),
                      len(matches) - 1)
        self._show_match(pane, matches, at)

    def _show_match(self, pane: AgentPane, matches: list[tuple[int, int]], at: int) -> None:
        pane.show_match(matches[at])
        self.flash(f"match {at + 1} of {len(matches)} — n next, N previous, escape clears")

    def clear_search(self) -> bool:
        """Stop highlighting; False when there was nothing to clear."""
        if self._search is None:
            return False
        pane = next((p for p in self._panes() if p.agent_name == self._search[0]), None)
        if pane is not None:
            pane.search(None)
        self._search = None
        return True

    def _panes(self) -> list[AgentPane]:
        return list(getattr(self, "panes", {}).values())

    # -- copy, pager, Markdown ------------------------------------------------------------------

    def action_copy_reply(self) -> None:
        agent = self.focused_agent
        if agent is None:
            return
        text = sanitize(reply_of(agent))
        if not text:
            self.flash(f"{agent.name} has no reply yet: nothing to copy")
            return
        self.app.copy_to_clipboard(text)
        self.flash(f"copied {agent.name}'s reply ({len(text):,} characters); {CLIPBOARD_NOTE}")

    def on_text_selected(self, event: events.TextSelected) -> None:
        """A mouse selection copies, as in a terminal."""
        text = self.app.screen.get_selected_text()
        if text:
            self.app.copy_to_clipboard(text)
            self.flash(f"copied the selection ({len(text):,} characters); {CLIPBOARD_NOTE}")

    async def action_pager(self) -> None:
        agent = self.focused_agent
        if agent is None:
            return
        text = sanitize(reply_of(agent))
        if not text:
            self.flash(f"{agent.name} has no reply yet: nothing to open")
            return
        command = os.environ.get("PAGER") or os.environ.get("EDITOR") or "less"
        try:
            argv = shlex.split(command)
        except ValueError as error:
            self.flash(f"$PAGER does not parse: {error}", severity="error")
            return
        if not argv or shutil.which(argv[0]) is None:
            self.flash(f"no pager: {one_line(command, 60)} not found; set $PAGER",
                       severity="error")
            return
        from textual.app import SuspendNotSupported

        # mkstemp: a private file (0600), removed once the pager is done.
        handle, path = tempfile.mkstemp(prefix=f"cockpit-{agent.name}-", suffix=".md")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text if text.endswith("\n") else text + "\n")
            try:
                with self.app.suspend():  # the session goes on: only this viewer waits
                    process = await asyncio.create_subprocess_exec(*argv, path)
                    await process.wait()
            except SuspendNotSupported:
                self.flash("o needs a terminal; here, y copies the reply instead",
                           severity="warning")
        except OSError as error:
            self.flash(f"pager failed: {one_line(str(error), 80)}", severity="error")
        finally:
            os.unlink(path)

    def action_markdown(self) -> None:
        pane, agent = self.focused_pane, self.focused_agent
        if pane is None or agent is None:
            return
        if pane.toggle_markdown(agent):
            shown = pane.markdown_view is not None and pane.markdown_view.shown
            self.flash("Markdown view" if shown else
                       f"{agent.name} is {agent.status}: its reply shows as Markdown "
                       "once it has finished")
        else:
            self.flash("plain view")
