"""The main screen: the grid of agent panes and every intervention key.

A key runs an action here, which sends a command to the session (`app.commands`, whoever owns
it) and returns. The panes change only when
the resulting event comes back through the bridge, so what the screen shows is always what the
log holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Header, Static

from cockpit.core import events as ev
from cockpit.core.config import CrewConfig
from cockpit.core.notify import approvals_line, endings_line
from cockpit.core.state import RUNNING, AgentState, AgentStatus
from cockpit.core.text import one_line
from cockpit.ui.aliases import host_aliases
from cockpit.ui.screens.approval_inbox import ApprovalInboxScreen
from cockpit.ui.screens.reading import PaneReading, SearchBar
from cockpit.ui.widgets.agent_grid import MAX_PER_PAGE, AgentGrid
from cockpit.ui.widgets.agent_pane import AgentPane, Segment
from cockpit.ui.widgets.agents_table import AgentsTable
from cockpit.ui.widgets.flash_line import FLASH_SECONDS as FLASH_LINE_SECONDS
from cockpit.ui.widgets.flash_line import FlashLine
from cockpit.ui.widgets.footer import CockpitFooter

if TYPE_CHECKING:
    from cockpit.core.commands import SessionCommands
    from cockpit.core.state import SessionState
    from cockpit.ui.app import CockpitApp

FLASH_SECONDS = 1.5
HINT_SECONDS = 15.0
ENDINGS = "endings"
"""The flash line's key while it lists agents that ended."""
ENDED_SECONDS = 6.0
FAILED_SECONDS = 12.0
APPROVAL_SECONDS = 20.0
"""How long the flash line says that a call waits (the title bar says it until decided)."""
LOG_BANNER = ("Event log not writable: {cause} — agents paused; they resume when it accepts "
              "writes. Nothing is lost.")

PAUSABLE = RUNNING | {AgentStatus.PAUSED}
STOPPABLE = RUNNING | {AgentStatus.PAUSED, AgentStatus.WAITING}
REDIRECTABLE = PAUSABLE | {AgentStatus.FINISHED}
"""`r`: a running or paused agent is redirected, a finished one asked a follow-up."""
RESTARTABLE = frozenset({AgentStatus.FAILED, AgentStatus.STOPPED, AgentStatus.FINISHED})
"""`R`: a failed or stopped agent starts again; a finished one re-runs (after asking)."""
CHECKED_ACTIONS = ("pause", "redirect", "stop", "restart", "page")
EXPLAINED = frozenset({*CHECKED_ACTIONS, "pause_all"})
"""The actions whose keys say why when they do not apply."""
INTERVENTIONS = frozenset({"pause", "pause_all", "redirect", "stop", "restart"})
"""The keys that command the session: not offered where nothing can be commanded."""
"""The actions whose keys `check_action` may dim."""


class LogBanner(Static):
    """One loud line above the panes while the event log refuses writes; hidden otherwise.

    Its CSS lives here, not in cockpit.tcss: Textual does not load the `CSS_PATH` of the
    screen an app returns from `get_default_screen`, only widgets' `DEFAULT_CSS`.
    """

    DEFAULT_CSS = """
    LogBanner { display: none; height: 1; padding: 0 1; background: $error; color: $text;
                text-style: bold; }
    LogBanner.-shown { display: block; }
    """


class CockpitScreen(PaneReading, Screen[None]):
    """All agents at once."""

    CSS_PATH = "cockpit.tcss"
    BINDINGS = [
        Binding("p", "pause", "Pause/resume", id="cockpit.pause",
                tooltip="Pause the focused agent (its stream is closed) or resume it"),
        Binding("P", "pause_all", "Pause all", id="cockpit.pause_all",
                tooltip="Pause every running agent, or resume them all"),
        Binding("r", "redirect", "Redirect", id="cockpit.redirect",
                tooltip="Cut the reply off and give the agent a new instruction; a finished "
                        "agent is asked a follow-up"),
        Binding("x", "stop", "Stop", id="cockpit.stop", tooltip="Stop the focused agent (asks)"),
        Binding("R", "restart", "Restart", id="cockpit.restart",
                tooltip="Start a failed or stopped agent again; re-run a finished one (asks)"),
        Binding("a", "approvals", "Approvals", id="cockpit.approvals",
                tooltip="Tool calls waiting for a decision: approve, deny or edit them"),
        Binding("s", "inspector", "State", id="cockpit.inspector",
                tooltip="The shared board, the conversation and the hosts"),
        Binding("l", "event_log", "Events", id="cockpit.events", tooltip="Live event log"),
        Binding("z", "zoom", "Zoom", id="cockpit.zoom", tooltip="Focused pane full screen"),
        Binding("v", "agents_table", "Table", id="cockpit.agents_table",
                tooltip="Every agent as a row, in place of the panes (v again for the panes); "
                        "S or a header click sorts, enter zooms the agent's pane"),
        Binding("slash", "search", "Search", id="cockpit.search",
                tooltip="Find text in the focused pane; n and N move between the matches"),
        Binding("y", "copy_reply", "Copy", id="cockpit.copy", show=False,
                tooltip="Copy the focused agent's reply (OSC 52: works over SSH)"),
        Binding("o", "pager", "Pager", id="cockpit.pager", show=False,
                tooltip="Open the focused agent's reply in $PAGER (or $EDITOR)"),
        Binding("m", "markdown", "Markdown", id="cockpit.markdown", show=False,
                tooltip="Show finished replies rendered as Markdown, or plain"),
        Binding("n", "next_match(1)", "Next match", id="cockpit.next_match", show=False,
                tooltip="The next match of the search"),
        Binding("N", "next_match(-1)", "Previous match", id="cockpit.previous_match",
                show=False, tooltip="The previous match of the search"),
        Binding("j,down", "scroll(1)", "Scroll down", id="cockpit.scroll_down", show=False,
                tooltip="Scroll the focused pane down a line"),
        Binding("k,up", "scroll(-1)", "Scroll up", id="cockpit.scroll_up", show=False,
                tooltip="Scroll the focused pane up a line (stops following the end)"),
        Binding("pagedown", "scroll_page(1)", "Page down", id="cockpit.page_down", show=False,
                tooltip="Scroll the focused pane down a page"),
        Binding("pageup", "scroll_page(-1)", "Page up", id="cockpit.page_up", show=False,
                tooltip="Scroll the focused pane up a page"),
        Binding("g", "scroll_start", "Top", id="cockpit.top", show=False,
                tooltip="The start of the focused pane"),
        Binding("escape", "clear_search", "Clear search", id="cockpit.clear_search",
                show=False, tooltip="Stop highlighting the search's matches"),
        Binding("t", "thinking", "Thinking", id="cockpit.thinking", show=False,
                tooltip="Show or hide the focused agent's thinking"),
        Binding("c", "tool_details", "Tool details", id="cockpit.tool_details", show=False,
                tooltip="Show or hide the focused pane's tool arguments and results"),
        Binding("ctrl+r", "revive", "Resume session", id="cockpit.revive",
                tooltip="The session's owner died: continue the session in a new one"),
        Binding("end,G", "follow", "Follow", id="cockpit.follow", show=False,
                tooltip="Scroll to the end and follow new text"),
        Binding("right_square_bracket", "page(1)", "Next page", id="cockpit.next_page",
                show=False, tooltip="Next page of panes"),
        Binding("left_square_bracket", "page(-1)", "Previous page", id="cockpit.previous_page",
                show=False, tooltip="Previous page of panes"),
        Binding("tab", "app.focus_next", "Next", id="cockpit.focus_next", show=False),
        Binding("shift+tab", "app.focus_previous", "Previous", id="cockpit.focus_previous",
                show=False),
        *[Binding(str(n), f"focus_pane({n})", f"Focus {n}", id=f"cockpit.focus_{n}", show=False)
          for n in range(1, 10)],
    ]

    app: CockpitApp
    INBOX_READ_ONLY = "The session has not started yet: calls can be seen, not decided."
    """What the approval inbox says when nothing can decide yet."""

    def __init__(self, crew: CrewConfig) -> None:
        super().__init__()
        self.crew = crew
        self.panes: dict[str, AgentPane] = {}
        self.ready = False
        """True once the panes exist; until then events only fold into the app's view."""
        self.selected: str | None = crew.agents[0].name
        """The agent keys act on. Set at once by `1`-`9` (focus itself is applied later, so a
        fast `2 r` must not redirect the previous agent) and kept in step with focus."""
        self._keys_for: tuple[bool | None, ...] = ()
        self._held: dict[str, list[Segment]] = {}
        self._composed: dict[str, AgentState] = {}
        self._log_stuck: str | None = None
        """The cause the banner shows (None: hidden)."""
        self._approvals: tuple[str, ...] = ()
        """The pending calls the panes show, oldest first (`view.approvals`)."""
        self.flash_line = FlashLine(id="flash-line")
        self._finished: list[str] = []
        self._failed: dict[str, str] = {}
        """The endings the flash line lists while it shows them (`ENDINGS`): agent -> error."""

    def compose(self) -> ComposeResult:
        yield Header()
        self.log_banner = LogBanner(id="log-banner", markup=False)
        yield self.log_banner
        self.owner_banner = LogBanner(id="owner-banner", markup=False)
        yield self.owner_banner
        view = self.app.view
        panes = []
        aliases = host_aliases(self.crew.all_hosts())
        for number, agent in enumerate(self.crew.agents, start=1):
            state = view.agents.get(agent.name) or self._composed_state(self.crew, agent.name)
            pane = AgentPane(state, number)
            pane.host_aliases = aliases
            self.panes[agent.name] = pane
            self._composed[agent.name] = state
            panes.append((pane, state))
        self.grid = AgentGrid([pane for pane, _ in panes])
        yield self.grid
        self.agents_table = AgentsTable()
        yield self.agents_table
        self.search_bar = SearchBar(id="search-bar")
        yield self.search_bar
        yield self.flash_line
        yield CockpitFooter()
        self._initial = panes

    def on_mount(self) -> None:
        now = self.app.clock()
        for pane, state in self._initial:
            agent = self.app.view.agents.get(pane.agent_name, state)
            pane.append(agent.output if agent.output is not None else agent.partial)
            pane.show_state(agent, now)
        keys = {name: self.app.key_display(f"cockpit.{name}", key)
                for name, key in (("approvals", "a"), ("tool_details", "c"), ("thinking", "t"))}
        for pane in self.panes.values():
            pane.keys = keys
        self.ready = True
        self.show_log_state()
        self.show_approvals()
        # Every frame, and a replay seek (which replaces the view without a frame), publish it.
        self.app.events_applied.subscribe(self, lambda _: self._show_session(), immediate=True)
        self._keys_for = self._key_states()  # what the footer was composed with
        first = next(iter(self.panes.values()))
        if len(self.panes) > MAX_PER_PAGE:  # more than a page of panes: the table reads best
            self.show_agents_table(True)
        else:
            first.focus()
        self.set_interval(1.0, self._tick)
        self.flash(self.first_hint(), timeout=HINT_SECONDS)

    def first_hint(self) -> str:
        """The three keys that matter, said once at the start."""
        def key(name: str, default: str) -> str:
            return self.app.key_display(name, default)

        every = f"{key('cockpit.help', '?')} every key"
        if self.app.source.plays:
            return f"space plays or pauses · ← → seek · {every}"
        return f"{key('cockpit.pause', 'p')} pauses · {key('cockpit.redirect', 'r')} " \
               f"redirects · {every}"

    # -- from the bridge -----------------------------------------------------------------------

    def show_events(self, segments: dict[str, list[Segment]], restarted: set[str],
                    ended: list[ev.BaseEvent], only: set[str] | None = None) -> None:
        """Apply one frame: each agent's new text in order, fresh headers, attention.

        `only` (an early frame, for an intervention or a status change) limits the redraw to
        those agents; the others' text waits in `_held` for the next regular frame, so the
        change a key asked for is drawn without redrawing every busy pane first.
        """
        frame: dict[str, list[Segment]] = {}
        for name, parts in segments.items():
            if only is not None and name not in only:
                self._held.setdefault(name, []).extend(parts)
                continue
            held = self._held.pop(name, [])
            frame[name] = parts if name in restarted else held + parts
        if only is None:
            for name, parts in self._held.items():
                frame.setdefault(name, parts)
            self._held = {}
        now = self.app.clock()
        agents = self.app.view.agents
        for name, parts in frame.items():
            pane = self.panes.get(name)
            if pane is None or name not in agents:
                continue
            if name in restarted:
                pane.restart()
            pane.write_segments(parts)
            pane.show_state(agents[name], now)
        if ended:
            self._attention(ended)
        if segments:
            self._refresh_keys()
        self._show_session()

    def _show_session(self) -> None:
        self.show_log_state()
        self.show_approvals()

    def show_approvals(self) -> None:
        """Each pane's line of calls waiting for approval; a note when new ones arrive."""
        approvals = self.app.view.approvals
        current = tuple(approvals)
        if current == self._approvals:
            return
        fresh = [approvals[call_id] for call_id in current if call_id not in self._approvals]
        self._approvals = current
        for name, pane in self.panes.items():
            pane.show_approvals([p for p in approvals.values() if p.agent == name])
        if fresh and self.app.commands is not None and \
                not isinstance(self.app.screen, ApprovalInboxScreen):  # it lists them
            what = approvals_line([(p.agent or "", p.tool) for p in fresh])
            self.flash(f"{what} — press {self.app.key_display('cockpit.approvals', 'a')}",
                       "warning", APPROVAL_SECONDS, key="approvals")

    def show_log_state(self) -> None:
        """The banner while the event log refuses writes (`view.log_stuck`), hidden after."""
        cause = self.app.view.log_stuck
        if cause == self._log_stuck:
            return
        self._log_stuck = cause
        if cause is None:
            self.log_banner.remove_class("-shown")
            self.log_banner.update("")
            return
        # The cause is an OS or SQLite message: plain text, never markup.
        self.log_banner.update(Text(LOG_BANNER.format(cause=one_line(cause, 300)),
                                    no_wrap=True, overflow="ellipsis"))
        self.log_banner.add_class("-shown")

    def show_owner_lost(self, message: str) -> None:
        """The session's owner is gone: one loud line, for as long as this viewer lives."""
        self.owner_banner.update(Text(one_line(message, 300), no_wrap=True,
                                      overflow="ellipsis"))
        self.owner_banner.add_class("-shown")
        self.notify(message, title="Session not running", severity="error", markup=False,
                    timeout=30)

    def show_owner_back(self) -> None:
        self.owner_banner.remove_class("-shown")
        self.owner_banner.update("")
        self.notify("the session runs again", markup=False, timeout=4)

    def action_revive(self) -> None:
        """ctrl+r once the owner died: continue the session in a new owner process."""
        revive = getattr(self.app.source, "revive", None)
        if self.app.owner_gone is None or revive is None:
            return
        self.notify("resuming the session…", markup=False, timeout=3)
        self.run_worker(self._revive(revive), group="revive", exclusive=True,
                        exit_on_error=False, description="resume the session")

    async def _revive(self, revive: Any) -> None:
        from cockpit.owner_process import OwnerError

        try:
            await revive()
        except (OwnerError, OSError) as error:
            self.notify(str(error), title="Not resumed", severity="error", markup=False,
                        timeout=15)

    async def source_mounted(self) -> None:
        """The source starts feeding now (a replay mounts its timeline bar here)."""

    def source_ready(self) -> None:
        """What the source offers has changed: the keys that depend on it are re-checked."""
        self.refresh_bindings()

    def show_state_at(self, state: SessionState, index: int) -> None:
        """Only a replay seeks."""

    def title_text(self) -> str:
        where = f" · {self.app.session}" if self.app.source.quit == "detach" else ""
        grid = getattr(self, "grid", None)
        if grid is not None and not grid.display:  # the agents table is shown instead
            grid = None
        if grid is not None and grid.zoomed is not None:
            zoom = self.app.key_display("cockpit.zoom", "z")
            where += f" · zoomed on {grid.zoomed.agent_name} ({zoom})"
        elif grid is not None and grid.pages > 1:
            where += f" · page {grid.page + 1}/{grid.pages} · [ ]"
        return f"cockpit · {one_line(self.crew.name, 60)}{where}"

    def crew_changed(self, crew: CrewConfig, added: list[str]) -> None:
        """The crew as updated; each agent that joined gets a pane at the end."""
        self.crew = crew
        now = self.app.clock()
        for name in added:
            if name in self.panes or not self.ready:
                continue
            state = self.app.view.agents.get(name) or self._composed_state(crew, name)
            pane = AgentPane(state, len(self.panes) + 1)
            pane.keys = next(iter(self.panes.values())).keys
            pane.host_aliases = host_aliases(crew.all_hosts())
            self.panes[name] = pane
            self._composed[name] = state
            self.grid.panes.append(pane)
            self.grid.mount(pane)
            pane.show_state(state, now)
        self.grid.layout_panes()

    @staticmethod
    def _composed_state(crew: CrewConfig, name: str) -> AgentState:
        agent = crew.agent(name)
        return AgentState(name=name, model=crew.model_for(agent), host=crew.host_for(agent),
                          after=list(agent.after),
                          status=AgentStatus.WAITING if agent.after else AgentStatus.QUEUED)

    def forget_held(self) -> None:
        """Drop text kept back for the next frame (a replay seek redraws every pane)."""
        self._held = {}

    def _refresh_keys(self) -> None:
        """Re-check the dimmed keys only when one of them changes.

        `refresh_bindings()` makes the footer recompose (dozens of widgets); once per frame it
        cost more than everything else the TUI does while agents stream.
        """
        key = self._key_states()
        if key != self._keys_for:
            self._keys_for = key
            self.refresh_bindings()

    def _key_states(self) -> tuple[bool | None, ...]:
        return tuple(self.check_action(action, ()) for action in CHECKED_ACTIONS)

    def _tick(self) -> None:
        """Elapsed time moves even when no token arrives."""
        now = self.app.clock()
        for name, agent in self.app.view.agents.items():
            if agent.started_at is not None and not agent.status.ended:
                self.panes[name].show_state(agent, now)

    def _attention(self, ended: list[ev.BaseEvent]) -> None:
        """Agents that ended: their panes blink, and one flash line lists them. Endings that
        come while it shows them join it (`finished: tips, mistakes · failed: note`) instead
        of replacing it. History an attached viewer is fed is not news: no blink, no line."""
        news = [event for event in ended if self.app.notifier.is_news(event)]
        if not news:
            return
        for event in news:
            pane = self.panes.get(event.agent or "")
            if pane is not None:
                pane.add_class("-flash")
                self.set_timer(FLASH_SECONDS, lambda p=pane: p.remove_class("-flash"))
        if not self.flash_line.showing(ENDINGS):
            self._finished, self._failed = [], {}
        for event in news:
            name = event.agent or ""
            if name in self._finished:
                self._finished.remove(name)
            self._failed.pop(name, None)
            if isinstance(event, ev.AgentFailed):
                self._failed[name] = event.error
            else:
                self._finished.append(name)
        failed = list(self._failed.items())
        self.flash(endings_line(self._finished, failed), "error" if failed else "information",
                   FAILED_SECONDS if failed else ENDED_SECONDS, key=ENDINGS)

    def flash(self, text: str, severity: str = "information",
              timeout: float = FLASH_LINE_SECONDS, *, key: str | None = None) -> None:
        """Say `text` on the flash line above the footer for `timeout` seconds; it replaces
        what the line said. `text` may be untrusted (a name, an error): it is shown as plain,
        sanitised text. `severity` is "information", "warning" or "error"."""
        self.flash_line.flash(text, severity, timeout, key=key)

    # -- focus ---------------------------------------------------------------------------------

    @property
    def focused_pane(self) -> AgentPane | None:
        return self.panes.get(self.selected or "")

    @property
    def focused_agent(self) -> AgentState | None:
        """The selected agent as the view has it; before the session starts, as composed."""
        name = self.selected or ""
        return self.app.view.agents.get(name) or self._composed.get(name)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        node: Widget | None = event.widget
        while node is not None and not isinstance(node, AgentPane):
            node = node.parent if isinstance(node.parent, Widget) else None
        if isinstance(node, AgentPane) and node.agent_name != self.selected:
            self.selected = node.agent_name
            self._refresh_keys()

    def action_focus_pane(self, number: int) -> None:
        panes = list(self.panes.values())
        if 1 <= number <= len(panes):
            pane = panes[number - 1]
            self.selected = pane.agent_name
            self.grid.show_pane(pane)
            pane.focus()
            self._refresh_keys()

    def action_page(self, step: int) -> None:
        grid = self.grid
        grid.show_page(grid.page + step)
        visible = [p for p in grid.panes if not p.has_class("-off-page")]
        if visible:
            visible[0].focus()
        self.app.update_title()  # the title says which page

    # -- interventions -------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Dim the keys that do not apply to the focused agent right now."""
        if action in INTERVENTIONS and self.app.commands is None:
            return False  # nothing can be commanded here: a replay, or an owner that died
        if action == "revive":
            return self.app.owner_gone is not None and hasattr(self.app.source, "revive")
        agent = self.focused_agent
        status = agent.status if agent is not None else None
        allowed = {
            "pause": PAUSABLE, "redirect": REDIRECTABLE, "stop": STOPPABLE,
            "restart": RESTARTABLE,
        }.get(action)
        if allowed is not None:
            return True if status in allowed else None
        if action == "page":
            return True if self.grid.pages > 1 else None
        return True

    def on_key(self, event: events.Key) -> None:
        """A key whose action does not apply now says why in the flash line, instead of
        doing nothing (Textual skips a dimmed binding and hands the key on, to here)."""
        for node, bindings in self._binding_chain:
            if node is not self:
                continue
            for binding in bindings.key_to_bindings.get(event.key, []):
                action = binding.action.split("(")[0]
                if action in EXPLAINED and self.check_action(action, ()) is not True:
                    event.stop()
                    self.flash(self.why_not(action), severity="warning")
                    return

    def why_not(self, action: str) -> str:
        """Why the key of `action` does nothing for the selected agent now."""
        if self.app.commands is None:
            if self.app.owner_gone is not None:
                revive = self.app.key_display("cockpit.revive", "ctrl+r")
                return f"the session is not running: {revive} resumes it"
            return "nothing here can be commanded: this is a replay"
        if action == "page":
            return "every pane fits on this page"
        agent = self.focused_agent
        if agent is None:
            return "no agent selected"

        def key(name: str, default: str) -> str:
            return self.app.key_display(f"cockpit.{name}", default)

        name, status = agent.name, agent.status
        if status is AgentStatus.FINISHED:
            return f"{name} is finished: {key('redirect', 'r')} asks a follow-up, " \
                   f"{key('restart', 'R')} runs it again"
        if status in RESTARTABLE:
            return f"{name} {status}: {key('restart', 'R')} starts it again"
        if status is AgentStatus.WAITING:
            after = ", ".join(agent.after) or "its dependencies"
            return f"{name} waits for {after}: {key('stop', 'x')} stops it"
        return f"{name} is {status}: that key does not apply now"

    def action_pause(self) -> None:
        if (target := self._target()) is None:
            return
        commands, agent = target
        name = agent.name
        if agent.status is AgentStatus.PAUSED:
            self._command(lambda: commands.resume(name), f"resumed {name}")
        else:
            self._command(lambda: commands.pause(name), f"paused {name}")

    def action_pause_all(self) -> None:
        commands = self.app.commands
        if commands is None:
            return
        if any(a.status in RUNNING for a in self.app.view.agents.values()):
            self._command(commands.pause_all, "paused every running agent")
        else:
            self._command(commands.resume_all, "resumed every paused agent")

    def action_redirect(self) -> None:
        """Redirect a running or paused agent; ask a finished one a follow-up (the same
        command: the session decides which it is)."""
        from cockpit.ui.screens.modals import InputModal, RedirectModal

        if (target := self._target()) is None:
            return
        commands, agent = target
        name = agent.name
        follow_up = agent.status is AgentStatus.FINISHED

        def send(instruction: str | None) -> None:
            if instruction:
                self._command(lambda: commands.redirect(name, instruction),
                              f"asked {name} a follow-up" if follow_up else f"redirected {name}")

        modal = InputModal(f"Ask {name} a follow-up: a new turn of the same conversation. Its "
                           f"answer becomes outputs.{name}.", placeholder="Follow-up") \
            if follow_up else RedirectModal(name)
        self.app.push_screen(modal, send)

    def action_stop(self) -> None:
        from cockpit.ui.screens.modals import ConfirmModal

        if (target := self._target()) is None:
            return
        commands, agent = target
        name = agent.name

        def decided(stop: bool | None) -> None:
            if stop:
                self._command(lambda: commands.stop(name), f"stopped {name}")

        dependents = [a.name for a in self.crew.agents if name in a.after]
        warning = f"\nAgents waiting for it will not start: {', '.join(dependents)}." \
            if dependents else ""
        self.app.push_screen(ConfirmModal(f"Stop {name}?{warning}", yes="Stop"), decided)

    def action_restart(self) -> None:
        """Start a failed or stopped agent again; re-run a finished one from its opening,
        once confirmed (its answer would be replaced)."""
        from cockpit.ui.screens.modals import ConfirmModal

        if (target := self._target()) is None:
            return
        commands, agent = target
        name = agent.name
        if agent.status is not AgentStatus.FINISHED:
            self._command(lambda: commands.restart(name), f"restarted {name}")
            return

        def decided(again: bool | None) -> None:
            if again:
                self._command(lambda: commands.restart(name), f"re-running {name}")

        self.app.push_screen(ConfirmModal(
            f"Run {name} again from its opening?\nIts conversation starts over; its answers "
            f"so far stay in the log, and outputs.{name} holds the new answer once it "
            "finishes.", yes="Re-run"), decided)

    def _target(self) -> tuple[SessionCommands, AgentState] | None:
        """Where commands go and the selected agent, when both exist."""
        agent, commands = self.focused_agent, self.app.commands
        return None if agent is None or commands is None else (commands, agent)

    def _command(self, call: object, done: str) -> None:
        self.run_worker(self.app.command(call, done),  # type: ignore[arg-type]
                        group="commands", exclusive=False, exit_on_error=False,
                        description=done)

    # -- views ---------------------------------------------------------------------------------

    def action_agents_table(self) -> None:
        """`v`: the agents table in place of the panes, or the panes again."""
        self.show_agents_table(not self.agents_table.shown)

    def show_agents_table(self, shown: bool) -> None:
        """The table (its cursor on the selected agent) or the grid (the selected pane
        focused): one of the two, never both."""
        self.grid.display = not shown
        self.agents_table.show(shown, self.selected)
        if shown:
            self.agents_table.focus()
        elif (pane := self.focused_pane) is not None:
            self.grid.show_pane(pane)
            pane.focus()
        self.app.update_title()  # a zoom or a page is the grid's, not the table's

    def on_agents_table_highlighted(self, message: AgentsTable.Highlighted) -> None:
        """The table's cursor is the selection: interventions act on its row."""
        if message.agent in self.panes and message.agent != self.selected:
            self.selected = message.agent
            self._refresh_keys()

    def on_agents_table_chosen(self, message: AgentsTable.Chosen) -> None:
        """`enter` on a row: the panes again, with that agent's zoomed."""
        if message.agent not in self.panes:
            return
        self.selected = message.agent
        self.show_agents_table(False)
        if self.grid.zoomed is None:
            self.action_zoom()

    def action_zoom(self) -> None:
        """The focused pane alone, under the title bar (which says so), or the grid again."""
        if self.grid.zoomed is not None:
            self.grid.zoom(None)
        elif (pane := self.focused_pane) is not None:
            self.grid.zoom(pane)
        self.app.update_title()

    def action_clear_search(self) -> None:
        if self.clear_search():
            self.flash("search cleared")

    def action_thinking(self) -> None:
        if (pane := self.focused_pane) is not None:
            pane.toggle_thinking()

    def action_tool_details(self) -> None:
        if (pane := self.focused_pane) is not None:
            pane.toggle_details()
            agent = self.focused_agent
            if agent is not None:
                pane.show_state(agent, self.app.clock())

    def action_approvals(self) -> None:
        if not isinstance(self.app.screen, ApprovalInboxScreen):
            self.app.push_screen(ApprovalInboxScreen(self.app.commands,
                                                     self.INBOX_READ_ONLY))

    def action_follow(self) -> None:
        if (pane := self.focused_pane) is not None:
            pane.follow_tail()

    def action_inspector(self) -> None:
        from cockpit.ui.screens.inspector import InspectorScreen

        agent = self.focused_agent
        self.app.push_screen(InspectorScreen(agent.name if agent else None))

    def action_event_log(self) -> None:
        from cockpit.ui.screens.event_log import EventLogScreen

        self.app.push_screen(EventLogScreen())
