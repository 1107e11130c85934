"""The ZNS channel against the loopback ZNS stand-in (real HTTP): request shape, tracking id
as idempotency key, documented error codes, token refresh (shared, rotated), receipts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zns_standin import APP_ID, OA_ID, OA_SECRET_KEY, ZnsStandin, event_signature
from zns_support import TEMPLATES, zns, zns_channel

from gridwatch.app.notify import store_zns_webhook_router
from gridwatch.core.clock import ManualClock
from gridwatch.store import Database
from gridwatch.store.zns_tokens import PostgresZnsTokenStore as DbTokenStore
from notifier import OutcomeUnknownError, PermanentSendError, TransientSendError
from notifier._channel import Notice
from notifier._zns import parse_template_ids, tracking_id, zns_params
from notifier._zns_webhook import ZnsWebhookConfig
from tests.notify_support import (
    DAY_S,
    enqueue_detected,
    make_dispatcher,
    phone,
    seed_customers,
)
from tests.polling import wait_until

__all__ = ["zns"]


def notice(i: int = 1, *, kind: str = "outage_detected", key: str | None = None) -> Notice:
    return Notice(
        notification_id=i,
        idempotency_key=key or f"C{i:06d}:7:{kind}:1:zns",
        customer_id=f"C{i:06d}",
        outage_id=7,
        kind=kind,
        version=1,
        channel="zns",
        language="vi",
        address=phone(i),
        title="",
        body=json.dumps({"where": "Quận 1", "ref": "abc123"}, ensure_ascii=False),
        urgent=False,
        attempts=1,
        attempt_started_s=None,
    )


async def test_send_posts_template_with_tracking_id_and_access_token(zns: ZnsStandin) -> None:
    channel = zns_channel(zns)
    msg_id = await channel.send(notice(3))
    [message] = zns.messages
    assert message["msg_id"] == msg_id
    assert message["phone"] == phone(3)[1:]  # 84..., no plus
    assert message["template_id"] == TEMPLATES[("outage_detected", "vi")]
    assert message["template_data"] == {"where": "Quận 1", "ref": "abc123"}
    assert message["tracking_id"] == "C000003:7:outage_detected:1:zns"


async def test_a_resend_with_the_same_tracking_id_is_the_same_message(zns: ZnsStandin) -> None:
    channel = zns_channel(zns)
    first = await channel.send(notice(1))
    again = await channel.send(notice(1))
    assert first == again
    assert len(zns.messages) == 1
    assert zns.repeat_tracking == 1


def test_long_keys_become_a_stable_short_tracking_id() -> None:
    key = "C" * 60 + ":1:outage_detected:1:zns"
    assert tracking_id(key) == tracking_id(key)
    assert len(tracking_id(key)) <= 48
    assert tracking_id("C1:1:restored:1:zns") == "C1:1:restored:1:zns"
    assert tracking_id(key) != tracking_id(key + "x")


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("not_on_zalo", "zns_118"),
        ("quota", "zns_144"),
        ("template", "zns_131"),
    ],
)
async def test_documented_refusals_are_permanent_with_their_code(
    zns: ZnsStandin, setup: str, code: str
) -> None:
    if setup == "not_on_zalo":
        zns.not_on_zalo.add(phone(1)[1:])
    elif setup == "quota":
        zns.daily_quota = 0
    else:
        zns.rejected_templates.add(TEMPLATES[("outage_detected", "vi")])
    with pytest.raises(PermanentSendError) as info:
        await zns_channel(zns).send(notice(1))
    assert info.value.code == code
    assert zns.messages == []


async def test_expired_token_is_refreshed_and_the_notice_sent_once(zns: ZnsStandin) -> None:
    channel = zns_channel(zns)
    await channel.send(notice(1))
    zns.expire_tokens()  # Zalo now answers -124 to the token the channel holds
    await channel.send(notice(2))
    assert zns.refreshes == 1
    assert zns.refresh_token != "initial-refresh-token"  # rotated
    assert [m["tracking_id"] for m in zns.messages] == [
        "C000001:7:outage_detected:1:zns",
        "C000002:7:outage_detected:1:zns",
    ]


async def test_token_is_refreshed_before_it_expires(zns: ZnsStandin) -> None:
    # Expires in 5 minutes, inside the 10-minute margin: refreshed before the first send.
    channel = zns_channel(zns, access_expires_at_s=time.time() + 300)
    await channel.send(notice(1))
    assert zns.refreshes == 1
    assert zns.errors.get(-124, 0) == 0  # never sent with the old token


async def test_dispatchers_share_one_rotating_token_pair(db: Database, zns: ZnsStandin) -> None:
    """Zalo invalidates a refresh token once used: two processes refreshing on their own
    would lock one out. Through the database store, one refreshes and both send."""
    first = zns_channel(zns, store=DbTokenStore(db, OA_ID), access_expires_at_s=0.0)
    second = zns_channel(zns, store=DbTokenStore(db, OA_ID), access_expires_at_s=0.0)
    await asyncio.gather(first.send(notice(1)), second.send(notice(2)))
    assert zns.refreshes == 1
    assert zns.refresh_refused == 0
    assert len(zns.messages) == 2
    zns.expire_tokens()
    await asyncio.gather(first.send(notice(3)), second.send(notice(4)))
    assert zns.refreshes == 2
    assert zns.refresh_refused == 0
    assert len(zns.messages) == 4


async def test_refused_refresh_is_transient_and_sends_nothing(zns: ZnsStandin) -> None:
    channel = zns_channel(zns, refresh_token="revoked", access_expires_at_s=0.0)
    with pytest.raises(TransientSendError, match="refresh refused"):
        await channel.send(notice(1))
    assert zns.messages == []


async def test_server_errors_retry_and_a_lost_answer_is_unknown(zns: ZnsStandin) -> None:
    channel = zns_channel(zns)
    zns.inject(500)
    with pytest.raises(TransientSendError):
        await channel.send(notice(1))
    zns.inject(0)  # connection dropped mid-request
    with pytest.raises(OutcomeUnknownError):
        await channel.send(notice(1))
    assert zns.messages == []


async def test_bad_notices_fail_clearly_without_a_request(zns: ZnsStandin) -> None:
    channel = zns_channel(zns)
    foreign = replace(notice(1), address="+15005550006")
    with pytest.raises(PermanentSendError, match="Vietnamese"):
        await channel.send(foreign)
    broken = replace(notice(1), body="not json {")
    with pytest.raises(PermanentSendError) as info:
        await channel.send(broken)
    assert info.value.code == "zns_bad_params"
    unknown = zns_channel(zns, templates={("restored", "vi"): "1"})
    with pytest.raises(PermanentSendError) as info:
        await unknown.send(notice(1))
    assert info.value.code == "zns_no_template"
    assert zns.requests == 0


def test_template_id_settings_name_every_problem() -> None:
    assert parse_template_ids("outage_detected.vi=123, restored.en=9") == {
        ("outage_detected", "vi"): "123",
        ("restored", "en"): "9",
    }
    with pytest.raises(ValueError, match="ZNS template ids") as info:
        parse_template_ids("outage_detcted.vi=1,restored.fr=2,etr_updated.vi=abc,nonsense")
    text = str(info.value)
    for part in ("outage_detcted", "'fr'", "digits", "kind.language=template_id"):
        assert part in text
    with pytest.raises(ValueError, match="10000"):
        parse_template_ids("x" * 20_000)


def test_config_refuses_plain_http_to_zalo_and_missing_credentials(zns: ZnsStandin) -> None:
    from notifier._zns import ZnsConfig

    with pytest.raises(ValueError, match="ZNS configuration") as info:
        ZnsConfig(
            app_id="",
            app_secret="s",
            oa_id="o",
            templates={},
            base_url="http://business.openapi.zalo.me",
        )
    text = str(info.value)
    assert "app_id is required" in text
    assert "https" in text
    assert "template" in text


def test_parameters_are_cut_to_what_zns_holds() -> None:
    params = zns_params({"where": "x" * 300, "why": "sự   cố\nlưới"}, "ref123")
    assert len(params["where"]) == 200
    assert params["where"].endswith("…")
    assert params["why"] == "sự cố lưới"
    assert params["ref"] == "ref123"


async def test_enqueue_fills_zns_rows_from_the_notice_data(db: Database) -> None:
    ids = await seed_customers(db, 2, channels=("zns>sms",))
    outage = await enqueue_detected(db, ids)
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT channel, address, body, status FROM notifications ORDER BY customer_id"
        )
        rows = await cur.fetchall()
        cur = await conn.execute(
            "SELECT channel, after_key, state FROM notify_fallback_queue ORDER BY customer_id"
        )
        held = await cur.fetchall()
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("zns", phone(0), "pending"),
        ("zns", phone(1), "pending"),
    ]
    params = json.loads(rows[0][2])
    assert params["where"] == "Quận 1"
    assert params["why"] == "sự cố"
    assert set(params) == {"where", "why", "since", "etr_window", "ref"}
    assert held == [
        ("sms", f"{ids[0]}:{outage}:outage_detected:1:zns", "held"),
        ("sms", f"{ids[1]}:{outage}:outage_detected:1:zns", "held"),
    ]


# --- delivery receipts -----------------------------------------------------------------------


@pytest.fixture
async def events(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(
        store_zns_webhook_router(
            db, ZnsWebhookConfig(APP_ID, OA_SECRET_KEY), clock=ManualClock(DAY_S)
        ),
        prefix="/notify",
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://gw.example.vn"
    ) as http:
        yield http


def _event(msg_id: str, tracking: str | None = None, *, ts_ms: int | None = None) -> bytes:
    stamp = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    return json.dumps(
        {
            "app_id": APP_ID,
            "event_name": "user_received_message",
            "message": {"msg_id": msg_id, "tracking_id": tracking},
            "timestamp": stamp,
        }
    ).encode()


async def _post(
    http: httpx.AsyncClient, body: bytes, signature: str | None = None
) -> httpx.Response:
    if signature is None:
        stamp = json.loads(body)["timestamp"]
        signature = event_signature(APP_ID, body.decode(), stamp, OA_SECRET_KEY)
    return await http.post(
        "/notify/zns/events", content=body, headers={"X-ZEvent-Signature": signature}
    )


async def _delivery(db: Database) -> list[tuple[str | None, str | None]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT provider_id, delivery_status FROM notifications ORDER BY notification_id"
        )
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def test_signed_receipt_marks_the_notice_delivered(
    db: Database, events: httpx.AsyncClient
) -> None:
    ids = await seed_customers(db, 1, channels=("zns",))
    outage = await enqueue_detected(db, ids)
    key = f"{ids[0]}:{outage}:outage_detected:1:zns"
    # The receipt can beat the dispatcher's own record of the send: matched by tracking id.
    resp = await _post(events, _event("m1", key))
    assert resp.status_code == 200
    assert await _delivery(db) == [("m1", "delivered")]


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        ("unsigned", 403),
        ("wrong_secret", 403),
        ("tampered", 403),
        ("not_json", 400),
        ("stale", 400),
        ("bad_msg_id", 400),
        ("oversized", 413),
    ],
)
async def test_hostile_receipts_are_refused_and_change_nothing(
    db: Database, events: httpx.AsyncClient, mutate: str, status: int
) -> None:
    ids = await seed_customers(db, 1, channels=("zns",))
    outage = await enqueue_detected(db, ids)
    key = f"{ids[0]}:{outage}:outage_detected:1:zns"
    body = _event("m1", key)
    stamp = json.loads(body)["timestamp"]
    signature: str | None = None
    if mutate == "unsigned":
        signature = ""
    elif mutate == "wrong_secret":
        signature = event_signature(APP_ID, body.decode(), stamp, "guess")
    elif mutate == "tampered":
        signature = event_signature(APP_ID, body.decode(), stamp, OA_SECRET_KEY)
        body = body.replace(b"m1", b"m2")
    elif mutate == "not_json":
        body = b"{not json"
        signature = event_signature(APP_ID, body.decode(), stamp, OA_SECRET_KEY)
    elif mutate == "stale":
        body = _event("m1", key, ts_ms=int((time.time() - 86400) * 1000))
    elif mutate == "bad_msg_id":
        body = _event("m1'; DROP TABLE notifications;--", key)
    else:
        body = b'{"pad": "' + b"x" * 20_000 + b'"}'
        signature = "mac=" + "0" * 64
    resp = await _post(events, body, signature)
    assert resp.status_code == status, resp.text
    assert await _delivery(db) == [(None, None)]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=400), signature=st.text(max_size=80))
async def test_any_body_and_signature_gets_a_clear_answer(
    events: httpx.AsyncClient, body: bytes, signature: str
) -> None:
    resp = await events.post(
        "/notify/zns/events",
        content=body,
        headers={"X-ZEvent-Signature": signature.encode("ascii", "replace").decode()},
    )
    assert resp.status_code in (400, 403, 413)


async def test_receipts_over_http_from_the_standin_end_to_end(
    db: Database, zns: ZnsStandin
) -> None:
    """dispatcher -> ZNS client -> stand-in -> signed receipts over HTTP -> uvicorn -> router."""
    ids = await seed_customers(db, 3, channels=("zns",))
    await enqueue_detected(db, ids)
    app = FastAPI()
    app.include_router(
        store_zns_webhook_router(db, ZnsWebhookConfig(APP_ID, OA_SECRET_KEY)), prefix="/notify"
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, interval_s=0.02, what="uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        zns.callback_url = f"http://127.0.0.1:{port}/notify/zns/events"
        await make_dispatcher(db, {"zns": zns_channel(zns)}).drain()
        await wait_until(
            lambda: len(zns.callbacks_answered) >= 3, what="3 ZNS delivery callbacks answered"
        )
    finally:
        server.should_exit = True
        await serving
    assert zns.callbacks_answered == [200] * 3
    assert sorted(await _delivery(db)) == sorted((m["msg_id"], "delivered") for m in zns.messages)


def test_zns_settings_name_what_is_missing_or_malformed() -> None:
    from gridwatch.core.errors import ConfigError
    from gridwatch.core.settings import load_settings

    with pytest.raises(ConfigError) as info:
        load_settings(zns_app_id="123")
    text = str(info.value)
    for name in ("zns_app_secret", "zns_refresh_token", "zns_oa_id", "zns_templates"):
        assert name in text
    with pytest.raises(ConfigError, match="ZNS_APP_ID"):
        load_settings(zns_app_id="12a; rm -rf /")
    with pytest.raises(ConfigError, match="ZNS_API_BASE_URL"):
        load_settings(zns_api_base_url="ftp://zalo")
    with pytest.raises(ConfigError, match="ZNS_TEMPLATES"):
        load_settings(zns_templates="x" * 20_000)
    with pytest.raises(ConfigError, match="NOTIFY_FALLBACK_RECEIPT_TIMEOUT_S"):
        load_settings(notify_fallback_receipt_timeout_s=-1)


def test_dispatch_command_refuses_bad_template_ids_clearly(
    database_url: str, schema_name: str, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from gridwatch.app.dispatch_process import main

    code = main(
        [
            "dispatch",
            "--database-url",
            database_url,
            "--schema",
            schema_name,
            "--from-number",
            "+15005550006",
            "--zns-app-id",
            APP_ID,
            "--zns-app-secret",
            "s",
            "--zns-oa-id",
            OA_ID,
            "--zns-refresh-token",
            "r",
            "--zns-templates",
            "outage_detected.vi=12x",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "template id must be digits" in err
    assert "Traceback" not in err
