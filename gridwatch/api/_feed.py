"""In-process fan-out of outage changes to live-stream subscribers.

One LISTEN connection per process; each subscriber gets a bounded queue. A subscriber that
falls ``queue_max`` events behind is dropped (it is told so and may reconnect and re-read
the list); it never slows the others or the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from gridwatch.core.errors import StoreError
from gridwatch.store import Database
from gridwatch.store.outage_feed import listen_outage_changes

log = logging.getLogger(__name__)

RECONNECT_MAX_S = 10.0


class FeedFull(Exception):
    """The process already serves ``subscribers_max`` live streams."""


class Subscription:
    def __init__(self, queue_max: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_max)
        self.dropped = False

    async def next_event(self, timeout_s: float) -> bytes | None:
        """The next encoded event, or None after ``timeout_s`` of quiet."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None


class OutageFeed:
    def __init__(self, db: Database, *, queue_max: int = 256, subscribers_max: int = 5000) -> None:
        self._db = db
        self.queue_max = queue_max
        self.subscribers_max = subscribers_max
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self.generation = 0  # bumps on every change: caches of outage views key on it
        self.listening = asyncio.Event()
        self.dropped_total = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="outage-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.listening.clear()

    def subscribe(self) -> Subscription:
        if len(self._subscribers) >= self.subscribers_max:
            raise FeedFull(f"{self.subscribers_max} live streams already open")
        self.start()
        sub = Subscription(self.queue_max)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Encode once, hand to every subscriber without waiting."""
        self._seq += 1
        self.generation += 1
        data = orjson.dumps(payload)
        event = b"id: %d\nevent: %s\ndata: %s\n\n" % (self._seq, kind.encode(), data)
        slow: list[Subscription] = []
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                slow.append(sub)
        for sub in slow:
            sub.dropped = True
            self._subscribers.discard(sub)
        if slow:
            self.dropped_total += len(slow)
            log.warning("dropped %d slow live-stream subscribers", len(slow))

    async def _run(self) -> None:
        delay_s = 0.5
        while True:
            try:
                async for change in listen_outage_changes(self._db):
                    if change.get("op") == "listening":
                        delay_s = 0.5
                        if self.listening.is_set():
                            continue
                        self.listening.set()
                        # Changes may have been missed while not listening: say so.
                        self.publish("resync", {"reason": "stream (re)connected"})
                        continue
                    self.publish("outage", change)
            except StoreError as exc:
                log.warning("outage feed lost its database connection: %s", exc)
            except Exception:  # the feed must outlive one bad round
                log.exception("outage feed failed")
            self.listening.clear()
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RECONNECT_MAX_S)
