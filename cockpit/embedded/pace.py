"""A backend at a reading pace: the demo's replies stream slowly enough to be watched.

SmolLM2-135M writes a 200-token reply in three seconds on two cores, so `cockpit demo` was
over before a newcomer could press a key. `Paced` spaces another backend's pieces to at most
`rate` per second per reply (the pieces are tokens, near enough), without changing what they
are. A disconnect still ends the reply at once: the wait is on the server's loop, and the
server's `aclose()` interrupts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from cockpit.embedded.backend import (
    Backend,
    Embeddings,
    Finish,
    Generation,
    ModelEntry,
    Piece,
)


class Paced:
    """`backend`, with each reply's pieces at most `rate` per second."""

    def __init__(self, backend: Backend, rate: float) -> None:
        if rate <= 0:
            raise ValueError("the pace must be positive")
        self.backend = backend
        self.interval = 1.0 / rate

    def models(self) -> list[ModelEntry]:
        return self.backend.models()

    async def embed(self, entry: ModelEntry, inputs: list[str],
                    truncate: bool) -> Embeddings:
        return await self.backend.embed(entry, inputs, truncate)

    async def generate(self, gen: Generation) -> AsyncGenerator[Piece | Finish, None]:
        loop = asyncio.get_running_loop()
        due = loop.time()
        pieces = self.backend.generate(gen)
        try:
            async for piece in pieces:
                if isinstance(piece, Piece):
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)  # the pace itself, not a wait for an event
                    due = max(due, loop.time()) + self.interval
                yield piece
        finally:
            await pieces.aclose()
