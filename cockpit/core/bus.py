"""Fan-out of events to their consumers: the log writer, the UI bridge, the headless printer.

Publishing is synchronous and never drops: every sink sees every event in the same order as the
supervisor stamped it. Slow consumers batch instead of blocking the producer: a `Subscription`
hands over everything that has queued up since its last read in one go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cockpit.core.events import BaseEvent

Sink = Callable[[BaseEvent], None]


class Subscription:
    """A queue of events for one consumer. `None` marks the end of the stream."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[BaseEvent | None] = asyncio.Queue()
        self.closed = False

    def put(self, event: BaseEvent | None) -> None:
        self._queue.put_nowait(event)

    async def batch(self) -> list[BaseEvent]:
        """Wait for at least one event, then take all that are queued. [] means the bus closed."""
        if self.closed:
            return []
        items = [await self._queue.get()]
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        if None in items:
            self.closed = True
            items = items[: items.index(None)]
        return [item for item in items if item is not None]

    def pending(self) -> int:
        return self._queue.qsize()

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

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
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
