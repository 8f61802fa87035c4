"""The one path from the event bus into the UI: batched per frame, never per token.

A single app worker drains the bus. After the first event of a frame it waits out the rest of
the frame, takes everything that queued meanwhile, and hands the whole batch to the app, which
folds it and updates the panes inside one `batch_update()`. Eight agents streaming at full speed
therefore cost a few UI updates a second, not thousands (textual#2187).

The frame adapts. Each batch is timed from `apply` until Textual has drawn it; the next frame
starts no sooner than `COST_SHARE` times that later. With a quiet machine a frame is 1/30 s.
When redrawing eight busy panes takes 30 ms on a loaded loop, frames stretch (up to
`SLOWEST_FRAME`) so drawing never takes more than about a quarter of the loop from the streams
and the keys. Text then arrives in bigger steps; nothing is dropped.

Urgent events (anything but streamed text: a pause, a finish) do not wait for the frame. Such
an early batch is applied at once and marked early, so the app can draw just the agents it
concerns; the rest of the text follows at the frame that was due anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from cockpit.core.bus import Subscription
from cockpit.core.events import BaseEvent, ThinkingStreamed, TokenStreamed

FRAME = 1 / 30
SLOWEST_FRAME = 0.25
COST_SHARE = 4
"""A frame lasts at least this many times what applying and drawing the last one took."""
STREAMED = (TokenStreamed, ThinkingStreamed)


def urgent(event: BaseEvent) -> bool:
    """Only streamed text waits for the next frame. A status change (a pause, a finish, a wait
    for an unreachable host) is drawn at once, for just the agent it concerns; so is a
    session-level event such as `log_stuck`, whose banner must not wait for text to arrive
    (while the log is stuck every agent is paused, so no text may come at all)."""
    return type(event) not in STREAMED


class Bridge:
    def __init__(self, subscription: Subscription,
                 apply: Callable[[list[BaseEvent], bool], None],
                 after_draw: Callable[[Callable[[], None]], object] | None = None,
                 frame: float = FRAME) -> None:
        self.subscription = subscription
        self.apply = apply
        """Called with a batch and whether it is early: urgent events before the frame is due,
        which the app may draw on their own, leaving the other agents' text for the frame."""
        self.after_draw = after_draw
        """Calls back once the screen shows what `apply` changed (`call_after_refresh`)."""
        self.fastest = frame
        self.frame = frame
        """The current frame length, in seconds."""
        self.frames = 0
        """Batches applied so far (tests and the benchmark read it)."""
        self._generation = 0

    def discard(self) -> None:
        """Drop everything not yet applied (a replay seek replaces the state wholesale)."""
        self._generation += 1
        self.subscription.take()

    async def run(self) -> None:
        """Until the bus closes."""
        loop = asyncio.get_running_loop()
        subscription = self.subscription
        next_frame = 0.0
        owed = False
        """An early frame drew only the agents it was about; the rest is due at `next_frame`."""
        while True:
            if owed:
                await subscription.until_any(next_frame - loop.time())
                batch = subscription.take()
            elif not (batch := await subscription.batch()):
                return
            generation = self._generation
            wait = next_frame - loop.time()
            if wait > 0 and not any(urgent(e) for e in batch):
                await subscription.until_urgent(wait)
                if generation != self._generation:  # a seek: only what came after it counts
                    batch = subscription.take()
                else:
                    batch += subscription.take()
            started = loop.time()
            owed = started < next_frame
            self.apply(batch, owed)
            self.frames += 1
            if self.after_draw is not None:
                self.after_draw(partial(self._drawn, loop, started))
            if not owed:
                next_frame = started + self.frame

    def _drawn(self, loop: asyncio.AbstractEventLoop, started: float) -> None:
        cost = loop.time() - started
        self.frame = min(SLOWEST_FRAME, max(self.fastest, cost * COST_SHARE))
