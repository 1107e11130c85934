"""Encoded API responses kept until the next outage change (see ``ResponseCache``)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable


class ResponseCache:
    """Encoded responses keyed by request, valid for one feed generation and ``ttl_s``:
    the first change to any outage makes every cached view stale."""

    def __init__(self, ttl_s: float, *, max_entries: int = 1000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[object, tuple[int, float, bytes]] = OrderedDict()
        self._building: dict[object, asyncio.Future[bytes]] = {}

    async def get_or_build(
        self, key: object, generation: int, build: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The cached body, or one built once however many requests ask at the same time
        (a miss under load must not become a stampede of identical queries)."""
        body = self.get(key, generation)
        if body is not None:
            return body
        flight_key = (key, generation)
        pending = self._building.get(flight_key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled, not the build
                return await build()  # the request building it went away: build ourselves
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._building[flight_key] = future
        try:
            body = await build()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else is warned
            raise
        finally:
            self._building.pop(flight_key, None)
        future.set_result(body)
        self.put(key, generation, body)
        return body

    def get(self, key: object, generation: int) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != generation or entry[1] < time.monotonic():
            return None
        return entry[2]

    def put(self, key: object, generation: int, body: bytes) -> None:
        if self.ttl_s <= 0:
            return
        self._entries[key] = (generation, time.monotonic() + self.ttl_s, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
