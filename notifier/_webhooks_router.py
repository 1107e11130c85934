"""Webhooks (a FastAPI APIRouter the service mounts): Twilio status callbacks and inbound SMS,
both checked against ``X-Twilio-Signature`` for the public URL (403 otherwise), and the
customer app's API (status, push subscription) behind a signed customer link token."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from gridwatch.core.clock import Clock, SystemClock
from notifier._metrics import WEBHOOKS_REJECTED
from notifier._phone import is_e164, mask_phone
from notifier._policy import NotifyPolicy
from notifier._ports import CustomerReplies, Transactions
from notifier._render import etr_window_text, local_time
from notifier._sms_text import strip_diacritics
from notifier._templates import Templates, load_templates

log = logging.getLogger(__name__)

Action = Literal["stop", "start", "help", "status", "out"]
_KEYWORDS: dict[str, Action] = {}
_VI_KEYWORDS: set[str] = set()
for _action, _en, _vi in (
    ("stop", "STOP STOPALL UNSUBSCRIBE CANCEL END QUIT", "DUNG NGUNG HUY TUCHOI"),
    ("start", "START UNSTOP SUBSCRIBE", "BATDAU DANGKY"),
    ("help", "HELP INFO", "GIUP TROGIUP HUONGDAN"),
    ("status", "STATUS", "TRANGTHAI TINHTRANG"),
    ("out", "OUT OUTAGE", "MATDIEN CUPDIEN"),
):
    for _word in (*_en.split(), *_vi.split()):
        _KEYWORDS[_word] = _action  # type: ignore[assignment]
    _VI_KEYWORDS.update(_vi.split())

DELIVERY_STATES = frozenset(
    {
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "receiving",
        "received",
        "canceled",
        "partially_delivered",
    }
)
_SID_RE = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
_WEB_DIR = Path(__file__).resolve().parent / "web"


def classify_keyword(body: str) -> tuple[Action | None, bool]:
    """(action, written in Vietnamese) for an inbound SMS; diacritics and case don't matter:
    ``Dừng``, ``DUNG``, ``ngừng`` all stop; ``Mất điện`` reports an outage."""
    words = re.sub(r"[^A-Z0-9]+", " ", strip_diacritics(body[:160]).upper()).split()
    for candidate in (words[0] + words[1] if len(words) > 1 else None, words[0] if words else None):
        if candidate and candidate in _KEYWORDS:
            return _KEYWORDS[candidate], candidate in _VI_KEYWORDS
    return None, False


def customer_link_token(customer_id: str, secret: bytes) -> str:
    """A token for the customer's app link (sent by SMS): ``<customer_id>.<HMAC>``."""
    mac = hmac.new(secret, customer_id.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{customer_id}.{mac}"


def _customer_from_token(token: str, secret: bytes) -> str | None:
    if not token or len(token) > 200 or "." not in token:
        return None
    customer_id = token.rsplit(".", 1)[0]
    return (
        customer_id
        if hmac.compare_digest(customer_link_token(customer_id, secret), token)
        else None
    )


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    # scheme://host[:port] as Twilio and browsers reach the service (signatures cover it).
    public_base_url: str
    twilio_auth_token: str
    link_secret: bytes
    vapid_public_key: str | None = None
    templates: Templates | None = None
    policy: NotifyPolicy | None = None
    max_body_bytes: int = 16 * 1024
    # Push endpoints must be https; tests use a loopback http one.
    allow_http_push_endpoints: bool = False


def create_webhooks_router(
    store: Transactions[CustomerReplies], config: WebhooksConfig, *, clock: Clock | None = None
) -> APIRouter:
    router = APIRouter()
    validator = RequestValidator(config.twilio_auth_token)
    templates = config.templates or load_templates()
    policy = config.policy or NotifyPolicy()
    now = (clock or SystemClock()).now_s
    base = config.public_base_url.rstrip("/")

    async def signed_form(request: Request) -> dict[str, str]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > config.max_body_bytes:
            WEBHOOKS_REJECTED.labels("too_large").inc()
            raise HTTPException(413, "body too large")
        raw = await request.body()
        if len(raw) > config.max_body_bytes:
            WEBHOOKS_REJECTED.labels("too_large").inc()
            raise HTTPException(413, "body too large")
        try:
            params = dict(
                parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
            )
        except (UnicodeDecodeError, ValueError):
            WEBHOOKS_REJECTED.labels("malformed").inc()
            raise HTTPException(400, "malformed form body") from None
        signature = request.headers.get("X-Twilio-Signature", "")
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not signature or not validator.validate(url, params, signature):
            WEBHOOKS_REJECTED.labels("signature").inc()
            raise HTTPException(403, "missing or invalid X-Twilio-Signature")
        return params

    @router.post("/twilio/status", status_code=204)
    async def twilio_status(request: Request) -> Response:
        params = await signed_form(request)
        sid = params.get("MessageSid", "")
        status = params.get("MessageStatus", "")
        code = params.get("ErrorCode") or None
        if not _SID_RE.match(sid) or status not in DELIVERY_STATES:
            WEBHOOKS_REJECTED.labels("bad_status").inc()
            raise HTTPException(400, "MessageSid or MessageStatus missing or unknown")
        if code is not None and not (code.isdigit() and len(code) <= 6):
            raise HTTPException(400, "ErrorCode must be digits")
        n = request.query_params.get("n")
        notification_id = int(n) if n and n.isdigit() and len(n) < 19 else None
        async with store.transaction() as replies:
            await replies.record_delivery_event(
                provider_id=sid,
                status=status,
                error_code=code,
                notification_id=notification_id,
                now_s=now(),
            )
        return Response(status_code=204)

    @router.post("/twilio/inbound")
    async def twilio_inbound(request: Request) -> Response:
        params = await signed_form(request)
        sender = params.get("From", "")
        body = params.get("Body", "")[:1600]
        sid = params.get("MessageSid") or params.get("SmsSid") or None
        if not is_e164(sender):
            WEBHOOKS_REJECTED.labels("bad_sender").inc()
            raise HTTPException(400, "From is not an E.164 number")
        action, vietnamese = classify_keyword(body)
        async with store.transaction() as replies:
            customer = await replies.customer_by_phone(sender)
            language = customer[1] if customer else ("vi" if vietnamese or action is None else "en")
            kind = "reply_unknown"
            params_out: dict[str, str] = {}
            if action == "stop":
                await replies.set_opt_out(channel="sms", address=sender, source="sms", now_s=now())
                kind = "reply_stop"
            elif action == "start":
                await replies.clear_opt_out(channel="sms", address=sender)
                kind = "reply_start"
            elif action == "help":
                kind = "reply_help"
            elif action == "out":
                # Only a known customer's report locates an outage; others still get the reply.
                if customer:
                    await replies.insert_customer_report(
                        customer_id=customer[0],
                        phone_e164=sender,
                        body=body,
                        provider_id=sid,
                        received_at_s=now(),
                    )
                kind = "reply_out"
            elif action == "status":
                outage = await replies.open_outage_for_customer(customer[0]) if customer else None
                if outage is None:
                    kind = "reply_status_none"
                else:
                    kind = "reply_status"
                    tz = policy.timezone
                    params_out = {
                        "where": outage.where_text or templates.fragment(language, "where_unknown"),
                        "since": local_time(outage.started_at_s, tz) if outage.started_at_s else "",
                        "etr_window": etr_window_text(
                            templates,
                            language,
                            outage.etr_p10_s,
                            outage.etr_p50_s,
                            outage.etr_p90_s,
                            tz_name=tz,
                            rounding_s=policy.etr_rounding_s,
                        ),
                    }
        reply = templates.render(kind, language, params_out).body
        log.info("inbound sms", extra={"from": mask_phone(sender), "action": action or "unknown"})
        twiml = MessagingResponse()
        twiml.message(reply)
        return Response(content=str(twiml), media_type="application/xml")

    # --- the customer app (PWA) -----------------------------------------------------------
    @router.get("/app/api/status")
    async def app_status(t: str = "") -> JSONResponse:
        customer_id = _customer_from_token(t, config.link_secret)
        if customer_id is None:
            raise HTTPException(403, "invalid link")
        async with store.transaction() as replies:
            outage = await replies.open_outage_for_customer(customer_id)
        if outage is None:
            return JSONResponse({"outage": None})
        return JSONResponse(
            {
                "outage": {
                    "outage_id": outage.outage_id,
                    "where": outage.where_text,
                    "why": outage.why_text,
                    "started_at_s": outage.started_at_s,
                    "etr_p10_s": outage.etr_p10_s,
                    "etr_p50_s": outage.etr_p50_s,
                    "etr_p90_s": outage.etr_p90_s,
                }
            }
        )

    @router.post("/app/api/subscribe", status_code=201)
    async def app_subscribe(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > 8192:
            raise HTTPException(413, "body too large")
        try:
            data = orjson.loads(raw)
            token = str(data["token"])
            sub = data["subscription"]
            endpoint, p256dh, auth = (
                str(sub["endpoint"]),
                str(sub["keys"]["p256dh"]),
                str(sub["keys"]["auth"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise HTTPException(
                400, "expected {token, subscription: {endpoint, keys: {p256dh, auth}}}"
            ) from None
        customer_id = _customer_from_token(token, config.link_secret)
        if customer_id is None:
            raise HTTPException(403, "invalid link")
        schemes = ("https://", "http://") if config.allow_http_push_endpoints else ("https://",)
        if (
            not endpoint.startswith(schemes)
            or len(endpoint) > 1024
            or not (0 < len(p256dh) <= 200)
            or not (0 < len(auth) <= 100)
        ):
            raise HTTPException(400, "invalid push subscription")
        async with store.transaction() as replies:
            sub_id = await replies.upsert_push_subscription(
                customer_id=customer_id,
                endpoint=endpoint,
                p256dh=p256dh,
                auth=auth,
                now_s=now(),
            )
        return JSONResponse({"subscription_id": sub_id}, status_code=201)

    @router.get("/app/api/vapid-public-key")
    async def app_vapid_key() -> JSONResponse:
        if not config.vapid_public_key:
            raise HTTPException(404, "app alerts are not configured")
        return JSONResponse({"public_key": config.vapid_public_key})

    @router.get("/app/")
    async def app_index() -> FileResponse:
        return await app_file("index.html")

    @router.get("/app/{name}")
    async def app_file(name: str) -> FileResponse:
        allowed = {
            "": "index.html",
            "index.html": "index.html",
            "app.js": "app.js",
            "sw.js": "sw.js",
            "manifest.webmanifest": "manifest.webmanifest",
            "icon.svg": "icon.svg",
        }
        if name not in allowed:
            raise HTTPException(404, "not found")
        media = {
            "js": "text/javascript",
            "webmanifest": "application/manifest+json",
            "html": "text/html",
            "svg": "image/svg+xml",
        }
        file = _WEB_DIR / allowed[name]
        return FileResponse(file, media_type=media[file.suffix.lstrip(".")])

    return router
