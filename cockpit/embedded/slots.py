"""Per-model generation slots, as Ollama's scheduler hands them out (REFERENCE.md A.8).

``OLLAMA_NUM_PARALLEL`` requests run per model; later ones wait in strict FIFO order, and once
``OLLAMA_MAX_QUEUE`` are waiting the next gets a 503. A client that leaves the queue gives up
its place, and one that leaves just after being handed a slot passes the slot on.
"""

from __future__ import annotations

import asyncio
from collections import deque

from cockpit.embedded.backend import BackendError

BUSY = "server busy, please try again.  maximum pending requests exceeded"


class Slots:
    """Per-model generation slots, strict FIFO; hand-over on release so nobody can barge."""

    def __init__(self, parallel: int, max_queue: int) -> None:
        self.parallel, self.max_queue, self.waiting = parallel, max_queue, 0
        self.free: dict[str, int] = {}
        self.queues: dict[str, deque[asyncio.Future[None]]] = {}

    async def acquire(self, key: str) -> None:
        queue = self.queues.setdefault(key, deque())
        free = self.free.setdefault(key, self.parallel)
        if free > 0 and not queue:
            self.free[key] = free - 1
            return
        if self.waiting >= self.max_queue:
            raise BackendError(BUSY, 503)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        self.waiting += 1
        try:
            await fut
        except asyncio.CancelledError:  # the client left while waiting
            if fut.done() and not fut.cancelled():
                self.release(key)  # it had just been handed a slot: pass it on
            elif fut in queue:
                queue.remove(fut)
            raise
        finally:
            self.waiting -= 1

    def release(self, key: str) -> None:
        queue = self.queues[key]
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free[key] += 1
