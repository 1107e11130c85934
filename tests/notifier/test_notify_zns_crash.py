"""kill -9 a dispatcher in the middle of ZNS sends and their SMS fallbacks, restart it: every
customer is told exactly once, on ZNS or (not on Zalo) by SMS, never on both, nothing twice
(counted at the two stand-ins)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandin
from zns_standin import APP_ID, APP_SECRET, OA_ID, ZnsStandin
from zns_support import TEMPLATES, zns

from gridwatch.store import Database
from gridwatch.store.notifications import fallback_counts
from tests.notify_support import enqueue_detected, phone, seed_customers, standin, statuses
from tests.polling import wait_until

__all__ = ["standin", "zns"]
pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
N = 300
OFF_ZALO = {i for i in range(N) if i % 5 in (1, 3)}  # 40% have no Zalo account


async def _start(
    database_url: str, schema: str, sms: TwilioStandin, zns: ZnsStandin
) -> subprocess.Popen[bytes]:
    templates = ",".join(f"{k}.{lang}={tid}" for (k, lang), tid in TEMPLATES.items())
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [
            sys.executable,
            "-m",
            "gridwatch.app.dispatch_process",
            "dispatch",
            "--database-url",
            database_url,
            "--schema",
            schema,
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            AUTH_TOKEN,
            "--from-number",
            "+15005550006",
            "--twilio-base-url",
            sms.base_url,
            "--zns-app-id",
            APP_ID,
            "--zns-app-secret",
            APP_SECRET,
            "--zns-oa-id",
            OA_ID,
            "--zns-refresh-token",
            "initial-refresh-token",
            "--zns-templates",
            templates,
            "--zns-base-url",
            zns.base_url,
            "--zns-oauth-url",
            zns.base_url,
            "--zns-messages-per-s",
            "5000",
            "--fallback-receipt-timeout-s",
            "0",
            "--lease-s",
            "3",
            "--timeout-s",
            "2",
            "--batch-size",
            "20",
            "--lanes",
            "2",
            "--concurrency",
            "16",
            "--poll-interval-s",
            "0.1",
            "--backoff-base-s",
            "0.2",
            "--messages-per-s",
            "5000",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    assert line.strip() == b"READY", line
    return proc


async def test_kill_9_between_zns_and_sms_sends_nothing_twice_and_never_both(
    db: Database, database_url: str, standin: TwilioStandin, zns: ZnsStandin
) -> None:
    await enqueue_detected(db, await seed_customers(db, N, channels=("zns>sms",)))
    zns.not_on_zalo = {phone(i)[1:] for i in OFF_ZALO}
    # Both providers take a message at once but answer late: a kill leaves ZNS and SMS sends
    # accepted but unrecorded, and ZNS refusals whose SMS fallback is not yet decided.
    zns.response_delay_s = 0.4
    standin.response_delay_s = 0.08
    first = await _start(database_url, db.schema, standin, zns)
    try:

        async def mid_fallback() -> bool:
            return len(standin.messages) >= 3

        await wait_until(mid_fallback, timeout_s=60, what="3 SMS fallbacks at the stand-in")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    await asyncio.sleep(0.5)  # requests on the wire when it died land at the stand-ins
    before = await statuses(db)
    assert before.get("sending", 0) > 0, before  # the kill hit notices in flight
    assert len(standin.messages) < len(OFF_ZALO)  # and fallbacks still to go
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM notifications WHERE channel = 'zns' AND status = 'sent'"
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0] < len(zns.messages)  # ZNS taken by Zalo but never recorded: resent after

    zns.response_delay_s = standin.response_delay_s = 0.0
    second = await _start(database_url, db.schema, standin, zns)
    expected = {"sent": N, "failed": len(OFF_ZALO)}

    async def settled() -> bool:
        return await statuses(db) == expected

    try:
        await wait_until(settled, timeout_s=90, what=f"every notice settled as {expected}")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(15)
        except subprocess.TimeoutExpired:
            second.kill()
    assert zns.repeat_tracking > 0  # the resends reached Zalo and were the same messages
    on_zalo = sorted(phone(i) for i in range(N) if i not in OFF_ZALO)
    assert sorted("+" + m["phone"] for m in zns.messages) == on_zalo  # each once
    assert sorted(m["to"] for m in standin.messages) == sorted(phone(i) for i in OFF_ZALO)
    assert not {"+" + m["phone"] for m in zns.messages} & {m["to"] for m in standin.messages}
    async with db.connection() as conn:
        assert await fallback_counts(conn) == {
            "promoted": len(OFF_ZALO),
            "held": N - len(OFF_ZALO),  # ZNS sent, waiting for a receipt that decides them
        }
        cur = await conn.execute("SELECT provider_id FROM notifications WHERE status = 'sent'")
        recorded = {r[0] for r in await cur.fetchall()}
    assert recorded == {m["msg_id"] for m in zns.messages} | {m["sid"] for m in standin.messages}
