"""In-process event bus: the engine publishes, subscribers (bot alerts, CLI printer) read queues.

Publishing never waits: each subscriber has its own unbounded queue, so a slow or broken
subscriber cannot stall the engine.
"""

from __future__ import annotations

import asyncio
import logging

from engine.events import Event

log = logging.getLogger(__name__)


class EventBus:
    """Fan-out of engine events to subscriber queues."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Event]] = []

    def subscribe(self) -> asyncio.Queue[Event]:
        """A new queue that receives every event published from now on."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        """Stop delivering to ``queue``."""
        if queue in self._queues:
            self._queues.remove(queue)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber (never blocks)."""
        for queue in self._queues:
            queue.put_nowait(event)
