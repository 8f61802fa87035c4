"""The cockpit app: the composition root of the TUI.

The app owns the session's lifetime: on mount it opens the event log and starts the supervisor,
and on unmount it stops the agents where they are (the session stays resumable) and closes the
log. The UI's picture of the session is its own fold of the bus (`view`), fed only by the
bridge, so the TUI shows exactly what the log records, live or replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.signal import Signal
from textual.theme import BUILTIN_THEMES

from cockpit.core import events as ev
from cockpit.core.acting import Policy
from cockpit.core.bus import EventBus
from cockpit.core.commands import CommandError
from cockpit.core.config import CrewConfig
from cockpit.core.eventlog import EventLog, LogError
from cockpit.core.logfile import mcp_log_path
from cockpit.core.state import AgentStatus, SessionState
from cockpit.core.supervisor import Supervisor
from cockpit.core.tools.base import ToolsUnavailable
from cockpit.ui.bridge import Bridge, urgent
from cockpit.ui.screens.approval_inbox import ApprovalInboxScreen
from cockpit.ui.screens.cockpit import CockpitScreen
from cockpit.ui.themes import ThemeError, load_theme, load_themes, theme_dirs, watch_themes
from cockpit.ui.widgets.agent_pane import Segment

if TYPE_CHECKING:
    from textual.driver import Driver

DEFAULT_THEME = "cockpit-dark"
PALETTE_SKIP = {"cockpit.focus_next", "cockpit.focus_previous",
                *(f"cockpit.focus_{n}" for n in range(1, 10))}
EXIT_SIGNALS = {getattr(signal, name): code for name, code in
                (("SIGTERM", 130), ("SIGINT", 130), ("SIGHUP", 129)) if hasattr(signal, name)}
"""Signals that end the TUI as a confirmed quit would (nobody may be there to confirm), with
the exit code each gives (DESIGN.md). Ctrl-C typed in the TUI is a key, not a signal."""


class CockpitApp(App[int]):
    """Runs one crew as a session and shows it.

    Once the first screen is drawn, the objects alive then (Textual, the widgets, the modules)
    are moved out of the garbage collector's reach with `gc.freeze()`: a full collection over
    them took ~45 ms, a visible stall in the middle of a key press.
    """

    CSS_PATH = "app.tcss"
    TITLE = "cockpit"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit_cockpit", "Quit", id="cockpit.quit",
                tooltip="Quit; running agents are cut off and the session stays resumable"),
        Binding("ctrl+c", "copy_or_quit", "Quit", id="cockpit.quit_ctrl_c", show=False,
                priority=True, tooltip="Same as q; with text selected, copies it instead"),
        Binding("question_mark", "help", "Keys", id="cockpit.help", tooltip="Show every key"),
    ]

    def __init__(
        self,
        crew: CrewConfig,
        db: Path,
        *,
        crew_path: Path | None = None,
        theme: str | None = None,
        hosts: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        watch_themes: bool = True,
        theme_directories: list[Path] | None = None,
        resume: SessionState | None = None,
        resume_only: list[str] | None = None,
        approve: Policy = "ask",
    ) -> None:
        super().__init__()
        self.approve: Policy = approve
        """The run's `--approve` policy for gated tool calls."""
        self.crew = crew
        self.db = db
        self.crew_path = crew_path
        self.clock = clock
        self.hosts = dict(hosts or {})
        self.resume = resume
        """A session folded from its log, to continue (`cockpit resume`); None for a new one."""
        self.resume_only = resume_only
        """`cockpit resume --only`: the agents that continue."""
        self.view = copy.deepcopy(resume) if resume is not None else SessionState()
        """The session as the UI has seen it: a fold of every event the bridge delivered."""
        self.events_applied: Signal[list[ev.BaseEvent]] = Signal(self, "events-applied")
        """Published once per frame with the frame's events (inspector, event log view)."""
        self.supervisor: Supervisor | None = None
        self.log_store: EventLog | None = None
        self.bridge: Bridge | None = None
        self.cockpit: CockpitScreen
        self._stack = contextlib.AsyncExitStack()
        self._theme_directories = theme_directories or theme_dirs()
        self._watch_themes = watch_themes
        self._requested_theme = theme
        self._load_themes()

    # -- lifetime ----------------------------------------------------------------------------

    def _load_themes(self) -> None:
        themes, self.theme_errors = load_themes(self._theme_directories)
        for theme in themes.values():
            self.register_theme(theme)
        name = self._requested_theme or DEFAULT_THEME
        if name in self.available_themes:
            self.theme = name
        else:
            choices = ", ".join(sorted(set(themes) | set(BUILTIN_THEMES)))
            raise ThemeError(f"no theme named {name!r}; choose one of: {choices}")

    def get_default_screen(self) -> Screen[Any]:
        self.cockpit = CockpitScreen(self.crew)
        return self.cockpit

    async def attach_log(self, *, readonly: bool = False,
                         ) -> tuple[EventLog, EventBus, Bridge] | None:
        """Open the log for the app's lifetime and the bus the bridge drains; on a log error,
        exit 2 with the message (and return None)."""
        try:
            log = await self._stack.enter_async_context(EventLog.open(self.db,
                                                                      readonly=readonly))
        except LogError as error:
            self.exit(2, return_code=2, message=f"cockpit: {error}")
            return None
        self.log_store = log
        bus = EventBus()
        self.bridge = bridge = Bridge(bus.subscribe(urgent), self.apply_events,
                                      self.call_after_refresh)
        return log, bus, bridge

    async def on_mount(self, event: events.Mount) -> None:
        if (attached := await self.attach_log()) is None:
            return
        log, bus, bridge = attached
        log.add_failure_listener(self._log_gave_up)
        self.supervisor = Supervisor(self.crew, log, bus, crew_path=self.crew_path,
                                     hosts=self.hosts, clock=self.clock,
                                     session=self.resume.session if self.resume else None,
                                     approve=self.approve, mcp_log=mcp_log_path(self.db))
        self.run_worker(bridge.run(), group="bridge", exclusive=True,
                        description="event bus -> UI, one batch per frame", exit_on_error=True)
        self.run_worker(self._run_session(), group="session", exclusive=True,
                        description="the supervisor's session", exit_on_error=False)
        if self._watch_themes:
            self.run_worker(watch_themes(self._theme_directories, self.reload_theme),
                            group="themes", exclusive=True, description="theme hot reload",
                            exit_on_error=False)
        for problem in self.theme_errors:
            self.notify(problem, title="Theme not loaded", severity="warning", markup=False)
        self.call_after_refresh(gc.freeze)

    def _log_gave_up(self, error: LogError) -> None:
        """The log cannot be written at all: the session cannot go on unrecorded. Exit 2 with
        the log's message (what was not written, and where it went)."""
        self.exit(2, return_code=2, message=f"cockpit: {error}")

    async def _run_session(self) -> None:
        """Run the session until its agents end. A log that gives up for good (deleted,
        replaced, or unwritable past its grace) ends the app with exit 2 and its message,
        which says what was not written and where it went."""
        assert self.supervisor is not None
        try:
            if self.resume is not None:
                await self.supervisor.resume_session(self.resume, self.resume_only)
            else:
                await self.supervisor.start()
            await self.supervisor.wait()
        except (LogError, ToolsUnavailable) as error:
            self.exit(2, return_code=2, message=f"cockpit: {error}")

    async def run_async(self, **options: Any) -> int | None:
        """Run with SIGTERM, SIGHUP and SIGINT ending the app through its own exit: unmount
        shuts the session down as interrupted and closes the log, and the driver restores the
        terminal. The handlers cover the whole run, start-up and shutdown included, so a second
        signal while closing cannot cut the shutdown short."""
        with self._exit_on_signals():
            return await super().run_async(**options)

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver, made to survive a terminal that hangs up (see `_HangupSafe`)."""
        driver = super().get_driver_class()
        return _hangup_safe_driver() if driver.__name__ == "LinuxDriver" else driver

    @contextlib.contextmanager
    def _exit_on_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed = []
        for signum, code in EXIT_SIGNALS.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._exit_on_signal, code)  # main thread only
                installed.append(signum)
        try:
            yield
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def _exit_on_signal(self, code: int) -> None:
        if self.return_code is None:  # the first reason to exit wins (a log error's 2, a `y`)
            self.exit(code)

    async def on_unmount(self, event: events.Unmount) -> None:
        """Cut running agents off where they are, log it, and close the log."""
        self.cockpit.ready = False  # the panes are going away; the view still folds
        try:
            try:
                if self.supervisor is not None:
                    await self.supervisor.shutdown()
            finally:
                await self._stack.aclose()
        except LogError as error:  # it says what was not written and where it went
            self.exit(2, return_code=2, message=f"cockpit: {error}")

    # -- events in -----------------------------------------------------------------------------

    def apply_events(self, events: list[ev.BaseEvent], early: bool = False) -> None:
        """Fold a frame's events into the view and update the screen once (the bridge calls it).

        An early frame redraws only the agents with an urgent event (see `Bridge`).
        """
        segments: dict[str, list[Segment]] = {}
        restarted: set[str] = set()
        ended: list[ev.BaseEvent] = []
        concerned: set[str] = set()
        view = self.view
        for event in events:
            view.apply(event)
            agent = event.agent
            if agent is None:
                continue
            if early and urgent(event):
                concerned.add(agent)
            parts = segments.setdefault(agent, [])
            if isinstance(event, ev.TokenStreamed):
                parts.append(("text", event.text))
                continue
            if isinstance(event, ev.ThinkingStreamed):
                parts.append(("thinking", event.text))
                continue
            if isinstance(event, ev.AgentStarted):
                restarted.add(agent)
                parts.clear()
            elif isinstance(event, ev.AgentFinished | ev.AgentFailed):
                ended.append(event)
            elif isinstance(event, ev.MessageSent) and event.to in view.agents:
                segments.setdefault(event.to, []).append(("event", event))  # received
                if early:
                    concerned.add(event.to)
            parts.append(("event", event))  # the pane shows the events it has a line for
        with self.batch_update():
            if self.cockpit.ready:
                self.cockpit.show_events(segments, restarted, ended,
                                         concerned if early else None)
            self.update_title()
            self.events_applied.publish(events)

    def update_title(self) -> None:
        counts: dict[AgentStatus, int] = {}
        for agent in self.view.agents.values():
            counts[agent.status] = counts.get(agent.status, 0) + 1
        running = sum(counts.get(s, 0) for s in (AgentStatus.STREAMING, AgentStatus.THINKING,
                                                   AgentStatus.QUEUED, AgentStatus.RETRYING,
                                                   AgentStatus.STALLED))
        parts = [f"{running} streaming", f"{counts.get(AgentStatus.FINISHED, 0)} finished",
                 f"{counts.get(AgentStatus.FAILED, 0)} failed"]
        for status in (AgentStatus.CALLING, AgentStatus.WAITING_HOST, AgentStatus.PAUSED,
                       AgentStatus.STOPPED, AgentStatus.WAITING):
            if counts.get(status):
                parts.append(f"{counts[status]} {status}")
        if waiting := len(self.view.approvals):  # first: the one part that asks for a person
            calls = "1 call waits" if waiting == 1 else f"{waiting} calls wait"
            parts.insert(0, f"⏸ {calls} for approval "
                            f"({self.key_display('cockpit.approvals', 'a')})")
        self.title = f"cockpit · {self.crew.name}"
        self.sub_title = " · ".join(parts)

    def key_display(self, binding_id: str, key: str) -> str:
        """How hints name the key of binding `binding_id` (default `key`), as remapped by the
        crew's `[keymap]`."""
        keys = self._keymap.get(binding_id, key)
        return self.get_key_display(Binding(keys.split(",")[0], ""))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every cockpit key is also a palette command (ctrl+p), and so are the approval
        inbox's while it is open."""
        yield from super().get_system_commands(screen)
        if not isinstance(screen, CockpitScreen | ApprovalInboxScreen):
            return
        seen: set[str] = set()
        for binding in (b for cls in type(screen).__mro__
                        for b in cls.__dict__.get("BINDINGS", ())):
            if not isinstance(binding, Binding) or binding.id in PALETTE_SKIP \
                    or binding.action in seen \
                    or screen.check_action(binding.action.split("(")[0], ()) is False:
                continue
            seen.add(binding.action)
            yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                partial(screen.run_action, binding.action))

    # -- themes --------------------------------------------------------------------------------

    async def reload_theme(self, path: Path) -> None:
        """Re-apply an edited theme; keep the old one if the new file is broken."""
        try:
            theme = load_theme(path)
        except ThemeError as error:
            self.notify(str(error), title="Theme not reloaded", severity="error", markup=False)
            return
        self.register_theme(theme)
        if theme.name == self.theme:
            self.mutate_reactive(App.theme)  # same name: the reactive alone would not fire
            self.notify(f"theme {theme.name} reloaded", markup=False)

    # -- actions -------------------------------------------------------------------------------

    def agents_running(self) -> list[str]:
        return [name for name, agent in self.view.agents.items() if not agent.status.ended]

    async def action_quit_cockpit(self) -> None:
        from cockpit.ui.screens.modals import ConfirmModal

        running = self.agents_running()
        if not running:
            self.exit(self.exit_code())
            return
        question = (f"{len(running)} agent(s) still running: {', '.join(running)}.\n"
                    "Quit? They are cut off where they are; the log keeps everything and the "
                    "session stays resumable.")

        def decided(quit_now: bool | None) -> None:
            if quit_now:
                self.exit(self.exit_code())

        self.push_screen(ConfirmModal(question, yes="Quit"), decided)

    async def action_copy_or_quit(self) -> None:
        """ctrl+c: copy the selection, as in Textual, else quit as `q` does. Textual's own
        ctrl+c only hints at ctrl+q, and an input that has the focus would swallow it."""
        focused = self.focused
        selected = getattr(focused, "selected_text", None) or self.screen.get_selected_text()
        if selected:
            self.copy_to_clipboard(selected)
        else:
            await self.run_action("quit_cockpit")

    def action_help(self) -> None:
        from cockpit.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def exit_code(self) -> int:
        """The contract's exit codes, from what the UI saw."""
        statuses = [agent.status for agent in self.view.agents.values()]
        if statuses and all(status is AgentStatus.FINISHED for status in statuses):
            return 0
        if any(status in (AgentStatus.FAILED, AgentStatus.STOPPED) for status in statuses):
            return 1
        return 130  # quit while agents ran: interrupted, resumable

    async def command(self, call: Callable[[], Any], done: str) -> None:
        """Run a supervisor command; tell the user what happened, never raise into the UI."""
        try:
            await call()
        except CommandError as error:
            self.notify(str(error), severity="warning", markup=False)
        except LogError as error:
            self.notify(str(error), title="Event log failed", severity="error", markup=False)
        else:
            self.notify(done, markup=False, timeout=2)


class _HangupSafe:
    """Textual's output stream (stderr), dropping writes once the terminal has hung up.

    When the terminal's window is closed every write fails (EIO). Textual's writer thread dies
    on the first one, and the app then blocks for ever on the thread's full queue on its way
    out after the SIGHUP. Nobody can see the screen any more, so nothing is lost."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        with contextlib.suppress(OSError):
            self._stream.write(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@cache
def _hangup_safe_driver() -> type[Driver]:
    from textual.drivers.linux_driver import LinuxDriver

    class HangupSafeDriver(LinuxDriver):
        def __init__(self, app: App[Any], **options: Any) -> None:
            super().__init__(app, **options)
            if self._file is not None:
                self._file = _HangupSafe(self._file)  # type: ignore[assignment]

    return HangupSafeDriver


def make_app(crew: CrewConfig, db: Path, **options: Any) -> CockpitApp:
    """The single way to build the app, for the CLI, the tests and the screenshots."""
    app = CockpitApp(crew, db, **options)
    if crew.keymap:
        app.set_keymap(dict(crew.keymap))
    return app
