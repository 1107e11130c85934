"""The bridge from detection's persisted steps to the notifier's outbox, on the real
PostgreSQL: who is told what, once, in the outage's own transaction; ETR updates only
when the update policy says so."""

from __future__ import annotations

import pytest

from gridwatch.core.errors import StoreError
from gridwatch.detection import PersistedOutages
from gridwatch.etr import UpdatePolicy
from gridwatch.notices.outage_notices import (
    NotifyBridge,
    customer_status,
    notice_text,
    plan_notices,
)
from gridwatch.store import Database
from gridwatch.store.etr import EtrRow, record_etrs
from gridwatch.store.outages import OutageMeterRow
from notifier import load_templates
from tests.notify_support import DAY_S
from tests.outage_notices_support import (
    ALL_OUT,
    CUSTOMERS,
    meter_rows,
    outage_row,
    persist_step,
    seed_feeder,
)


async def _told(db: Database) -> list[tuple[str, str, int, str, str]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT customer_id, kind, version, language, body FROM notifications"
            " ORDER BY outage_id, version, customer_id"
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in await cur.fetchall()]


@pytest.fixture
def bridge() -> NotifyBridge:
    return NotifyBridge(load_templates())


def test_customer_status_counts_a_premises_once_and_never_restores_the_dark() -> None:
    status = customer_status(
        meter_rows("k", {"M-K0": "restored", "M-K0-b": "out", "M-K1": "restored"})
        + meter_rows("k", {"M-K2": "transferred", "M-K3": "unverified", "M-K4": "restored"})
        + [OutageMeterRow("k", "M-orphan", None, "out", None)]
    )
    assert status.out == {"K0"}
    assert status.restored == {"K1", "K4"}


def test_plan_skips_unconfirmed_and_cancelled_outages() -> None:
    rows = (
        outage_row("a", "BRK", "predicted", confirmed=False),
        outage_row("b", "TX", "cancelled"),
    )
    meters = tuple(meter_rows("a", {"M-K1": "out"}) + meter_rows("b", {"M-K4": "out"}))
    assert plan_notices(PersistedOutages(DAY_S, (), rows, meters, (), ())) == []


def test_notice_text_strips_control_characters_and_caps_length() -> None:
    assert notice_text("Q1\x00\n\x1b[2Jfeeder") == "Q1   [2Jfeeder"
    assert len(notice_text("x" * 10_000)) == 200


async def test_confirmed_outage_tells_each_customer_once_in_their_language(
    db: Database, bridge: NotifyBridge
) -> None:
    await seed_feeder(db)
    # Predicted: nobody told (it may still be withdrawn).
    await persist_step(
        db,
        bridge,
        [outage_row("o1", "BRK", "predicted", confirmed=False)],
        meter_rows("o1", ALL_OUT),
    )
    assert await _told(db) == []
    rows = [outage_row("o1", "BRK", "confirmed")]
    await persist_step(db, bridge, rows, meter_rows("o1", ALL_OUT))
    await persist_step(db, bridge, rows, meter_rows("o1", ALL_OUT))  # the next step: nothing new
    told = await _told(db)
    assert [(c, k) for c, k, *_ in told] == [(c, "outage_detected") for c in CUSTOMERS]
    assert {v for _, _, v, _, _ in told} == {1}
    langs = {c: lang for c, _, _, lang, _ in told}
    assert langs["K0"] == "vi"
    assert langs["K1"] == "en"
    bodies = {c: b for c, _, _, _, b in told}
    assert "Mất điện tại Phường Bến Nghé" in bodies["K0"]  # the device's name, not its id
    assert "Power outage at Phuong Ben Nghe" in bodies["K1"]  # English SMS go plain


async def test_partial_restoration_tells_the_restored_at_once_and_the_rest_later(
    db: Database, bridge: NotifyBridge
) -> None:
    await seed_feeder(db)
    await persist_step(
        db, bridge, [outage_row("o1", "BRK", "confirmed")], meter_rows("o1", ALL_OUT)
    )
    partial = {**ALL_OUT, "M-K1": "restored", "M-K0": "restored"}  # K0's second meter: out
    await persist_step(
        db, bridge, [outage_row("o1", "BRK", "partially_restored")], meter_rows("o1", partial)
    )
    restored = [(c, v) for c, k, v, _, _ in await _told(db) if k == "restored"]
    assert restored == [("K1", 2)]
    done = {m: "restored" for m in ALL_OUT}
    done["M-K3"] = "unverified"  # never answered: not told "restored" while maybe dark
    await persist_step(
        db, bridge, [outage_row("o1", "BRK", "restored", restored_s=DAY_S)], meter_rows("o1", done)
    )
    await persist_step(
        db, bridge, [outage_row("o1", "BRK", "restored", restored_s=DAY_S)], meter_rows("o1", done)
    )
    names = sorted(c for c, k, *_ in await _told(db) if k == "restored")
    assert names == ["K0", "K1", "K2", "K4", "K5"]


async def test_nested_outage_customers_hear_still_out_never_restored(
    db: Database, bridge: NotifyBridge
) -> None:
    await seed_feeder(db)
    await persist_step(
        db, bridge, [outage_row("o1", "BRK", "confirmed")], meter_rows("o1", ALL_OUT)
    )
    back = {m: "restored" for m in ALL_OUT} | {"M-K4": "transferred", "M-K5": "transferred"}
    await persist_step(
        db,
        bridge,
        [
            outage_row("o1", "BRK", "restored", restored_s=DAY_S),
            outage_row("o2", "TX", "confirmed", parent_key="o1"),
        ],
        meter_rows("o1", back) + meter_rows("o2", {"M-K4": "out", "M-K5": "out"}),
    )
    told = [(c, k) for c, k, *_ in await _told(db)]
    assert ("K4", "restored") not in told
    assert ("K5", "restored") not in told
    assert ("K4", "still_out_nested") in told
    assert ("K5", "still_out_nested") in told
    assert sorted(c for c, k in told if k == "restored") == ["K0", "K1", "K2", "K3"]
    # The transformer repaired: now they are told, once.
    await persist_step(
        db,
        bridge,
        [outage_row("o2", "TX", "restored", parent_key="o1", restored_s=DAY_S + 600)],
        meter_rows("o2", {"M-K4": "restored", "M-K5": "restored"}),
        at_s=DAY_S + 600,
    )
    told = [(c, k) for c, k, *_ in await _told(db)]
    assert told.count(("K4", "restored")) == 1
    assert told.count(("K5", "restored")) == 1
    assert told.count(("K4", "outage_detected")) == 1


async def test_notices_roll_back_with_the_outage_rows(db: Database, bridge: NotifyBridge) -> None:
    await seed_feeder(db)
    with pytest.raises(StoreError):
        await persist_step(
            db,
            bridge,
            [outage_row("o1", "BRK", "confirmed")],
            meter_rows("o1", ALL_OUT),
            fail_after=True,
        )
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM outages), count(*) FROM notifications"
        )
        assert await cur.fetchone() == (0, 0)


async def test_etr_update_only_when_the_policy_says_so(db: Database) -> None:
    await seed_feeder(db)
    bridge = NotifyBridge(load_templates(), etr_policy=UpdatePolicy(max_updates=1))
    p = await persist_step(
        db, bridge, [outage_row("o1", "BRK", "confirmed")], meter_rows("o1", ALL_OUT)
    )
    oid = p.outage_ids["o1"]

    async def etr(at_s: float, p50_s: float) -> int:
        await record_etrs(
            db, [EtrRow(oid, at_s, p50_s - 1800, p50_s, p50_s + 1800, "model", "v1", {})]
        )
        return await bridge.etr_round(db, at_s)

    def kinds(told: list[tuple[str, str, int, str, str]]) -> list[str]:
        return [k for c, k, *_ in told if c == "K1"]

    assert await etr(DAY_S, DAY_S + 7200) == 6  # first ETR customers hear
    assert await etr(DAY_S + 300, DAY_S + 7500) == 0  # 5 min later, moved 5 min: no churn
    assert await etr(DAY_S + 600, DAY_S + 10800) == 6  # moved an hour: told
    assert await etr(DAY_S + 900, DAY_S + 18000) == 0  # the update limit (1) is reached
    assert kinds(await _told(db)) == ["outage_detected", "etr_updated", "etr_updated"]
    body = [b for c, k, _, _, b in await _told(db) if c == "K1" and k == "etr_updated"][-1]
    assert "12:30 - 13:30" in body, body  # P10-P90 around 13:00 local, rounded to 15 min
    # Restored: no more ETR notices even if the ETR moves.
    done = {m: "restored" for m in ALL_OUT}
    await persist_step(
        db, bridge, [outage_row("o1", "BRK", "restored", restored_s=DAY_S)], meter_rows("o1", done)
    )
    assert await etr(DAY_S + 1200, DAY_S + 30000) == 0


async def test_a_stale_step_announces_nothing_on_an_outage_an_operator_closed(
    db: Database, bridge: NotifyBridge
) -> None:
    from datetime import UTC, datetime

    from gridwatch.api import create_token
    from gridwatch.core.clock import ManualClock
    from gridwatch.outages import CancelOutage, OperatorDesk, RestoreOutage
    from gridwatch.store.audit import Actor
    from gridwatch.store.auth import api_tokens_matching

    await seed_feeder(db)
    # Predicted (nobody told); an operator calls it a false positive, and a step the
    # engine decided before it (its view stale) then confirms it.
    p = await persist_step(
        db,
        bridge,
        [outage_row("o1", "BRK", "predicted", confirmed=False)],
        meter_rows("o1", ALL_OUT),
    )
    at = datetime.fromtimestamp(DAY_S, UTC)
    await create_token(db, "operator", "op")
    (token,) = await api_tokens_matching(db, "op")
    actor = Actor(token.token_id, "op", "operator")
    desk = OperatorDesk(db, ManualClock(at.timestamp()))  # no runner: the steps are stale
    await desk.change_state(CancelOutage(p.outage_ids["o1"], "false positive"), actor)
    await persist_step(
        db, bridge, [outage_row("o1", "BRK", "confirmed")], meter_rows("o1", ALL_OUT)
    )
    assert await _told(db) == []
    # Restored by an operator: a stale step may still tell the told "restored", never
    # announce the outage to anyone new.
    await persist_step(
        db,
        bridge,
        [outage_row("o2", "TX", "confirmed")],
        meter_rows("o2", {"M-K4": "out"}),
        at_s=DAY_S,
    )
    p2 = await persist_step(
        db, bridge, [outage_row("o2", "TX", "confirmed")], meter_rows("o2", {"M-K4": "out"})
    )
    await desk.change_state(RestoreOutage(p2.outage_ids["o2"], "crew closed it"), actor)
    await persist_step(
        db,
        bridge,
        [outage_row("o2", "TX", "confirmed")],
        meter_rows("o2", {"M-K4": "out", "M-K5": "out"}),
    )
    assert [(c, k) for c, k, *_ in await _told(db)] == [("K4", "outage_detected")]
    assert bridge.counts["closed_row_skipped"] == 2
