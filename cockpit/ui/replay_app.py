"""`cockpit replay`: the same viewer, fed by a `ReplaySource` instead of a live session.

The player (`core/replay.py`) publishes logged events on a bus with their original timing,
and the usual bridge shows them, so a replay looks exactly like the live run. This screen adds
what only a player offers: the transport keys and the timeline bar. A seek rebuilds
the state at the target from snapshots and the reducer and redraws the panes from it; the
inspector then shows the board as it was at the cursor. Nothing is written to the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Footer, Static

from cockpit.core.replay import Player, Timeline
from cockpit.core.sources import ReplaySource
from cockpit.core.state import SessionState
from cockpit.core.text import one_line
from cockpit.ui.marks import LABELS, RANK, mark
from cockpit.ui.screens.cockpit import CockpitScreen

if TYPE_CHECKING:
    from cockpit.ui.app import CockpitApp

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
    """The cockpit's panes, with transport keys; nothing here commands the session."""

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
    INBOX_READ_ONLY = ("Replay: the calls that waited at this point of the session. A replay "
                       "decides nothing; decisions are made in the live session.")
    TRANSPORT = {"play_pause", "speed", "seek", "jump", "step"}

    app: CockpitApp

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bar = TimelineBar(None)
        self._at_end = False

    @property
    def player(self) -> Player | None:
        """Set once the log is indexed (a large session takes seconds)."""
        return self.app.source.player

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "follow":
            return False  # `end` is the end of the replay
        if action in self.TRANSPORT and self.player is None:
            return None  # still indexing the log
        return super().check_action(action, parameters)

    async def source_mounted(self) -> None:
        await self.mount(self.bar, before=self.query_one(Footer))
        self.notify("indexing the log…", timeout=2)

    def source_ready(self) -> None:
        """The log is indexed: the transport keys apply and the bar shows the timeline."""
        player = self.player
        assert player is not None
        self.bar.timeline = player.timeline
        self.app.clock = lambda: player.position  # panes count elapsed time in session time
        self.refresh_bindings()
        self.set_interval(0.1, self.refresh_bar)

    async def action_play_pause(self) -> None:
        """Play or pause; at the end, play again from the start."""
        assert self.player is not None
        await self.player.play_pause()
        self.refresh_bar()

    def action_speed(self, step: int) -> None:
        assert self.player is not None
        speed = self.player.faster(step)
        self.notify(f"{speed:g}×", timeout=1)
        self.refresh_bar()

    async def action_seek(self, seconds: float) -> None:
        player = self.player
        assert player is not None
        await player.seek(player.position + seconds)

    async def action_jump(self, where: int) -> None:
        player = self.player
        assert player is not None
        await player.seek_index(len(player.timeline) if where else 0)

    async def action_step(self) -> None:
        assert self.player is not None
        await self.player.step()
        self.refresh_bar()

    def refresh_bar(self) -> None:
        player = self.player
        if player is None:
            return
        state = ("▶" if player.playing else "⏸") + f" {player.speed:g}×"
        if player.cursor >= len(player.timeline):
            state = "■ end"
            if not self._at_end:  # nothing more will come: show the held-back last words
                for pane in self.panes.values():
                    pane.flush_pending()
        self._at_end = player.cursor >= len(player.timeline)
        self.bar.show(player.position, f"{state}  event {player.cursor}/{len(player.timeline)}")

    def show_state_at(self, state: SessionState, index: int) -> None:
        """A seek: the view becomes the state at the cursor, and every pane is redrawn."""
        app = self.app
        assert app.bridge is not None and self.player is not None
        app.bridge.discard()
        self.forget_held()  # text an early frame kept back belongs to the old cursor
        app.view = state
        now = state.last_ts or self.player.timeline.start
        with app.batch_update():
            for name, pane in self.panes.items():
                pane.restart()
                # Before the first event (`home`) no agent exists yet: each pane shows its
                # agent as the crew declares it, before it started.
                agent = state.agents.get(name) or self._composed_state(self.crew, name)
                pane.append(agent.output if agent.output is not None else agent.partial)
                pane.flush_pending()
                pane.show_state(agent, now)
            app.update_title()
            app.events_applied.publish([])
        self.refresh_bar()

    def title_text(self) -> str:
        return f"cockpit replay · {one_line(self.crew.name, 60)} · {self.app.session}"


async def open_replay(db: Path, ref: str, *, speed: float = 1.0, **options: Any) -> CockpitApp:
    """The viewer on a replay of session `ref` of log `db` (an id, a prefix, `last`); a
    LogError if it cannot be read."""
    from cockpit.ui.app import viewer

    return viewer(await ReplaySource.open(db, ref, speed), watch_themes=False, **options)

