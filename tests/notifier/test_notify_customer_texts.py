"""What a customer reads (issue 15): the place they know rather than a device id, the heading
said once, the reply keyword only where a reply is possible (SMS), and the SMS cost of the
ETR-update churn from the stored rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from gridwatch.detection import PersistedOutages
from gridwatch.notices.outage_notices import NotifyBridge
from gridwatch.store import Database
from gridwatch.store.notification_costs import sms_by_kind
from gridwatch.store.outages import OutageMeterRow, OutageRow, save_outages_in
from notifier import (
    NOTICE_KINDS,
    ConsoleChannel,
    NotifyPolicy,
    OutageChange,
    Prices,
    load_templates,
    render_notice,
    sms_churn_lines,
)
from tests.notify_support import DAY_S, enqueue_detected, make_dispatcher, seed_customers

REPLY_WORDS = ("TRANGTHAI", "STATUS", "Nhắn", "Nhan", "Reply")


def _change(kind: str) -> OutageChange:
    return OutageChange(
        outage_id=1,
        kind=kind,  # type: ignore[arg-type]
        version=1,
        occurred_at_s=DAY_S,
        customer_ids=("C1",),
        where="Phường Bến Nghé",
        why="sự cố cáp ngầm",
        started_at_s=DAY_S,
        etr_p10_s=DAY_S + 3600,
        etr_p50_s=DAY_S + 5400,
        etr_p90_s=DAY_S + 7200,
        starts_at_s=DAY_S + 6 * 86400,
        ends_at_s=DAY_S + 6 * 86400 + 3600,
    )


@pytest.mark.parametrize("ascii_only", [False, True])
@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_the_heading_is_said_once_on_every_channel(
    kind: str, language: str, ascii_only: bool
) -> None:
    templates, policy = load_templates(), NotifyPolicy()
    change = _change(kind)
    push = render_notice(change, templates, language, policy, channel="push")
    sms = render_notice(change, templates, language, policy, channel="sms", ascii_only=ascii_only)
    # An app alert shows title and body together: the body goes on from the title.
    assert push.title not in push.body, (push.title, push.body)
    # An SMS has no title: it opens with the heading, once, and still says where.
    assert sms.body.startswith(sms.title), sms.body
    assert sms.body.count(sms.title) == 1, sms.body
    where = "Phuong Ben Nghe" if ascii_only else "Phường Bến Nghé"
    assert where in sms.body, sms.body
    assert "Phường Bến Nghé" in push.title + push.body


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_only_an_sms_asks_for_a_reply(kind: str, language: str) -> None:
    templates, policy = load_templates(), NotifyPolicy()
    for channel in ("push", "webhook", "console"):
        text = render_notice(_change(kind), templates, language, policy, channel=channel)
        assert not any(w in text.title + text.body for w in REPLY_WORDS), (channel, text)
    sms = render_notice(_change(kind), templates, language, policy, channel="sms")
    if kind == "outage_detected":
        assert ("Nhắn TRANGTHAI" if language == "vi" else "Reply STATUS") in sms.body


async def test_outbox_rows_say_each_channel_its_own_way(db: Database) -> None:
    ids = await seed_customers(db, 1, channels=("sms", "push"))
    await enqueue_detected(db, ids)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT channel, title, body FROM notifications ORDER BY channel")
        rows = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    push_title, push_body = rows["push"]
    sms_title, sms_body = rows["sms"]
    assert push_title == sms_title == "Mất điện tại Quận 1"
    assert push_title not in push_body
    assert "TRANGTHAI" not in push_body
    assert sms_body.startswith("Mất điện tại Quận 1: ")
    assert sms_body.count("Quận 1") == 1
    assert "Nhắn TRANGTHAI" in sms_body


async def test_the_console_prints_an_sms_as_it_is_sent(db: Database) -> None:
    ids = await seed_customers(db, 1, channels=("sms",))
    await enqueue_detected(db, ids)
    out = io.StringIO()
    await make_dispatcher(db, {"sms": ConsoleChannel(out)}).drain()
    line = out.getvalue().strip()
    assert line.count("Mất điện tại Quận 1") == 1, line


async def _bridge_bodies(db: Database, devices: list[tuple[str, str | None, str, str, str]]) -> str:
    """Confirm an outage on the first of ``devices`` (id, parent, kind, name, area) for one
    Vietnamese SMS customer and return the SMS body it is told."""
    async with db.connection() as conn:
        for device_id, parent, kind, name, area in devices:
            await conn.execute(
                "INSERT INTO devices (device_id, parent_id, kind, zone, name, area)"
                " VALUES (%s, %s, %s, 'z1', %s, %s)",
                [device_id, parent, kind, name, area],
            )
        await conn.execute(
            "INSERT INTO customers (customer_id, account_no, phone_e164, language, channels)"
            " VALUES ('K0', 'A0', '+84900000001', 'vi', '{sms}')"
        )
        await conn.execute(
            "INSERT INTO meters (meter_id, device_id, customer_id, zone)"
            " VALUES ('M0', %s, 'K0', 'z1')",
            [devices[0][0]],
        )
    row = OutageRow(
        "o1", devices[0][0], "z1", "confirmed", "inferred", DAY_S - 120, DAY_S - 60, None,
        0.9, 1, 1, 0, 0, None,
    )  # fmt: skip
    p = PersistedOutages(
        DAY_S, (), (row,), (OutageMeterRow("o1", "M0", "K0", "out", None),), (), ()
    )
    async with db.connection() as conn:
        saved = await save_outages_in(conn, p.outages, p.meters, p.timeline)
        p = PersistedOutages(DAY_S, (), p.outages, p.meters, (), (), saved)
        await NotifyBridge(load_templates()).on_persisted(p, conn)
        cur = await conn.execute("SELECT body FROM notifications")
        bodies = [r[0] for r in await cur.fetchall()]
    assert len(bodies) == 1
    return str(bodies[0])


async def test_a_notice_names_the_area_above_the_device(db: Database) -> None:
    body = await _bridge_bodies(
        db,
        [
            ("Z01-S01-F01-BRK", "Z01-S01", "breaker", "", ""),
            ("Z01-S01", None, "substation", "Z01-S01", "Phường Linh Trung"),
        ],
    )
    assert body.startswith("Mất điện tại Phường Linh Trung: "), body
    assert "Z01" not in body


async def test_a_grid_with_only_ids_says_your_area(db: Database) -> None:
    body = await _bridge_bodies(
        db,
        [
            ("Z01-S01-F01-BRK", "Z01-S01", "breaker", "Z01-S01-F01-BRK", ""),
            ("Z01-S01", None, "substation", "", ""),
        ],
    )
    assert body.startswith("Mất điện tại khu vực của quý khách: "), body
    assert "Z01" not in body


async def test_sms_churn_per_kind_and_customer_from_stored_rows(db: Database) -> None:
    ids = await seed_customers(db, 2, channels=("sms", "push"))
    outage = await enqueue_detected(db, ids)
    async with db.connection() as conn:
        # Three ETR updates and the restoration, as a storm sends them, all sent.
        for version in (2, 3, 4):
            await conn.execute(
                "INSERT INTO notifications (idempotency_key, customer_id, outage_id, kind,"
                " version, channel, language, body, status, segments, sent_at)"
                " SELECT customer_id || ':' || %s, customer_id, outage_id, 'etr_updated', %s,"
                " 'sms', 'vi', body, 'sent', 2, %s FROM notifications"
                " WHERE kind = 'outage_detected' AND channel = 'sms'",
                [version, version, datetime.fromtimestamp(DAY_S + 600 * version, UTC)],
            )
        await conn.execute(
            "UPDATE notifications SET status = 'sent', sent_at = %s, segments = 2"
            " WHERE kind = 'outage_detected'",
            [datetime.fromtimestamp(DAY_S, UTC)],
        )
        await conn.execute(
            "INSERT INTO notifications (idempotency_key, customer_id, outage_id, kind, version,"
            " channel, language, body, status, segments, created_at)"
            " VALUES ('r', %s, %s, 'restored', 5, 'sms', 'vi', 'x', 'pending', 1, %s)",
            [ids[0], outage, datetime.fromtimestamp(DAY_S + 4000, UTC)],
        )
        rows = await sms_by_kind(
            conn,
            from_s=DAY_S - 86400,
            to_s=(datetime.fromtimestamp(DAY_S, UTC) + timedelta(days=1)).timestamp(),
        )
    by_kind = {r.kind: r for r in rows}
    assert set(by_kind) == {"outage_detected", "etr_updated", "restored"}
    assert (by_kind["etr_updated"].sent, by_kind["etr_updated"].customers) == (6, 2)
    assert by_kind["etr_updated"].segments == 12
    assert (by_kind["restored"].sent, by_kind["restored"].waiting) == (0, 1)
    lines = sms_churn_lines(rows, Prices(sms_segment_vnd=850, zns_vnd=300))
    text = "\n".join(lines)
    assert "etr_updated" in text, text
    assert "3.0 per customer" in text, text
    assert "10,200 VND" in text, text  # 12 segments at 850 VND
    assert "13,600 VND" in text, text  # 16 segments in all (push is free)
    assert "75% of the SMS cost" in text, text  # ETR updates: 12 of 16 segments
