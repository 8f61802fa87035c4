"""The cockpit app: one viewer of one session, whatever feeds it.

The app shows a session and sends a person's commands; it owns neither. A `Source`
(core/sources.py) feeds it: a supervisor in this process, a session another process owns (its
log tailed, its commands sent over a socket), or a replay. The UI's picture of the session is
its own fold of the bus (`view`), fed only by the bridge, so the TUI shows exactly what the log
records, live, attached or replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Callable, Iterable, Iterator
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
from cockpit.core.bus import EventBus
from cockpit.core.channel import ControlError
from cockpit.core.commands import CommandError, SessionCommands
from cockpit.core.config import CrewConfig
from cockpit.core.eventlog import EventLog, LogError
from cockpit.core.sources import OwnedSource, Source
from cockpit.core.state import AgentStatus, SessionState
from cockpit.ui.bridge import Bridge, urgent
from cockpit.ui.notifier import Notifier
from cockpit.ui.screens.approval_inbox import ApprovalInboxScreen
from cockpit.ui.screens.cockpit import CockpitScreen
from cockpit.ui.themes import ThemeError, load_theme, load_themes, theme_dirs, watch_themes
from cockpit.ui.widgets.agent_pane import Segment

if TYPE_CHECKING:
    from textual.driver import Driver

    from cockpit.core.supervisor import Supervisor

DEFAULT_THEME = "cockpit-dark"
PALETTE_SKIP = {"cockpit.focus_next", "cockpit.focus_previous",
                *(f"cockpit.focus_{n}" for n in range(1, 10))}
EXIT_SIGNALS = {getattr(signal, name): code for name, code in
                (("SIGTERM", 130), ("SIGINT", 130), ("SIGHUP", 129)) if hasattr(signal, name)}
"""Signals that end the TUI as a confirmed quit would (nobody may be there to confirm), with
the exit code each gives (DESIGN.md). Ctrl-C typed in the TUI is a key, not a signal."""


class CockpitApp(App[int]):
    """Shows one session, fed by `source`.

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
        source: Source,
        *,
        theme: str | None = None,
        clock: Callable[[], float] = time.time,
        watch_themes: bool = True,
        theme_directories: list[Path] | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.crew: CrewConfig = source.crew
        self.db = source.db
        self.clock = clock
        self.view = source.initial_view()
        """The session as the UI has seen it: a fold of every event the bridge delivered."""
        self.events_applied: Signal[list[ev.BaseEvent]] = Signal(self, "events-applied")
        """Published once per frame with the frame's events (inspector, event log view)."""
        self.log_store: EventLog | None = None
        self.bridge: Bridge | None = None
        self.cockpit: CockpitScreen
        self.stop_crew = source.quit == "confirm"
        """On the way out, stop the crew too (else it goes on without this viewer)."""
        self.detached = False
        """The viewer left a crew that goes on (the CLI says how to come back)."""
        self.owner_gone: str | None = None
        """Why the session's owner is gone, once it is (the crew no longer runs)."""
        self.notifier = Notifier(self)
        """Rings and notifies for live endings and approvals (`[notify]`)."""
        self._stack = contextlib.AsyncExitStack()
        self._theme_directories = theme_directories or theme_dirs()
        self._watch_themes = watch_themes
        self._requested_theme = theme
        self._load_themes()

    @property
    def commands(self) -> SessionCommands | None:
        """Where interventions go; None when nothing can be commanded (a replay, or before
        the session started, or once its owner died)."""
        return None if self.owner_gone is not None else self.source.commands

    @property
    def session(self) -> str | None:
        return self.source.session

    @property
    def supervisor(self) -> Supervisor | None:
        """The supervisor when the session runs in this process (tests reach in with it)."""
        return self.source.supervisor if isinstance(self.source, OwnedSource) else None

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
        if self.source.plays:
            from cockpit.ui.replay_app import ReplayScreen

            self.cockpit = ReplayScreen(self.crew)
        else:
            self.cockpit = CockpitScreen(self.crew)
        return self.cockpit

    async def on_mount(self, event: events.Mount) -> None:
        try:
            log = await self._stack.enter_async_context(
                EventLog.open(self.db, readonly=self.source.readonly))
        except LogError as error:
            self.exit(2, return_code=2, message=f"cockpit: {error}")
            return
        self.log_store = log
        await self.notifier.start(log)  # before the source feeds its history
        bus = EventBus()
        self.bridge = bridge = Bridge(bus.subscribe(urgent), self.apply_events,
                                      self.call_after_refresh)
        self.run_worker(bridge.run(), group="bridge", exclusive=True,
                        description="event bus -> UI, one batch per frame", exit_on_error=True)
        self.run_worker(self.source.run(log, bus, self), group="session", exclusive=True,
                        description="the session's events", exit_on_error=False)
        if self._watch_themes:
            self.run_worker(watch_themes(self._theme_directories, self.reload_theme),
                            group="themes", exclusive=True, description="theme hot reload",
                            exit_on_error=False)
        for problem in self.theme_errors:
            self.notify(problem, title="Theme not loaded", severity="warning", markup=False)
        await self.cockpit.source_mounted()
        self.call_after_refresh(gc.freeze)

    # -- what the source says (core/sources.Viewer) --------------------------------------------

    def source_failed(self, message: str) -> None:
        """The session cannot go on or be shown (the log gave up, a tool server did not
        start): exit 2 with the message, which says what was not written and where it went."""
        self.exit(2, return_code=2, message=message)

    def owner_lost(self, message: str) -> None:
        """The owner process died: nothing can be commanded; the banner says how to resume."""
        self.owner_gone = message
        self.cockpit.show_owner_lost(message)
        self.cockpit.refresh_bindings()

    def owner_back(self) -> None:
        self.owner_gone = None
        self.cockpit.show_owner_back()
        self.cockpit.refresh_bindings()

    def source_ready(self) -> None:
        self.cockpit.source_ready()

    def show_state_at(self, state: SessionState, index: int) -> None:
        self.cockpit.show_state_at(state, index)

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
                loop.add_signal_handler(signum, self._exit_on_signal, code, signum)
                installed.append(signum)
        try:
            yield
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def _exit_on_signal(self, code: int, signum: int) -> None:
        if self.return_code is None:  # the first reason to exit wins (a log error's 2, a `y`)
            self.stop_crew = self.source.stops_on(signum)
            self.detached = not self.stop_crew and self.source.quit == "detach"
            self.exit(code)

    async def on_unmount(self, event: events.Unmount) -> None:
        """Leave the session: stop the crew if asked (the source knows how), and close the
        log."""
        self.cockpit.ready = False  # the panes are going away; the view still folds
        await self.notifier.aclose()
        try:
            try:
                await self.source.close(self.stop_crew)
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
        crew_news: list[ev.CrewUpdated | ev.CrewRejected] = []
        for event in events:
            view.apply(event)
            agent = event.agent
            if agent is None:
                if isinstance(event, ev.CrewUpdated | ev.CrewRejected):
                    crew_news.append(event)
                elif isinstance(event, ev.SessionResumed):  # where the crash was, in each
                    for name in view.agents:                 # pane that goes on from it
                        if view.goes_on(name, event.only):
                            segments.setdefault(name, []).append(("event", event))
                            concerned.add(name)
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
            for news in crew_news:
                self._crew_news(news)
            if self.cockpit.ready:
                self.cockpit.show_events(segments, restarted, ended,
                                         concerned if early else None)
            self.update_title()
            self.events_applied.publish(events)
        self.notifier.frame(events)

    def _crew_news(self, event: ev.CrewUpdated | ev.CrewRejected) -> None:
        """The crew file was edited: new agents get a pane; an edit that did not validate is
        shown (file, line and field), and the crew goes on as it was."""
        if isinstance(event, ev.CrewRejected):
            self.notify(event.error, title="Crew file not applied: the crew goes on unchanged",
                        severity="error", markup=False, timeout=20)
            return
        self.crew = CrewConfig.model_validate(event.config)
        self.cockpit.crew_changed(self.crew, event.added)
        if event.diff:
            self.notify("\n".join(event.diff[:8]), title="Crew file applied", markup=False,
                        timeout=8)

    def update_title(self) -> None:
        counts: dict[AgentStatus, int] = {}
        for agent in self.view.agents.values():
            counts[agent.status] = counts.get(agent.status, 0) + 1
        running = sum(counts.get(s, 0) for s in (AgentStatus.STREAMING, AgentStatus.THINKING,
                                                   AgentStatus.RETRYING, AgentStatus.STALLED))
        parts = [f"{running} streaming", f"{counts.get(AgentStatus.FINISHED, 0)} finished",
                 f"{counts.get(AgentStatus.FAILED, 0)} failed"]
        for status in (AgentStatus.QUEUED, AgentStatus.CALLING, AgentStatus.WAITING_HOST,
                       AgentStatus.PAUSED, AgentStatus.STOPPED, AgentStatus.WAITING):
            if counts.get(status):
                parts.append(f"{counts[status]} {status}")
        if waiting := len(self.view.approvals):  # first: the one part that asks for a person
            calls = "1 call waits" if waiting == 1 else f"{waiting} calls wait"
            parts.insert(0, f"⏸ {calls} for approval "
                            f"({self.key_display('cockpit.approvals', 'a')})")
        self.title = self.cockpit.title_text()
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
        from cockpit.ui.screens.modals import ConfirmModal, LeaveModal

        running = self.agents_running()
        if self.source.quit == "free":
            self.exit(0)  # nothing runs and nothing is written: no need to ask
            return
        if not running or self.owner_gone is not None:
            self.exit(self.exit_code())
            return
        names = ", ".join(running)
        if self.source.quit == "detach":
            def chosen(choice: str | None) -> None:
                if choice is not None:
                    self.stop_crew = choice == "stop"
                    self.detached = not self.stop_crew
                    self.exit(0 if self.detached else 130)

            self.push_screen(LeaveModal(
                f"{len(running)} agent(s) still running: {names}.\n"
                "Detach and the crew goes on without this window (`cockpit attach "
                f"{self.session}` comes back), or stop it: the agents are cut off where they "
                "are, the log keeps everything and the session stays resumable."), chosen)
            return
        question = (f"{len(running)} agent(s) still running: {names}.\n"
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
        """Run a command on the session; tell the user what happened, never raise into the
        UI."""
        try:
            await call()
        except CommandError as error:
            self.notify(str(error), severity="warning", markup=False)
        except LogError as error:
            self.notify(str(error), title="Event log failed", severity="error", markup=False)
        except ControlError as error:
            self.notify(str(error), title="Session not reached", severity="error",
                        markup=False)
        else:
            self.notify(done, markup=False, timeout=2)
            self.source.command_done()


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


APP_OPTIONS = frozenset({"theme", "clock", "watch_themes", "theme_directories"})


def make_app(crew: CrewConfig, db: Path, **options: Any) -> CockpitApp:
    """The viewer on a session run in this process (tests, screenshots, benchmarks); the
    options are `OwnedSource`'s and the app's."""
    app_options = {k: v for k, v in options.items() if k in APP_OPTIONS}
    source_options = {k: v for k, v in options.items() if k not in APP_OPTIONS - {"clock"}}
    if "resume_only" in source_options:
        source_options["only"] = source_options.pop("resume_only")
    return viewer(OwnedSource(crew, db, **source_options), **app_options)


def viewer(source: Source, **options: Any) -> CockpitApp:
    """The single way to build the app, whatever feeds it."""
    app = CockpitApp(source, **options)
    if source.crew.keymap:
        app.set_keymap(dict(source.crew.keymap))
    return app
