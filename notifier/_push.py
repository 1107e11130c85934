"""App alerts through Web Push (pywebpush, VAPID). Dead subscriptions (404/410) are pruned.
The one place pywebpush errors become notifier errors."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid
from pywebpush import WebPushException, webpush_async

from gridwatch.core.clock import Clock, SystemClock
from notifier._channel import Notice
from notifier._errors import NotifierError, PermanentSendError, TransientSendError
from notifier._http_channel import HttpChannelBase
from notifier._ports import PushSubscriptions, Transactions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VapidKeys:
    private_key_path: Path
    # The application server key a browser's PushManager.subscribe() needs (base64url).
    public_key_b64url: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_key_b64url(vapid: Any) -> str:
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(raw)


def generate_vapid_keys(path: Path | str, *, overwrite: bool = False) -> VapidKeys:
    """Create a VAPID key pair: private key PEM at ``path`` (mode 0600), public key next to it
    (``<path>.pub``). Refuses to replace an existing key unless ``overwrite``: a new key
    orphans every browser subscription made with the old one."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise NotifierError(f"{target} exists; refusing to replace a VAPID key (pass overwrite)")
    target.parent.mkdir(parents=True, exist_ok=True)
    vapid = Vapid()
    vapid.generate_keys()
    pem = vapid.private_pem()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = _public_key_b64url(vapid)
    target.with_name(target.name + ".pub").write_text(public + "\n", encoding="ascii")
    return VapidKeys(target, public)


def load_vapid_public_key(path: Path | str) -> str:
    return _public_key_b64url(Vapid.from_file(str(path)))


def push_topic(idempotency_key: str) -> str:
    """The Web Push ``Topic`` (<= 32 url-safe chars): a resend replaces an undelivered copy."""
    return _b64url(hashlib.sha256(idempotency_key.encode()).digest())[:32]


class WebPushChannel(HttpChannelBase):
    name = "push"

    def __init__(
        self,
        store: Transactions[PushSubscriptions],
        vapid_private_key_path: Path | str,
        *,
        subject: str,
        ttl_s: int = 24 * 3600,
        timeout_s: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if not subject.startswith(("mailto:", "https://")):
            raise NotifierError("VAPID subject must be a mailto: or https: URL")
        super().__init__(timeout_s=timeout_s)
        self._store = store
        self._vapid = Vapid.from_file(str(vapid_private_key_path))
        self._subject = subject
        self._ttl_s = ttl_s
        # The service clock stamps last_ok_at (a replay's time on a replay).
        self._clock: Clock = clock or SystemClock()
        self.pruned = 0

    async def send(self, notice: Notice) -> str:
        async with self._store.transaction() as subs:
            subscriptions = await subs.push_subscriptions_for(notice.customer_id)
        if not subscriptions:
            raise PermanentSendError("no_subscription", "customer has no app subscription")
        session = self._http()
        payload = orjson.dumps(
            {
                "title": notice.title,
                "body": notice.body,
                "kind": notice.kind,
                "outage_id": notice.outage_id,
                "tag": push_topic(notice.idempotency_key),
            }
        ).decode()
        delivered = transient = 0
        for sub_id, endpoint, p256dh, auth in subscriptions:
            try:
                await webpush_async(
                    {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
                    data=payload,
                    vapid_private_key=self._vapid,
                    vapid_claims={"sub": self._subject},  # fresh dict: webpush fills aud/exp in
                    ttl=self._ttl_s,
                    headers={
                        "Topic": push_topic(notice.idempotency_key),
                        "Urgency": "high" if notice.urgent else "normal",
                    },
                    aiohttp_session=session,
                    timeout=self._timeout,
                )
            except WebPushException as exc:
                status = exc.status_code
                if status in (404, 410):
                    async with self._store.transaction() as subs:
                        await subs.delete_push_subscription(sub_id)
                    self.pruned += 1
                    log.info("pruned dead push subscription", extra={"subscription_id": sub_id})
                elif status is None or status == 429 or status >= 500:
                    transient += 1
                else:
                    log.warning("push refused", extra={"subscription_id": sub_id, "status": status})
                continue
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                transient += 1
                log.warning(
                    "push endpoint unreachable",
                    extra={"subscription_id": sub_id, "error": type(exc).__name__},
                )
                continue
            delivered += 1
            async with self._store.transaction() as subs:
                await subs.mark_push_ok(sub_id, now_s=self._clock.now_s())
        if delivered:
            return f"push:{delivered}/{len(subscriptions)}"
        if transient:
            raise TransientSendError(f"push failed for {transient} subscription(s)")
        raise PermanentSendError("subscriptions_gone", "every app subscription refused the alert")
