"""Twilio webhooks (status callbacks, inbound SMS) and the customer app API, through the
FastAPI router: signatures, keywords in English and Vietnamese, hostile input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio_standin import AUTH_TOKEN, TwilioStandin

__all__ = ["standin"]
from twilio.request_validator import RequestValidator

from gridwatch.app.notify import store_webhooks_router
from gridwatch.core.clock import ManualClock
from gridwatch.store import Database
from notifier import (
    WebhooksConfig,
    classify_keyword,
    customer_link_token,
)
from tests.notify_support import (
    DAY_S,
    enqueue_detected,
    make_dispatcher,
    phone,
    seed_customers,
    sms_channel,
    standin,
)
from tests.polling import wait_until

TOKEN = "webhook-test-auth-token"
PUBLIC = "https://gw.example.vn"
SECRET = b"link-secret-for-tests-0123456789"


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    config = WebhooksConfig(
        public_base_url=PUBLIC,
        twilio_auth_token=TOKEN,
        link_secret=SECRET,
        vapid_public_key="BPUBLIC",
        allow_http_push_endpoints=True,
    )
    app.include_router(
        store_webhooks_router(db, config, clock=ManualClock(DAY_S)), prefix="/notify"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
        yield http


def _signed(path: str, params: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    return {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(PUBLIC + path, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def _post(
    client: httpx.AsyncClient, path: str, params: dict[str, str], **kw: str
) -> httpx.Response:
    return await client.post(path, content=urlencode(params), headers=_signed(path, params, **kw))


async def _inbound(
    client: httpx.AsyncClient, sender: str, body: str, sid: str = "SM" + "a" * 32
) -> httpx.Response:
    return await _post(
        client,
        "/notify/twilio/inbound",
        {"From": sender, "To": "+15005550006", "Body": body, "MessageSid": sid},
    )


@pytest.mark.parametrize(
    ("text", "action", "vietnamese"),
    [
        ("STOP", "stop", False),
        ("stop please", "stop", False),
        ("Dừng", "stop", True),
        ("NGỪNG", "stop", True),
        ("ngung", "stop", True),
        ("Bắt đầu", "start", True),
        ("BATDAU", "start", True),
        ("help", "help", False),
        ("Trợ giúp", "help", True),
        ("GIUP", "help", True),
        ("trạng thái", "status", True),
        ("STATUS", "status", False),
        ("Mất điện rồi!", "out", True),
        ("MATDIEN", "out", True),
        ("OUT", "out", False),
        ("hello", None, False),
        ("", None, False),
        ("🙂🙂", None, False),
    ],
)
def test_keywords_in_both_languages_with_or_without_diacritics(
    text: str, action: str | None, vietnamese: bool
) -> None:
    assert classify_keyword(text) == (action, vietnamese)


async def test_unsigned_and_wrongly_signed_webhooks_are_refused(
    client: httpx.AsyncClient, db: Database
) -> None:
    params = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "delivered"}
    unsigned = await client.post(
        "/notify/twilio/status",
        content=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    wrong_key = await _post(client, "/notify/twilio/status", params, token="not-the-token")
    tampered = await client.post(
        "/notify/twilio/status",
        content=urlencode({**params, "MessageStatus": "failed"}),
        headers=_signed("/notify/twilio/status", params),
    )
    other_url = await client.post(
        "/notify/twilio/inbound",
        content=urlencode(params),
        headers=_signed("/notify/twilio/status", params),
    )
    assert [r.status_code for r in (unsigned, wrong_key, tampered, other_url)] == [403] * 4
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM notify_delivery_events")
        assert (await cur.fetchone()) == (0,)


async def test_status_callback_stores_the_delivery_state(
    client: httpx.AsyncClient, db: Database
) -> None:
    await enqueue_detected(db, await seed_customers(db, 1), where="", why="", etr_p50_s=None)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT notification_id FROM notifications")
        row = await cur.fetchone()
    assert row is not None
    sid = "SM" + "c" * 32
    path = f"/notify/twilio/status?n={row[0]}"
    for state, code in (("sent", None), ("undelivered", "30003")):
        params = {
            "MessageSid": sid,
            "MessageStatus": state,
            **({"ErrorCode": code} if code else {}),
        }
        resp = await _post(client, path, params)
        assert resp.status_code == 204
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT delivery_status, error_code, provider_id FROM notifications"
        )
        assert await cur.fetchone() == ("undelivered", "30003", sid)
        cur = await conn.execute("SELECT status FROM notify_delivery_events ORDER BY event_id")
        assert [r[0] for r in await cur.fetchall()] == ["sent", "undelivered"]


@pytest.mark.parametrize(
    "params",
    [
        {"MessageSid": "nonsense", "MessageStatus": "delivered"},
        {"MessageSid": "SM" + "d" * 32, "MessageStatus": "exploded"},
        {"MessageSid": "SM" + "d" * 32, "MessageStatus": "failed", "ErrorCode": "1; DROP TABLE"},
    ],
)
async def test_malformed_signed_status_callback_is_a_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    assert (await _post(client, "/notify/twilio/status", params)).status_code == 400


async def test_oversized_and_garbage_bodies_are_refused(client: httpx.AsyncClient) -> None:
    big = {"From": phone(1), "Body": "x" * 40_000}
    assert (await _post(client, "/notify/twilio/inbound", big)).status_code == 413
    garbage = await client.post(
        "/notify/twilio/inbound", content=b"\xff\xfe\x00", headers={"X-Twilio-Signature": "abc"}
    )
    assert garbage.status_code in (400, 403)
    bad_from = await _inbound(client, "0912 345 678", "STATUS")
    assert bad_from.status_code == 400


async def test_stop_and_start_take_effect_at_once(client: httpx.AsyncClient, db: Database) -> None:
    await seed_customers(db, 1)
    resp = await _inbound(client, phone(0), "Dừng")
    assert resp.status_code == 200
    assert "<Message>" in resp.text
    assert "BATDAU" in resp.text
    async with db.connection() as conn:
        cur = await conn.execute("SELECT channel, address FROM notify_opt_outs")
        assert await cur.fetchall() == [("sms", phone(0))]
    resp = await _inbound(client, phone(0), "START")
    assert resp.status_code == 200
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM notify_opt_outs")
        assert (await cur.fetchone()) == (0,)


async def test_help_replies_in_the_customers_language(
    client: httpx.AsyncClient, db: Database
) -> None:
    await seed_customers(db, 1, language="en")
    resp = await _inbound(client, phone(0), "giúp")
    assert "Reply STATUS" in resp.text
    unknown_sender = await _inbound(client, "+84999999999", "Trợ giúp")
    assert "TRANGTHAI" in unknown_sender.text


async def test_status_replies_with_the_current_outage_and_etr(
    client: httpx.AsyncClient, db: Database
) -> None:
    ids = await seed_customers(db, 2)
    none_yet = await _inbound(client, phone(0), "TRANGTHAI")
    assert "Không có sự cố" in none_yet.text
    await enqueue_detected(
        db,
        ids[:1],
        etr_p10_s=DAY_S + 3600,
        etr_p50_s=DAY_S + 5400,
        etr_p90_s=DAY_S + 7200,
        where="Phường Bến Nghé",
    )
    resp = await _inbound(client, phone(0), "trạng thái")
    # 10:00 local + 1 h .. + 2 h
    assert "Phường Bến Nghé" in resp.text
    assert "11:00 - 12:00 23/11" in resp.text
    other = await _inbound(client, phone(1), "STATUS")
    assert "Không có sự cố" in other.text


async def test_out_report_is_stored_once_as_evidence(
    client: httpx.AsyncClient, db: Database
) -> None:
    ids = await seed_customers(db, 1)
    sid = "SM" + "e" * 32
    for _ in range(2):  # Twilio retries a webhook it did not see answered
        resp = await _inbound(client, phone(0), "Mất điện ở nhà tôi", sid=sid)
        assert resp.status_code == 200
        assert "ghi nhận" in resp.text
    async with db.connection() as conn:
        cur = await conn.execute("SELECT customer_id, kind, note, phone_e164 FROM customer_reports")
        assert await cur.fetchall() == [(ids[0], "out", "Mất điện ở nhà tôi", phone(0))]


async def test_app_api_needs_a_valid_link_token(client: httpx.AsyncClient, db: Database) -> None:
    ids = await seed_customers(db, 1)
    good = customer_link_token(ids[0], SECRET)
    assert (await client.get("/notify/app/api/status", params={"t": good})).json() == {
        "outage": None
    }
    forged = ids[0] + ".0123456789abcdef0123456789abcdef"
    assert (await client.get("/notify/app/api/status", params={"t": forged})).status_code == 403
    sub = {"endpoint": "http://127.0.0.1:9/push/1", "keys": {"p256dh": "BKEY", "auth": "AUTH"}}
    ok = await client.post("/notify/app/api/subscribe", json={"token": good, "subscription": sub})
    assert ok.status_code == 201
    bad = await client.post(
        "/notify/app/api/subscribe", json={"token": forged, "subscription": sub}
    )
    assert bad.status_code == 403
    junk = await client.post("/notify/app/api/subscribe", content=b"{not json")
    assert junk.status_code == 400
    page = await client.get("/notify/app/")
    assert page.status_code == 200
    assert "manifest.webmanifest" in page.text
    assert (await client.get("/notify/app/manifest.webmanifest")).status_code == 200
    assert (await client.get("/notify/app/..%2F_outbox.py")).status_code == 404


async def test_status_callbacks_from_the_standin_reach_the_router_over_http(
    db: Database, standin: TwilioStandin
) -> None:
    """End to end: dispatcher -> real twilio client -> stand-in -> signed callbacks over HTTP
    -> uvicorn -> the router -> delivery states in the database."""
    ids = await seed_customers(db, 3)
    standin.undeliverable = {phone(2)}
    await enqueue_detected(db, ids, where="Q1", why="x", etr_p50_s=None)
    app = FastAPI()
    config = WebhooksConfig(
        public_base_url=PUBLIC, twilio_auth_token=AUTH_TOKEN, link_secret=SECRET
    )
    app.include_router(store_webhooks_router(db, config), prefix="/notify")
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, interval_s=0.02, what="uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        standin.callback_base_url = f"http://127.0.0.1:{port}"
        channel = sms_channel(standin, status_callback_url=PUBLIC + "/notify/twilio/status")
        await make_dispatcher(db, {"sms": channel}).drain()
        await wait_until(
            lambda: len(standin.callbacks_answered) >= 6, what="6 status callbacks answered"
        )
    finally:
        server.should_exit = True
        await serving
    assert standin.callbacks_answered == [204] * 6
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT address, delivery_status, error_code FROM notifications ORDER BY address"
        )
        rows = await cur.fetchall()
    assert rows == [
        (phone(0), "delivered", None),
        (phone(1), "delivered", None),
        (phone(2), "undelivered", "30003"),
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.text(max_size=300), sender=st.sampled_from(["+84900000000", "+84900000001", "+1"]))
async def test_any_inbound_text_gets_a_reply_or_a_clear_refusal(
    client: httpx.AsyncClient, body: str, sender: str
) -> None:
    resp = await _inbound(client, sender, body)
    assert resp.status_code in (200, 400)
    if resp.status_code == 200:
        assert resp.text.startswith("<?xml")
        assert "<Message>" in resp.text
