"""What the HTTP channels without a provider log share: one lazily opened aiohttp session."""

from __future__ import annotations

import aiohttp

from notifier._channel import Notice


class HttpChannelBase:
    """A channel that POSTs through one aiohttp session, opened on first send (inside the
    running event loop) and closed by ``aclose``.

    There is no provider log to ask after an unknown outcome, so ``find_sent`` says "not
    sent" and the notice is resent: delivery is at-least-once, and receivers dedupe (the
    webhook's ``Idempotency-Key``; a push's ``Topic`` replaces an undelivered copy and the
    app dedupes by tag).
    """

    def __init__(self, *, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def find_sent(self, notice: Notice) -> str | None:
        return None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
