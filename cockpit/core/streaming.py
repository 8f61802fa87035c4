"""Reading one stream: chunks merged into one event per frame, and a stall watchdog.

Both sit on the hot path (a call per chunk), so each costs a float store or a list append per
token, not a timer or an event.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cockpit.core import events as ev

if TYPE_CHECKING:
    from cockpit.core.port import AgentPort

TOKEN_WINDOW = 1 / 30
"""Chunks that arrive within one UI frame of each other become one token event: the log, the
bus and every view then cost per frame, not per token, when Ollama streams fast."""
QUEUE_TIMEOUT_FACTOR = 10
"""Before the first chunk we wait this many stall timeouts: Ollama serves one request per model
at a time by default (OLLAMA_NUM_PARALLEL=1) and sends nothing while a request is queued."""


class Coalescer:
    """Merges an agent's chunks into one token (or thinking) event per TOKEN_WINDOW.

    The first chunk after a quiet spell is emitted at once, so a slow model shows no delay; a
    timer emits what is left at the end of the window. Content and thinking never merge with
    each other, so their order is kept.
    """

    def __init__(self, port: AgentPort) -> None:
        self.emit_text = port.emit_text
        self.loop = asyncio.get_running_loop()
        self.kind: type[ev.TokenStreamed] | type[ev.ThinkingStreamed] = ev.TokenStreamed
        self.parts: list[str] = []
        self.last_emit = -TOKEN_WINDOW
        self.timer: asyncio.TimerHandle | None = None

    def add(self, kind: type[ev.TokenStreamed] | type[ev.ThinkingStreamed], text: str) -> None:
        if kind is not self.kind:
            self.flush()
            self.kind = kind
        self.parts.append(text)
        if self.loop.time() - self.last_emit >= TOKEN_WINDOW:
            self.flush()
        elif self.timer is None:
            self.timer = self.loop.call_at(self.last_emit + TOKEN_WINDOW, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.parts:
            parts, self.parts = self.parts, []
            self.emit_text(self.kind, "".join(parts), len(parts))
            self.last_emit = self.loop.time()


class StallWatchdog:
    """Cancels the current task when no chunk has arrived for `stall_timeout` seconds.

    A chunk only records the time; the timer re-arms itself when it fires early. That keeps the
    per-token cost to one float store instead of a timer reschedule per chunk.
    """

    def __init__(self, stall_timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.stall_timeout = stall_timeout
        self.received = False
        self.last = self.loop.time()
        self.fired: float = 0.0
        """The silence, in seconds, that made the watchdog cancel the request (0: it did not)."""
        self._handle = self.loop.call_at(self.last + stall_timeout * QUEUE_TIMEOUT_FACTOR,
                                         self._check)

    def chunk(self) -> float:
        """Record a chunk's arrival; returns the loop time. The first chunk ends the queue
        wait, so the timer moves from 10 stall timeouts after the request to one after it."""
        self.last = now = self.loop.time()
        if not self.received:
            self.received = True
            self._handle.cancel()
            self._handle = self.loop.call_at(now + self.stall_timeout, self._check)
        return now

    def _check(self) -> None:
        limit = self.stall_timeout if self.received else self.stall_timeout * QUEUE_TIMEOUT_FACTOR
        due = self.last + limit
        if self.loop.time() < due:
            self._handle = self.loop.call_at(due, self._check)
            return
        self.fired = limit
        if self.task is not None:
            self.task.cancel()

    def disarm(self) -> None:
        self._handle.cancel()
