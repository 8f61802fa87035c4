"""`cockpit replay`: the same cockpit, fed from the log instead of a supervisor.

The player (`core/replay.py`) publishes logged events on a bus with their original timing,
and the usual bridge shows them, so a replay looks exactly like the live run. A seek rebuilds
the state at the target from snapshots and the reducer and redraws the panes from it; the
inspector then shows the board as it was at the cursor. Nothing is written to the log.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from cockpit.core.bus import EventBus
from cockpit.core.config import CrewConfig
from cockpit.core.eventlog import EventLog, LogError
from cockpit.core.replay import Player, Timeline
from cockpit.core.state import SessionState
from cockpit.ui.app import CockpitApp
from cockpit.ui.bridge import Bridge
from cockpit.ui.marks import LABELS, RANK, mark
from cockpit.ui.screens.cockpit import CockpitScreen

SEEK_STEP = 5.0


class TimelineBar(Static):
    """Where the replay is: a bar with the play head, markers, elapsed and total time."""

    DEFAULT_CSS = """
    TimelineBar { height: 2; padding: 0 1; background: $boost; }
    """

    def __init__(self, timeline: Timeline | None) -> None:
        super().__init__(id="timeline")
        self.timeline = timeline
        """None while the log is being indexed."""
        self.position = 0.0
        self.state_text = ""

    def show(self, position: float, state_text: str) -> None:
        self.position, self.state_text = position, state_text
        self.update(self.render_bar())

    def render_bar(self) -> Text:
        timeline = self.timeline
        if timeline is None:
            return Text("indexing the log…", style="dim")
        width = max(10, self.size.width - 2 if self.size.width else 100)
        start = timeline.start
        span = max(1e-9, timeline.end - start)

        def column(ts: float) -> int:
            return min(width - 1, int((ts - start) / span * (width - 1)))

        head = column(self.position)
        cells: list[tuple[str, str]] = [("━" if i < head else "─", "") for i in range(width)]
        ranks: dict[int, int] = {}
        kinds: set[str] = set()
        for marker in timeline.markers:
            at, rank = column(marker.ts), RANK.get(marker.kind, len(RANK))
            kinds.add(marker.kind)
            if rank < ranks.get(at, len(RANK) + 1):  # a failure is never hidden by a tool call
                ranks[at] = rank
                cells[at] = mark(marker.kind)
        cells[head] = ("●", "bold")
        text = Text(no_wrap=True)
        for glyph, style in cells:
            text.append(glyph, style=style)
        elapsed = self.position - start
        text.append(f"\n{self.state_text}  {_clock(elapsed)} / {_clock(span)} ", style="dim")
        for kind in sorted(kinds, key=lambda k: RANK.get(k, len(RANK))):
            glyph, colour = mark(kind)
            text.append(" ")
            text.append(glyph, style=colour)
            text.append(f" {LABELS.get(kind, kind)}", style="dim")
        return text


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ReplayScreen(CockpitScreen):
    """The cockpit's panes, with transport keys instead of interventions."""

    BINDINGS = [
        Binding("space", "play_pause", "Play/pause", id="replay.toggle"),
        Binding("plus,equals_sign", "speed(1)", "Faster", id="replay.faster"),
        Binding("minus", "speed(-1)", "Slower", id="replay.slower"),
        Binding("left", "seek(-5)", "-5 s", id="replay.back"),
        Binding("right", "seek(5)", "+5 s", id="replay.forward"),
        Binding("home", "jump(0)", "Start", id="replay.start"),
        Binding("end", "jump(1)", "End", id="replay.end"),
        Binding("full_stop", "step", "Step", id="replay.step"),
    ]
    INTERVENTIONS = {"pause", "pause_all", "redirect", "stop", "restart", "follow"}
    INBOX_READ_ONLY = ("Replay: the calls that waited at this point of the session. A replay "
                       "decides nothing; decisions are made in the live session.")

    app: ReplayApp

    TRANSPORT = {"play_pause", "speed", "seek", "jump", "step"}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.INTERVENTIONS:
            return False  # a replay changes nothing
        if action in self.TRANSPORT and self.app.player is None:
            return None  # still indexing the log
        return super().check_action(action, parameters)

    def action_play_pause(self) -> None:
        assert self.app.player is not None
        self.app.player.toggle()
        self.app.refresh_bar()

    def action_speed(self, step: int) -> None:
        assert self.app.player is not None
        speed = self.app.player.faster(step)
        self.notify(f"{speed:g}×", timeout=1)
        self.app.refresh_bar()

    async def action_seek(self, seconds: float) -> None:
        player = self.app.player
        assert player is not None
        await player.seek(player.position + seconds)

    async def action_jump(self, where: int) -> None:
        player = self.app.player
        assert player is not None
        await player.seek_index(len(player.timeline) if where else 0)

    async def action_step(self) -> None:
        assert self.app.player is not None
        await self.app.player.step()
        self.app.refresh_bar()


class ReplayApp(CockpitApp):
    """Replays session `ref` of the log at `db`, read-only."""

    @classmethod
    async def open(cls, db: Path, ref: str, **options: Any) -> ReplayApp:
        """The app for session `ref` (an id, a prefix, `last`); LogError if it cannot be read.
        The crew is read first: the panes are laid out for it before the app starts."""
        async with EventLog.open(db, readonly=True) as log:
            session = await log.resolve(ref)
            crew, _ = await log.crew(session)
        return cls(db, session, crew, **options)

    def __init__(self, db: Path, session: str, crew: CrewConfig, *, speed: float = 1.0,
                 theme: str | None = None, **options: Any) -> None:
        super().__init__(crew, db, theme=theme, watch_themes=False, **options)
        self.session = session
        self.speed = speed
        self.sub_title = "replay"
        self.player: Player | None = None
        """Set once the log is indexed (a large session takes seconds)."""
        self._at_end = False

    def get_default_screen(self) -> Screen[Any]:
        self.cockpit = ReplayScreen(self.crew)
        return self.cockpit

    async def on_mount(self, event: events.Mount) -> None:
        event.prevent_default()  # not CockpitApp.on_mount: that would start a live session
        if (attached := await self.attach_log(readonly=True)) is None:
            return
        log, bus, bridge = attached
        self.bar = TimelineBar(None)
        await self.cockpit.mount(self.bar, before=self.cockpit.query_one(Footer))
        self.notify("indexing the log…", timeout=2)
        self.run_worker(self._start(log, bus, bridge), group="player", exclusive=True,
                        description="index the log, then play it", exit_on_error=False)

    async def _start(self, log: EventLog, bus: EventBus, bridge: Bridge) -> None:
        """Index the session (seconds for a big one; keys, quit included, keep working), then
        play it."""
        try:
            self.timeline = await Timeline.load(log, self.session)
        except (LogError, sqlite3.Error, ValueError) as error:
            self.exit(2, return_code=2, message=f"cockpit: {self.db}: cannot replay "
                                                f"{self.session}: {error}")
            return
        self.bar.timeline = self.timeline
        self.player = player = Player(self.timeline, bus, self.show_state_at)
        player.set_speed(self.speed)
        self.clock = lambda: player.position  # panes count elapsed time in session time
        self.cockpit.refresh_bindings()  # the transport keys apply now
        self.run_worker(bridge.run(), group="bridge", exclusive=True,
                        description="replayed events -> UI", exit_on_error=True)
        self.set_interval(0.1, self.refresh_bar)
        await player.run()

    async def on_unmount(self, event: events.Unmount) -> None:
        event.prevent_default()  # no supervisor to shut down
        self.cockpit.ready = False
        await self._stack.aclose()

    def refresh_bar(self) -> None:
        player = self.player
        if player is None:
            return
        state = ("▶" if player.playing else "⏸") + f" {player.speed:g}×"
        if player.cursor >= len(player.timeline):
            state = "■ end"
            if not self._at_end:  # nothing more will come: show the held-back last words
                for pane in self.cockpit.panes.values():
                    pane.flush_pending()
        self._at_end = player.cursor >= len(player.timeline)
        self.bar.show(player.position, f"{state}  event {player.cursor}/{len(player.timeline)}")

    def show_state_at(self, state: SessionState, index: int) -> None:
        """A seek: the view becomes the state at the cursor, and every pane is redrawn."""
        assert self.bridge is not None
        self.bridge.discard()
        self.cockpit.forget_held()  # text an early frame kept back belongs to the old cursor
        self.view = state
        now = state.last_ts or self.timeline.start
        with self.batch_update():
            for name, pane in self.cockpit.panes.items():
                pane.restart()
                agent = state.agents.get(name)
                if agent is None:
                    continue
                pane.append(agent.output if agent.output is not None else agent.partial)
                pane.flush_pending()
                pane.show_state(agent, now)
            self.update_title()
            self.events_applied.publish([])
        self.refresh_bar()

    async def action_quit_cockpit(self) -> None:
        self.exit(0)  # nothing runs and nothing is written: no need to ask

    def update_title(self) -> None:
        super().update_title()
        self.title = f"cockpit replay · {self.crew.name} · {self.session}"
