"""``gridwatch notify costs``: per outage and per day, notices per channel, SMS segments and an
estimated cost from configured prices, with reach and fallbacks; bad arguments refused."""

from __future__ import annotations

import asyncio
import json

import pytest
from twilio_standin import TwilioStandin
from zns_standin import ZnsStandin
from zns_support import zns, zns_channel

from gridwatch.app.cli import main
from gridwatch.store import Database
from tests.notify_support import (
    enqueue_detected,
    make_dispatcher,
    phone,
    seed_customers,
    sms_channel,
    standin,
)

__all__ = ["standin", "zns"]


@pytest.fixture
def cli_env(database_url: str, schema_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("GRIDWATCH_DATABASE_SCHEMA", schema_name)
    monkeypatch.setenv("GRIDWATCH_LOG_FORMAT", "text")
    monkeypatch.setenv("GRIDWATCH_NOTIFY_PRICE_SMS_SEGMENT_VND", "800")
    monkeypatch.setenv("GRIDWATCH_NOTIFY_PRICE_ZNS_VND", "200")


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = await asyncio.to_thread(main, list(argv))
    except SystemExit as exc:  # argparse refusing an argument
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


async def test_costs_count_channels_segments_and_fallbacks(
    db: Database,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
    zns: ZnsStandin,
    standin: TwilioStandin,
) -> None:
    ids = await seed_customers(db, 10, channels=("zns>sms",))
    zns.not_on_zalo = {phone(i)[1:] for i in (2, 5, 8)}
    outage = await enqueue_detected(db, ids)
    await make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)}).drain()
    async with db.connection() as conn:
        cur = await conn.execute("SELECT sum(segments) FROM notifications WHERE status = 'sent'")
        row = await cur.fetchone()
    assert row is not None
    segments = int(row[0])
    assert segments >= 3  # Vietnamese text: UCS-2, at least one segment each

    code, out, err = await _cli(
        capsys, "notify", "costs", "--outage", str(outage), "--days", "3660", "--format", "json"
    )
    assert code == 0, err
    report = json.loads(out)
    by_channel = {r["channel"]: r for r in report["rows"]}
    assert by_channel["zns"]["sent"] == 7
    assert by_channel["zns"]["failed"] == 3
    assert by_channel["zns"]["cost_vnd"] == 7 * 200
    assert by_channel["sms"]["sent"] == 3
    assert by_channel["sms"]["sms_segments"] == segments
    assert by_channel["sms"]["cost_vnd"] == segments * 800
    assert report["outages"][str(outage)] == {
        "customers": 10,
        "reached": 10,
        "reach_pct": 100.0,
        "fallbacks": 3,
        "fallbacks_not_needed": 0,
        "cost_vnd": 7 * 200 + segments * 800,
    }
    [(day, per_day)] = report["days"].items()
    assert per_day["sent"] == {"sms": 3, "zns": 7}
    assert report["total_cost_vnd"] == 7 * 200 + segments * 800

    code, out, _ = await _cli(capsys, "notify", "costs", "--days", "3660", "--price-zns-vnd", "0")
    assert code == 0
    assert f"outage {outage}: 10/10 customers reached (100.0%), 3 by fallback" in out
    assert f"day {day}: sms 3, zns 7; {segments} SMS segments; {segments * 800:,} VND" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("--outage", "0"),
        ("--outage", "-3"),
        ("--outage", "1; DROP TABLE notifications"),
        ("--outage", "9" * 40),
        ("--days", "0"),
        ("--days", "99999999999999999999"),
        ("--price-zns-vnd", "nan"),
        ("--price-zns-vnd", "-1"),
        ("--price-sms-segment-vnd", "1e9"),
        ("--format", "xml"),
    ],
)
async def test_bad_arguments_are_refused_clearly(
    cli_env: None, capsys: pytest.CaptureFixture[str], argv: tuple[str, str]
) -> None:
    code, out, err = await _cli(capsys, "notify", "costs", *argv)
    assert code == 2
    assert out == ""
    assert argv[0] in err
    assert "Traceback" not in err


async def test_no_notices_says_so(
    db: Database, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await _cli(capsys, "notify", "costs", "--days", "7")
    assert code == 0
    assert out.strip() == "no notices in the last 7 days"
