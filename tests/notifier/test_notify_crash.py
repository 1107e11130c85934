"""kill -9 a dispatcher process mid-dispatch, restart it: no notice lost, none sent twice
(counted at the Twilio stand-in)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandin

from gridwatch.store import Database
from tests.notify_support import enqueue_detected, seed_customers, standin, statuses
from tests.polling import wait_until

__all__ = ["standin"]
pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
N = 400


async def _start_dispatcher(
    database_url: str, schema: str, server: TwilioStandin
) -> subprocess.Popen[bytes]:
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
            server.base_url,
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


async def test_kill_9_mid_dispatch_loses_nothing_and_sends_nothing_twice(
    db: Database, database_url: str, standin: TwilioStandin
) -> None:
    await enqueue_detected(db, await seed_customers(db, N))
    # Twilio takes each message at once but answers slowly: a kill leaves sent-but-unrecorded ones.
    standin.response_delay_s = 0.08
    first = await _start_dispatcher(database_url, db.schema, standin)
    try:
        await wait_until(
            lambda: len(standin.messages) >= N // 3,
            timeout_s=60,
            what=f"{N // 3} messages at the stand-in",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    await asyncio.sleep(0.5)  # requests already on the wire when it died land at the stand-in
    before = await statuses(db)
    taken_at_kill = len(standin.messages)
    assert before.get("sending", 0) > 0, before  # the kill hit notices in flight
    assert taken_at_kill > before.get("sent", 0)  # some were sent but never recorded

    standin.response_delay_s = 0.0
    second = await _start_dispatcher(database_url, db.schema, standin)
    try:
        await wait_until(lambda: _all_sent(db), timeout_s=90, what=f"all {N} notices sent")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(15)
        except subprocess.TimeoutExpired:
            second.kill()
    assert len(standin.messages) == N
    assert len({m["to"] for m in standin.messages}) == N
    async with db.connection() as conn:
        cur = await conn.execute("SELECT provider_id, reconciled FROM notifications")
        rows = await cur.fetchall()
    assert {r[0] for r in rows} == {m["sid"] for m in standin.messages}
    assert sum(1 for r in rows if r[1]) == taken_at_kill - before.get("sent", 0)


async def _all_sent(db: Database) -> bool:
    return await statuses(db) == {"sent": N}
