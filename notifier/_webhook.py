"""A signed (HMAC-SHA256) webhook to a utility's own app.

Header ``X-Gridwatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
and ``Idempotency-Key`` (receivers dedupe on it: delivery is at-least-once).
"""

from __future__ import annotations

import hashlib
import hmac

import aiohttp
import orjson

from gridwatch.core.clock import Clock, SystemClock
from notifier._channel import Notice
from notifier._errors import NotifierError, PermanentSendError, TransientSendError
from notifier._http_channel import HttpChannelBase

SIGNATURE_HEADER = "X-Gridwatch-Signature"


def sign_webhook(secret: bytes, body: bytes, timestamp_s: int) -> str:
    mac = hmac.new(secret, f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={mac}"


def verify_webhook_signature(
    secret: bytes, header: str | None, body: bytes, *, now_s: float, tolerance_s: float = 300.0
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and is fresh (replay window)."""
    if not header or len(header) > 512:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp_s = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now_s - timestamp_s) > tolerance_s:
        return False
    expected = sign_webhook(secret, body, timestamp_s).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class SignedWebhookChannel(HttpChannelBase):
    name = "webhook"

    def __init__(
        self, url: str, secret: bytes, *, timeout_s: float = 10.0, clock: Clock | None = None
    ) -> None:
        if len(secret) < 16:
            raise NotifierError("webhook secret must be at least 16 bytes")
        super().__init__(timeout_s=timeout_s)
        self._url = url
        self._secret = secret
        self._clock = clock or SystemClock()

    async def send(self, notice: Notice) -> str:
        session = self._http()
        body = orjson.dumps(
            {
                "idempotency_key": notice.idempotency_key,
                "notification_id": notice.notification_id,
                "customer_id": notice.customer_id,
                "outage_id": notice.outage_id,
                "kind": notice.kind,
                "version": notice.version,
                "language": notice.language,
                "title": notice.title,
                "body": notice.body,
                "urgent": notice.urgent,
            }
        )
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": notice.idempotency_key,
            SIGNATURE_HEADER: sign_webhook(self._secret, body, int(self._clock.now_s())),
        }
        try:
            async with session.post(self._url, data=body, headers=headers) as resp:
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            # At-least-once: the receiver dedupes on Idempotency-Key, so a resend is safe.
            raise TransientSendError(f"webhook unreachable: {type(exc).__name__}") from None
        if 200 <= status < 300:
            return f"webhook:{status}"
        if status in (408, 425, 429) or status >= 500:
            raise TransientSendError(f"webhook HTTP {status}")
        raise PermanentSendError(f"http_{status}", f"webhook receiver refused with HTTP {status}")
