"""The demo end to end: simulated feeder -> real MQTT -> gridwatch -> real PostgreSQL."""

from __future__ import annotations

import io
import re

import pytest

from gridwatch import load_settings
from gridwatch.app.demo import run_demo
from gridwatch.store import Database, drop_schema


async def test_demo_against_real_services(
    database_url: str,
    mqtt_url: str,
    schema_name: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "GRIDWATCH_DATABASE_URL": database_url,
        "GRIDWATCH_MQTT_URL": mqtt_url,
        "GRIDWATCH_DATABASE_SCHEMA": schema_name,
        "GRIDWATCH_MQTT_PREFIX": topic_prefix,
        "GRIDWATCH_MQTT_CLIENT_ID": f"demo-{schema_name}",
        "GRIDWATCH_API_PORT": "0",
    }.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    try:
        code = await run_demo(load_settings(), duration_s=12, speed=600, out=out)
        assert code == 0
        text = out.getvalue()
        assert "gridwatch API on http://127.0.0.1:" in text
        assert "/dashboard/  (token: gw_" in text  # the operator can sign in at once
        assert "does not redeliver" not in text  # a real broker keeps the promise
        # The notices customers would get, printed by the console channel, in both languages.
        notices = [line for line in text.splitlines() if line.startswith("notice [")]
        assert any(n.startswith("notice [outage_detected") and "(vi)]" in n for n in notices), text
        assert any(n.startswith("notice [outage_detected") and "(en)]" in n for n in notices), text
        assert any("Mất điện" in n for n in notices)
        assert any("Power outage" in n for n in notices)
        # An SMS says its heading once and names no device id (issue 15).
        sms = [n for n in notices if n.startswith("notice [outage_detected") and "(vi)]" in n]
        assert all(n.count("Mất điện tại") == 1 and "-BRK" not in n for n in sms), sms
        # The simulated feeders are wards, so the notice names one, not "your area".
        assert all(re.search(r"Mất điện tại (Khu phố \d+, )?Phường [^\d]", n) for n in sms), sms
        assert not any("khu vực của quý khách" in n for n in sms), sms
        # The demo ends with the SMS bill of its story per kind of notice, from the stored
        # rows: what ETR-update churn costs.
        assert "SMS cost (stored notices" in text, text
        bill = text[text.index("SMS cost (stored notices") :]
        assert "outage_detected" in bill, bill
        assert "per customer" in bill, bill
        assert "VND" in bill, bill
        db = await Database.open(database_url, schema_name)
        async with db.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM readings")
            (readings,) = await cur.fetchone()  # type: ignore[misc]
            cur = await conn.execute("SELECT reason FROM dead_letters ORDER BY reason")
            reasons = [row[0] for row in await cur.fetchall()]
        await db.close()
        assert readings > 100, text
        # The four deliberately malformed messages were each rejected with a reason.
        assert len(reasons) == 4, reasons
        assert any("not JSON" in r for r in reasons)
        assert any("meteor_strike" in r for r in reasons)
        # ... and the live view counts them: stamped on the replay's clock, they lie in its
        # window (wall-stamped, the view said "rejected none" beside four dead letters).
        views = [line for line in text.splitlines() if "rejected " in line]
        assert views, text
        assert "not JSON" in views[-1], views[-1]
        assert "meteor_strike" in views[-1], views[-1]
    finally:
        db = await Database.open(database_url, schema_name)
        await drop_schema(db)
        await db.close()


async def test_demo_with_nothing_configured_uses_embedded_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a newcomer gets from `./dev demo`: only Python, an embedded broker and database."""
    for name in ("GRIDWATCH_DATABASE_URL", "GRIDWATCH_MQTT_URL", "GRIDWATCH_DATABASE_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRIDWATCH_API_PORT", "0")
    out = io.StringIO()
    assert await run_demo(load_settings(), duration_s=10, speed=600, out=out) == 0
    text = out.getvalue()
    # The embedded broker's broken promise is said where the demo starts (issue #15).
    assert (
        "note: the embedded MQTT broker (amqtt 0.12) does not redeliver"
        in text.split("gridwatch API on")[0]
    )
    # The non-terminal view prints a status line every few seconds; the last one counts rows.
    status = [line for line in text.splitlines() if "in database" in line]
    assert status, text
    readings = int(status[-1].split("readings ")[1].split()[0].replace(",", ""))
    assert readings > 100, text
