"""App alerts (pywebpush against a loopback push endpoint), the signed webhook channel
(loopback receiver) and the console channel."""

from __future__ import annotations

import base64
import io
import os
import stat
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gridwatch.app.notify import store_web_push_channel
from gridwatch.core.clock import ManualClock
from gridwatch.store import Database
from gridwatch.store.subscriptions import upsert_push_subscription
from notifier import (
    NOTICE_KINDS,
    ConsoleChannel,
    NotifierError,
    OutageChange,
    SignedWebhookChannel,
    generate_vapid_keys,
    load_templates,
    print_demo,
    print_preview,
    verify_webhook_signature,
)
from tests.notify_support import DAY_S, enqueue_detected, make_dispatcher, seed_customers, statuses


class Receiver:
    """A loopback HTTP endpoint answering with scripted statuses, recording requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status_by_path: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=self.status_by_path.get(request.path, 201))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def _browser_keys() -> tuple[str, str]:
    """A browser's subscription keys (p256dh public point, auth secret), base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    def enc(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return enc(point), enc(os.urandom(16))


def test_vapid_keys_are_generated_private_and_not_overwritten(tmp_path: Path) -> None:
    keys = generate_vapid_keys(tmp_path / "vapid" / "private.pem")
    assert stat.S_IMODE(keys.private_key_path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in keys.private_key_path.read_bytes()
    raw = base64.urlsafe_b64decode(keys.public_key_b64url + "==")
    assert len(raw) == 65
    assert raw[0] == 4
    assert (tmp_path / "vapid" / "private.pem.pub").read_text().strip() == keys.public_key_b64url
    with pytest.raises(NotifierError, match="refusing"):
        generate_vapid_keys(keys.private_key_path)


async def test_push_reaches_live_subscriptions_and_prunes_dead_ones(
    db: Database, receiver: Receiver, tmp_path: Path
) -> None:
    ids = await seed_customers(db, 2, channels=("push",))
    keys = generate_vapid_keys(tmp_path / "vapid.pem")
    async with db.connection() as conn:
        for i, path in enumerate(("/live", "/gone", "/missing")):
            p256dh, auth = _browser_keys()
            await upsert_push_subscription(
                conn,
                customer_id=ids[0],
                endpoint=receiver.base_url + path,
                p256dh=p256dh,
                auth=auth,
                now_s=DAY_S,
            )
            assert i >= 0
    receiver.status_by_path = {"/gone": 410, "/missing": 404}
    await enqueue_detected(db, ids)
    channel = store_web_push_channel(
        db, keys.private_key_path, subject="mailto:ops@example.vn", clock=ManualClock(DAY_S + 60)
    )
    async with aclosing(channel):
        stats = await make_dispatcher(db, {"push": channel}).drain()
    # Customer 0: delivered to /live, two dead subscriptions pruned. Customer 1: none at all.
    assert (stats.sent, stats.failed) == (1, 1)
    assert channel.pruned == 2
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT endpoint, created_at, last_ok_at FROM notify_push_subscriptions"
        )
        # Stamped on the service clock (on a replay, the replay's day), never wall time.
        assert [(r[0], r[1].timestamp(), r[2].timestamp()) for r in await cur.fetchall()] == [
            (receiver.base_url + "/live", DAY_S, DAY_S + 60)
        ]
        cur = await conn.execute(
            "SELECT customer_id, status, error_code FROM notifications ORDER BY 1"
        )
        assert await cur.fetchall() == [
            (ids[0], "sent", None),
            (ids[1], "failed", "no_subscription"),
        ]
    live = [r for r in receiver.requests if r[0] == "/live"]
    assert len(live) == 1
    headers = {k.lower(): v for k, v in live[0][1].items()}
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["urgency"] == "high"
    assert headers["authorization"].startswith("vapid t=")
    assert len(headers["topic"]) <= 32
    assert "Quận".encode() not in live[0][2]  # the payload is encrypted


async def test_push_5xx_is_retried_later(db: Database, receiver: Receiver, tmp_path: Path) -> None:
    ids = await seed_customers(db, 1, channels=("push",))
    keys = generate_vapid_keys(tmp_path / "vapid.pem")
    p256dh, auth = _browser_keys()
    async with db.connection() as conn:
        await upsert_push_subscription(
            conn,
            customer_id=ids[0],
            endpoint=receiver.base_url + "/busy",
            p256dh=p256dh,
            auth=auth,
            now_s=DAY_S,
        )
    receiver.status_by_path = {"/busy": 503}
    await enqueue_detected(db, ids)
    channel = store_web_push_channel(db, keys.private_key_path, subject="mailto:ops@example.vn")
    async with aclosing(channel):
        stats = await make_dispatcher(db, {"push": channel}).drain()
    assert stats.retried == 1
    assert await statuses(db) == {"pending": 1}


async def test_signed_webhook_channel(db: Database, receiver: Receiver) -> None:
    ids = await seed_customers(db, 3, channels=("webhook",))
    secret = b"0123456789abcdef0123456789abcdef"
    receiver.status_by_path = {"/hook": 200}
    await enqueue_detected(db, ids)
    clock = ManualClock(DAY_S + 1)
    channel = SignedWebhookChannel(receiver.base_url + "/hook", secret, clock=clock)
    async with aclosing(channel):
        stats = await make_dispatcher(db, {"webhook": channel}, clock=clock).drain()
    assert stats.sent == 3
    assert len(receiver.requests) == 3
    keys = set()
    for _path, headers, body in receiver.requests:
        assert verify_webhook_signature(
            secret, headers["X-Gridwatch-Signature"], body, now_s=DAY_S + 2
        )
        assert not verify_webhook_signature(
            b"x" * 32, headers["X-Gridwatch-Signature"], body, now_s=DAY_S + 2
        )
        assert not verify_webhook_signature(
            secret, headers["X-Gridwatch-Signature"], body + b" ", now_s=DAY_S + 2
        )
        # A replayed request outside the window is refused.
        assert not verify_webhook_signature(
            secret, headers["X-Gridwatch-Signature"], body, now_s=DAY_S + 3600
        )
        keys.add(headers["Idempotency-Key"])
    assert len(keys) == 3


@pytest.mark.parametrize("header", [None, "", "t=abc,v1=00", "v1=00", "t=1", "x" * 1000])
def test_malformed_webhook_signatures_are_refused(header: str | None) -> None:
    assert not verify_webhook_signature(b"k" * 32, header, b"{}", now_s=1.0)


async def test_webhook_receiver_refusal_is_permanent_and_5xx_transient(
    db: Database, receiver: Receiver
) -> None:
    ids = await seed_customers(db, 2, channels=("webhook",))
    await enqueue_detected(db, ids)
    receiver.status_by_path = {"/hook": 400}
    async with aclosing(SignedWebhookChannel(receiver.base_url + "/hook", b"s" * 32)) as channel:
        stats = await make_dispatcher(db, {"webhook": channel}, batch_size=1).dispatch_once()
        receiver.status_by_path = {"/hook": 502}
        stats2 = await make_dispatcher(db, {"webhook": channel}, batch_size=1).dispatch_once()
    assert (stats.failed, stats2.retried) == (1, 1)


async def test_console_channel_prints_each_notice(db: Database) -> None:
    ids = await seed_customers(db, 2, channels=("console",))
    await enqueue_detected(db, ids)
    out = io.StringIO()
    stats = await make_dispatcher(db, {"console": ConsoleChannel(out)}).drain()
    lines = out.getvalue().splitlines()
    assert stats.sent == 2
    assert len(lines) == 2
    # An SMS is printed as sent: the heading once, then the body (issue 15).
    assert all("Mất điện tại Quận 1: Từ 10:00 23/11" in line for line in lines)


def test_preview_prints_both_languages_with_segments() -> None:
    out = io.StringIO()
    change = OutageChange(
        outage_id=1,
        kind="outage_detected",
        version=1,
        occurred_at_s=DAY_S,
        where="Quận 1",
        why="sự cố",
        etr_p50_s=DAY_S + 3600,
    )
    print_preview(change, load_templates(), stream=out)
    text = out.getvalue()
    assert "Mất điện tại Quận 1" in text
    assert "Power outage at Quận 1" in text
    assert "UCS-2" in text
    assert "segment" in text


def test_webhook_secret_must_be_long_enough() -> None:
    with pytest.raises(NotifierError):
        SignedWebhookChannel("http://127.0.0.1:1/", b"short")


def test_demo_prints_every_kind_in_both_languages() -> None:
    out = io.StringIO()
    print_demo(now_s=DAY_S, stream=out)
    text = out.getvalue()
    for kind in NOTICE_KINDS:
        assert f"[{kind} vi]" in text
        assert f"[{kind} en]" in text
    assert "Đã có điện trở lại" in text
    assert "Power is back" in text
