"""Fan-out of events to their consumers: the log writer, the UI bridge, the headless printer.

Publishing is synchronous and never drops: every sink sees every event in the same order as the
supervisor stamped it. Slow consumers batch instead of blocking the producer: a `Subscription`
hands over everything that has queued up since its last read in one go.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from cockpit.core.events import BaseEvent

Sink = Callable[[BaseEvent], None]


class Subscription:
    """A queue of events for one consumer, drained a batch at a time."""

    def __init__(self, bus: EventBus, urgent: Callable[[BaseEvent], bool] | None = None) -> None:
        self._bus = bus
        self._items: deque[BaseEvent | None] = deque()  # None marks the end of the stream
        self._ready = asyncio.Event()
        self._urgent_when = urgent
        self._urgent = False
        self._waiter: asyncio.Future[None] | None = None
        self._waiter_urgent_only = False
        self.closed = False

    def put(self, event: BaseEvent | None) -> None:
        self._items.append(event)
        self._ready.set()
        urgent = event is None or (self._urgent_when is not None and self._urgent_when(event))
        self._urgent = self._urgent or urgent
        if urgent or not self._waiter_urgent_only:
            self._wake()

    async def until_any(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, less if any event (or the end) is queued."""
        if not self._items:
            await self._sleep(timeout)

    async def until_urgent(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, less if an urgent event (or the end) is queued."""
        if not self._urgent:
            await self._sleep(timeout, urgent_only=True)

    async def _sleep(self, timeout: float, urgent_only: bool = False) -> None:
        """One future, woken by `put` or a timer: the waiter runs in the very next loop turn
        (`asyncio.wait_for` on an Event takes two, which shows in a key press's latency)."""
        if timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._waiter_urgent_only = urgent_only
        timer = loop.call_later(timeout, self._wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def batch(self) -> list[BaseEvent]:
        """Wait for at least one event, then take all that are queued. [] means the bus closed."""
        while not self._items:
            if self.closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        return self.take()

    def take(self) -> list[BaseEvent]:
        """Whatever is queued now, without waiting."""
        if not self._items:
            return []
        items = list(self._items)
        self._items.clear()
        self._urgent = False
        if None in items:
            self.closed = True
            items = items[: items.index(None)]
        return items  # type: ignore[return-value] # the None marker was cut off above

    def pending(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """Stop receiving; any waiting `batch()` returns what was queued, then []."""
        self._bus.unsubscribe(self)
        self.put(None)


class EventBus:
    """Delivers each published event to every sink and subscription, in order."""

    def __init__(self) -> None:
        self._sinks: list[Sink] = []
        self._subscriptions: list[Subscription] = []

    def add_sink(self, sink: Sink) -> None:
        """A synchronous consumer such as `EventLog.append`; it must not block."""
        self._sinks.append(sink)

    def subscribe(self, urgent: Callable[[BaseEvent], bool] | None = None) -> Subscription:
        """A new consumer. `urgent` marks the events that cut short `until_urgent`."""
        subscription = Subscription(self, urgent)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, event: BaseEvent) -> None:
        for sink in self._sinks:
            sink(event)
        for subscription in self._subscriptions:
            subscription.put(event)

    def close(self) -> None:
        """End every subscription's stream (after what is already queued)."""
        for subscription in list(self._subscriptions):
            subscription.close()
