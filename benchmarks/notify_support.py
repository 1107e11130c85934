"""What the notifier dispatch benchmarks share (``notify_dispatch``, ``notify_zns_fallback``):
the loopback stand-ins as processes, one outage over ``n`` customers in a fresh schema, its
"detected" change, the SMS channel to the Twilio stand-in, and the watch that stops the
dispatcher once every notice is handed over."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from gridwatch.store import Database
from notifier import OutageChange, TwilioConfig, TwilioSmsChannel

URL = os.environ.get("GRIDWATCH_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "standin-auth-token"  # noqa: S105 - the loopback stand-in's
FROM = "+15005550006"
T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC).timestamp()


def start_standin(script: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """``tests/<script>`` on a free loopback port: the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / script), "--port", "0", *extra],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().split()
    return proc, f"http://127.0.0.1:{line[1]}"


async def seed_outage(db: Database, n: int, *, channel: str | None = None) -> tuple[list[str], int]:
    """``n`` customers with a phone each (on ``channel``, else the default) under one
    substation, and one confirmed outage there: (customer ids, outage id)."""
    ids = [f"C{i:07d}" for i in range(n)]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone) VALUES ('SUB1', 'substation', 'z1')"
        )
        if channel is None:
            async with conn.cursor().copy(
                "COPY customers (customer_id, account_no, phone_e164, language) FROM STDIN"
            ) as copy:
                for i, cid in enumerate(ids):
                    await copy.write_row((cid, f"A{cid}", f"+849{i:08d}", "vi"))
        else:
            async with conn.cursor().copy(
                "COPY customers (customer_id, account_no, phone_e164, language, channels)"
                " FROM STDIN"
            ) as copy:
                for i, cid in enumerate(ids):
                    await copy.write_row((cid, f"A{cid}", f"+849{i:08d}", "vi", [channel]))
        cur = await conn.execute(
            "INSERT INTO outages (device_id, zone, state, started_at)"
            " VALUES ('SUB1','z1','confirmed', now()) RETURNING outage_id"
        )
        row = await cur.fetchone()
        assert row
    return ids, int(row[0])


def detected(outage_id: int, customer_ids: list[str]) -> OutageChange:
    """The outage's "detected" change for every customer (an ETR an hour on)."""
    return OutageChange(
        outage_id=outage_id,
        kind="outage_detected",
        version=1,
        occurred_at_s=T0,
        customer_ids=customer_ids,
        etr_p50_s=T0 + 3600,
        where="Phường Bến Nghé",
        why="sự cố",
    )


def sms_channel(base_url: str, *, status_callback_url: str | None = None) -> TwilioSmsChannel:
    """The real twilio client against the stand-in at ``base_url``, unthrottled."""
    return TwilioSmsChannel(
        TwilioConfig(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            from_number=FROM,
            base_url=base_url,
            messages_per_s=100_000.0,
            status_callback_url=status_callback_url,
        )
    )


async def stop_when_sent(
    db: Database, n: int, stop: asyncio.Event, *, per_customer: bool, poll_s: float
) -> None:
    """Set ``stop`` once ``n`` notices are sent (``per_customer``: once ``n`` customers each
    have one accepted by a provider, fallbacks included), polling every ``poll_s``."""
    query = (
        "SELECT count(DISTINCT customer_id) FROM notifications WHERE status = 'sent'"
        if per_customer
        else "SELECT count(*) FROM notifications WHERE status = 'sent'"
    )
    while True:
        async with db.connection() as conn:
            cur = await conn.execute(query)
            row = await cur.fetchone()
        if row and row[0] >= n:
            stop.set()
            return
        await asyncio.sleep(poll_s)
