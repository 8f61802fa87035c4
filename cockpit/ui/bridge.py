"""The one path from the event bus into the UI: batched per frame, never per token.

A single app worker drains the bus. After the first event of a frame it waits out the rest of
the frame (1/30 s), takes everything that queued meanwhile, and hands the whole batch to the app,
which folds it and updates the panes inside one `batch_update()`. Eight agents streaming at full
speed therefore cost thirty UI updates a second, not thousands (textual#2187).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cockpit.core.bus import Subscription
from cockpit.core.events import BaseEvent, ThinkingStreamed, TokenStreamed

FRAME = 1 / 30
STREAMED = (TokenStreamed, ThinkingStreamed)
"""Only streamed text waits for the next frame; an intervention or a status change is shown
at once, so a key press never waits out a frame."""


class Bridge:
    def __init__(self, subscription: Subscription,
                 apply: Callable[[list[BaseEvent]], None], frame: float = FRAME) -> None:
        self.subscription = subscription
        self.apply = apply
        self.frame = frame
        self.frames = 0
        """Batches applied so far (tests and the benchmark read it)."""

    async def run(self) -> None:
        """Until the bus closes."""
        loop = asyncio.get_running_loop()
        next_frame = 0.0
        while batch := await self.subscription.batch():
            wait = next_frame - loop.time()
            if wait > 0 and not any(type(e) not in STREAMED for e in batch):
                await asyncio.sleep(wait)
                batch += self.subscription.take()
            next_frame = loop.time() + self.frame
            self.apply(batch)
            self.frames += 1
