"""Zalo OA event webhook for ZNS delivery receipts (``user_received_message``).

Zalo signs each event: header ``X-ZEvent-Signature: mac=<sha256 hex of app_id + raw body +
timestamp + OA secret key>``, ``timestamp`` being the event's own field. An unsigned,
mis-signed, stale, oversized or malformed event is refused with a clear status and changes
nothing; an event for an unknown message is stored (evidence) and answered 200 so Zalo does
not retry it forever.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from gridwatch.core.clock import Clock, SystemClock
from notifier._metrics import WEBHOOKS_REJECTED
from notifier._ports import Transactions, ZnsReceipts

_MSG_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TRACKING = re.compile(r"^[\x21-\x7e]{1,48}$")
_SIGNATURE = re.compile(r"^mac=([0-9a-f]{64})$")
RECEIPT_EVENTS = {"user_received_message": "delivered", "user_seen_message": "read"}


@dataclass(frozen=True, slots=True)
class ZnsWebhookConfig:
    app_id: str
    oa_secret_key: str
    max_body_bytes: int = 16 * 1024
    # Events older (or further in the future) than this are refused as replays.
    max_age_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.app_id or not self.oa_secret_key:
            raise ValueError("ZNS webhook needs the app id and the OA secret key")


def zns_event_signature(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    digest = hashlib.sha256(
        app_id.encode() + body + timestamp.encode() + oa_secret_key.encode()
    ).hexdigest()
    return f"mac={digest}"


def create_zns_webhook_router(
    store: Transactions[ZnsReceipts], config: ZnsWebhookConfig, *, clock: Clock | None = None
) -> APIRouter:
    router = APIRouter()
    wall = SystemClock()  # replay protection is about the sender's real clock
    now = (clock or wall).now_s

    def refuse(reason: str, status: int, detail: str) -> HTTPException:
        WEBHOOKS_REJECTED.labels(reason).inc()
        return HTTPException(status, detail)

    @router.post("/zns/events")
    async def zns_events(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > config.max_body_bytes:
            raise refuse("too_large", 413, "body too large")
        raw = await request.body()
        if len(raw) > config.max_body_bytes:
            raise refuse("too_large", 413, "body too large")
        match = _SIGNATURE.match(request.headers.get("X-ZEvent-Signature", ""))
        if match is None:
            raise refuse("signature", 403, "missing or malformed X-ZEvent-Signature")
        try:
            event: Any = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise refuse("malformed", 400, "body is not JSON") from None
        if not isinstance(event, dict):
            raise refuse("malformed", 400, "body is not a JSON object")
        timestamp = event.get("timestamp")
        if not isinstance(timestamp, str) or not timestamp.isdigit() or len(timestamp) > 16:
            raise refuse("malformed", 400, "timestamp missing or not epoch milliseconds")
        expected = zns_event_signature(config.app_id, raw, timestamp, config.oa_secret_key)
        if not hmac.compare_digest(expected, match.group(0)):
            raise refuse("signature", 403, "invalid X-ZEvent-Signature")
        if event.get("app_id") != config.app_id:
            raise refuse("signature", 403, "event for another app")
        if abs(wall.now_s() - int(timestamp) / 1000) > config.max_age_s:
            raise refuse("stale", 400, "event timestamp too old or in the future")
        status = RECEIPT_EVENTS.get(str(event.get("event_name", "")))
        if status is None:
            return Response(status_code=200)  # other OA events: not ours to act on
        message = event.get("message")
        if not isinstance(message, dict):
            raise refuse("malformed", 400, "message missing")
        msg_id = message.get("msg_id")
        tracking = message.get("tracking_id")
        if not isinstance(msg_id, str) or not _MSG_ID.match(msg_id):
            raise refuse("malformed", 400, "message.msg_id missing or malformed")
        if tracking is not None and (
            not isinstance(tracking, str) or not _TRACKING.match(tracking)
        ):
            raise refuse("malformed", 400, "message.tracking_id malformed")
        async with store.transaction() as receipts:
            await receipts.record_zns_receipt(
                msg_id=msg_id, tracking_id=tracking, status=status, now_s=now()
            )
        return Response(status_code=200)

    return router
