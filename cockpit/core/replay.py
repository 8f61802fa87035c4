"""Replaying a logged session: an index for seeking, and a player that re-publishes the events
on a bus with their original timing, so the TUI shows a replay through the same bridge as a
live run.

The log is only read, never written. For a session of a million events, the index holds just
each event's id and time (16 bytes apiece); events are read from SQLite a page at a time, and
the state at any point is rebuilt from the nearest snapshot (one every `SNAPSHOT_EVERY` events,
taken as the index is built) by folding the events after it with the live reducer.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import time
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TextIO

from cockpit.core import events as ev
from cockpit.core.bus import EventBus
from cockpit.core.eventlog import EventLog
from cockpit.core.logschema import decode
from cockpit.core.state import SessionState
from cockpit.core.transcript import By, Transcript, agent_names

SNAPSHOT_EVERY = 20_000
PAGE = 5_000
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

@dataclass
class Marker:
    index: int
    ts: float
    kind: str
    agent: str | None


@dataclass
class Timeline:
    """One session, indexed: `ids[i]` and `times[i]` for event i, markers, snapshots."""

    log: EventLog
    session: str
    ids: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))
    markers: list[Marker] = field(default_factory=list)
    snapshots: list[tuple[int, SessionState]] = field(default_factory=list)
    """(events folded, state after them), every SNAPSHOT_EVERY events; [0] is the empty state."""

    @classmethod
    async def load(cls, log: EventLog, session: str) -> Timeline:
        """Index the session: one pass that also takes the snapshots."""
        timeline = cls(log, session)
        state = SessionState()
        timeline.snapshots.append((0, copy.deepcopy(state)))
        async for index, event in timeline._read(0):
            timeline.ids.append(event.id or 0)
            timeline.times.append(event.ts)
            kind = event.marker
            if kind is not None:
                timeline.markers.append(Marker(index, event.ts, kind, event.agent))
            state.apply(event)
            if (index + 1) % SNAPSHOT_EVERY == 0:
                timeline.snapshots.append((index + 1, copy.deepcopy(state)))
        return timeline

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def start(self) -> float:
        return self.times[0] if self.times else 0.0

    @property
    def end(self) -> float:
        return self.times[-1] if self.times else 0.0

    def index_at(self, ts: float) -> int:
        """How many events happened at or before `ts`."""
        return bisect.bisect_right(self.times, ts)

    async def _read(self, start: int, stop: int | None = None,
                    ) -> AsyncIterator[tuple[int, ev.BaseEvent]]:
        """Events `start` .. `stop` (exclusive) with their indexes, a page at a time."""
        after = self.ids[start - 1] if 0 < start <= len(self.ids) else 0
        index = start
        while stop is None or index < stop:
            limit = PAGE if stop is None else min(PAGE, stop - index)
            rows = await self.log.rows(self.session, after, limit)
            for row in rows:
                yield index, decode(row)
                index += 1
            if len(rows) < limit:
                return
            after = rows[-1][0]

    async def events(self, start: int, stop: int) -> list[ev.BaseEvent]:
        return [event async for _, event in self._read(start, stop)]

    async def state_at(self, index: int) -> SessionState:
        """The state after the first `index` events: a snapshot, then the reducer."""
        index = max(0, min(index, len(self)))
        at, snapshot = self.snapshots[bisect.bisect_right(
            [s[0] for s in self.snapshots], index) - 1]
        state = copy.deepcopy(snapshot)
        async for _, event in self._read(at, index):
            state.apply(event)
        return state


class Player:
    """Plays a timeline onto a bus with the original timing, scaled by `speed`.

    The player never touches the log's session: it only reads. `seek` rebuilds the state at
    the target and hands it to `on_seek` (the app redraws from it); playing continues there.
    """

    def __init__(self, timeline: Timeline, bus: EventBus,
                 on_seek: Callable[[SessionState, int], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeline = timeline
        self.bus = bus
        self.on_seek = on_seek
        self.clock = clock
        self.cursor = 0
        """Events published so far (the next one to play is `cursor`)."""
        self.speed = 1.0
        self.playing = True
        self._moves = 0
        """Seeks and steps so far: `run` drops a page it read while the cursor moved."""
        self._changed = asyncio.Event()
        self._anchor = (clock(), timeline.start)  # (wall clock, session time) at last change

    @property
    def position(self) -> float:
        """Session time at the play head (where the last seek put it, while paused)."""
        wall, at = self._anchor
        if self.playing and self.cursor < len(self.timeline):
            return min(at + (self.clock() - wall) * self.speed, self.timeline.end)
        if self.cursor >= len(self.timeline):
            return self.timeline.end
        return at

    def _paused_at(self) -> float:
        if self.cursor == 0:
            return self.timeline.start
        return self.timeline.times[self.cursor - 1]

    @property
    def at_end(self) -> bool:
        """Every event has been played."""
        return self.cursor >= len(self.timeline)

    def toggle(self) -> None:
        position = self.position
        self.playing = not self.playing
        self._anchor = (self.clock(), position)
        self._changed.set()

    async def play_pause(self) -> None:
        """`space`: pause or play; at the end, play again from the start."""
        if self.at_end:
            await self.seek_index(0)
            self.playing = True
            self._anchor = (self.clock(), self.timeline.start)
            self._changed.set()
            return
        self.toggle()

    def set_speed(self, speed: float) -> None:
        position = self.position
        self.speed = speed
        self._anchor = (self.clock(), position)
        self._changed.set()

    def faster(self, step: int) -> float:
        """Next speed up (step 1) or down (-1) in SPEEDS; returns it."""
        index = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self.speed))
        self.set_speed(SPEEDS[max(0, min(len(SPEEDS) - 1, index + step))])
        return self.speed

    async def seek(self, ts: float) -> None:
        """Jump to session time `ts`: the state is rebuilt from a snapshot and the reducer."""
        ts = max(self.timeline.start, min(ts, self.timeline.end))
        index = self.timeline.index_at(ts)
        state = await self.timeline.state_at(index)
        self._moves += 1
        self.cursor = index
        self._anchor = (self.clock(), ts)
        self.on_seek(state, index)
        self._changed.set()

    async def seek_index(self, index: int) -> None:
        index = max(0, min(index, len(self.timeline)))
        state = await self.timeline.state_at(index)
        self._moves += 1
        self.cursor = index
        self._anchor = (self.clock(), self._paused_at())
        self.on_seek(state, index)
        self._changed.set()

    async def step(self) -> None:
        """Publish exactly the next event (the player is paused afterwards)."""
        self.playing = False
        self._moves += 1
        if self.cursor < len(self.timeline):
            [event] = await self.timeline.events(self.cursor, self.cursor + 1)
            self._moves += 1
            self.cursor += 1
            self.bus.publish(event)
        self._anchor = (self.clock(), self._paused_at())
        self._changed.set()

    async def run(self) -> None:
        """Play until cancelled; at the end it waits for a seek."""
        while True:
            self._changed.clear()
            if not self.playing or self.cursor >= len(self.timeline):
                await self._changed.wait()
                continue
            due = self.position
            stop = self.timeline.index_at(due)
            if stop > self.cursor:
                moves = self._moves
                page = await self.timeline.events(self.cursor, min(stop, self.cursor + PAGE))
                if moves != self._moves:
                    continue  # a seek or a step moved the cursor while we read: re-read
                for event in page:
                    self.bus.publish(event)
                    self.cursor += 1
                continue
            wait = (self.timeline.times[self.cursor] - due) / self.speed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, min(wait, 0.25)))


async def write_transcript(log: EventLog, session: str, out: TextIO, speed: float = 0.0, *,
                           by: By = "line", colour: bool = False) -> int:
    """The session as `cockpit logs` prints it, on `out`: each agent's reply in whole lines
    prefixed `name | ` (`by` "message": each reply as one block), and what happened to it on
    marked lines. `speed` 0 is as fast as possible; 1 keeps the original timing, a line
    printed when it is complete. Returns the event count.

    The hot path reads raw rows and decodes only the token's text (`Transcript.rows`): this
    is what lets a million-event session print in seconds.
    """
    writer = Transcript(await agent_names(log, session), colour=colour, by=by)
    first: float | None = None
    began = time.monotonic()
    count = 0
    after = 0
    while True:
        rows = await log.rows(session, after, PAGE)
        if speed > 0:
            for row in rows:
                first = row[4] if first is None else first
                ahead = (row[4] - first) / speed - (time.monotonic() - began)
                if ahead > 0.001:
                    out.flush()
                    await asyncio.sleep(ahead)
                _write_lines(out, writer.rows((row,)))
        else:
            _write_lines(out, writer.rows(rows))
        count += len(rows)
        if len(rows) < PAGE:
            _write_lines(out, writer.close())
            return count
        after = rows[-1][0]


def _write_lines(out: TextIO, lines: list[str]) -> None:
    if lines:
        out.write("\n".join(lines) + "\n")
