"""The seam between the dispatcher and each way of reaching a customer."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from notifier._ports import ClaimedNotification

Notice = ClaimedNotification


class Channel(Protocol):
    """One way to reach customers. Errors are notifier errors only.

    ``send`` returns the provider's message id, or raises TransientSendError (retry with
    backoff), PermanentSendError (record, never retry) or OutcomeUnknownError (the request
    may have been accepted: reconcile before any retry).
    ``find_sent`` looks the notice up in the provider's log after an unknown outcome:
    the provider id if it was sent, None if it surely was not (or the channel has no log;
    such channels are at-least-once and carry an idempotency key for the receiver).
    """

    name: str

    async def send(self, notice: Notice) -> str: ...

    async def find_sent(self, notice: Notice) -> str | None: ...

    async def aclose(self) -> None: ...


class RateLimiter:
    """Token bucket shared by one channel's concurrent sends (messages per second)."""

    def __init__(self, rate_per_s: float, burst: float | None = None) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self._rate = rate_per_s
        self._capacity = burst if burst is not None else max(1.0, rate_per_s / 10)
        self._tokens = self._capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(
                    self._capacity, self._tokens + (now - self._updated) * self._rate
                )
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)
