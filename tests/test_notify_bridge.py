"""The bridge from detection's persisted steps to the notifier's outbox, on the real
PostgreSQL: who is told what, once, in the outage's own transaction; ETR updates only
when the update policy says so."""

from __future__ import annotations

from typing import Any

import pytest
from test_notify_support import DAY_S

from gridwatch._errors import StoreError
from gridwatch._notify_bridge import NotifyBridge, customer_status, notice_text, plan_notices
from gridwatch.detection import PersistedOutages
from gridwatch.etr import UpdatePolicy
from gridwatch.store import Database
from gridwatch.store._etr import EtrRow, record_etrs
from gridwatch.store._outages import OutageMeterRow, OutageRow, TimelineRow, save_outages_in
from notifier import load_templates

CUSTOMERS = [f"K{i}" for i in range(6)]


async def _seed(db: Database) -> None:
    """One feeder: BRK over TX (K4, K5 behind TX); K0 has two meters."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone, name) VALUES"
            " ('BRK', 'breaker', 'z1', 'Phường Bến Nghé'), ('TX', 'transformer', 'z1', '')"
        )
        for i, c in enumerate(CUSTOMERS):
            await conn.execute(
                "INSERT INTO customers (customer_id, account_no, name, phone_e164, language,"
                " channels) VALUES (%s, %s, 'x', %s, %s, '{sms}')",
                [c, f"A{c}", f"+8490{i:07d}", "en" if i % 2 else "vi"],
            )
        for c in CUSTOMERS:
            dev = "TX" if c in ("K4", "K5") else "BRK"
            await conn.execute(
                "INSERT INTO meters (meter_id, device_id, customer_id, zone) VALUES (%s, %s, %s,"
                " 'z1')",
                [f"M-{c}", dev, c],
            )
        await conn.execute(
            "INSERT INTO meters (meter_id, device_id, customer_id, zone)"
            " VALUES ('M-K0-b', 'BRK', 'K0', 'z1')"
        )


def _row(key: str, device: str, state: str, *, confirmed: bool = True, **kw: Any) -> OutageRow:
    fields: dict[str, Any] = {
        "engine_key": key,
        "device_id": device,
        "zone": "z1",
        "state": state,
        "cause": "inferred",
        "started_s": DAY_S - 120,
        "confirmed_s": DAY_S - 60 if confirmed else None,
        "restored_s": None,
        "confidence": 0.9,
        "meters_affected": 7,
        "customers_affected": 6,
        "meters_restored": 0,
        "customers_restored": 0,
        "parent_key": None,
    }
    fields.update(kw)
    return OutageRow(**fields)


def _meters(key: str, status: dict[str, str]) -> list[OutageMeterRow]:
    rows = []
    for meter, st in status.items():
        customer = meter.split("-")[1]
        rows.append(OutageMeterRow(key, meter, customer, st, DAY_S if st == "restored" else None))
    return rows


ALL_OUT = {"M-K0": "out", "M-K0-b": "out", **{f"M-{c}": "out" for c in CUSTOMERS[1:]}}


async def _step(
    db: Database,
    bridge: NotifyBridge,
    rows: list[OutageRow],
    meters: list[OutageMeterRow],
    at_s: float = DAY_S,
    timeline: tuple[TimelineRow, ...] = (),
    fail_after: bool = False,
) -> PersistedOutages:
    """What the detection runner does: outage rows + the hook in one transaction."""
    p = PersistedOutages(at_s, (), tuple(rows), tuple(meters), timeline, ())
    async with db.connection() as conn:
        ids = await save_outages_in(conn, p.outages, p.meters, p.timeline)
        p = PersistedOutages(at_s, (), p.outages, p.meters, p.timeline, (), ids)
        await bridge.on_persisted(p, conn)
        if fail_after:
            raise StoreError("a later write failed")
    return p


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
        _meters("k", {"M-K0": "restored", "M-K0-b": "out", "M-K1": "restored"})
        + _meters("k", {"M-K2": "transferred", "M-K3": "unverified", "M-K4": "restored"})
        + [OutageMeterRow("k", "M-orphan", None, "out", None)]
    )
    assert status.out == {"K0"}
    assert status.restored == {"K1", "K4"}


def test_plan_skips_unconfirmed_and_cancelled_outages() -> None:
    rows = (_row("a", "BRK", "predicted", confirmed=False), _row("b", "TX", "cancelled"))
    meters = tuple(_meters("a", {"M-K1": "out"}) + _meters("b", {"M-K4": "out"}))
    assert plan_notices(PersistedOutages(DAY_S, (), rows, meters, (), ())) == []


def test_notice_text_strips_control_characters_and_caps_length() -> None:
    assert notice_text("Q1\x00\n\x1b[2Jfeeder") == "Q1   [2Jfeeder"
    assert len(notice_text("x" * 10_000)) == 200


async def test_confirmed_outage_tells_each_customer_once_in_their_language(
    db: Database, bridge: NotifyBridge
) -> None:
    await _seed(db)
    # Predicted: nobody told (it may still be withdrawn).
    await _step(
        db, bridge, [_row("o1", "BRK", "predicted", confirmed=False)], _meters("o1", ALL_OUT)
    )
    assert await _told(db) == []
    rows = [_row("o1", "BRK", "confirmed")]
    await _step(db, bridge, rows, _meters("o1", ALL_OUT))
    await _step(db, bridge, rows, _meters("o1", ALL_OUT))  # the next step: nothing new
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
    await _seed(db)
    await _step(db, bridge, [_row("o1", "BRK", "confirmed")], _meters("o1", ALL_OUT))
    partial = {**ALL_OUT, "M-K1": "restored", "M-K0": "restored"}  # K0's second meter: out
    await _step(db, bridge, [_row("o1", "BRK", "partially_restored")], _meters("o1", partial))
    restored = [(c, v) for c, k, v, _, _ in await _told(db) if k == "restored"]
    assert restored == [("K1", 2)]
    done = {m: "restored" for m in ALL_OUT}
    done["M-K3"] = "unverified"  # never answered: not told "restored" while maybe dark
    await _step(db, bridge, [_row("o1", "BRK", "restored", restored_s=DAY_S)], _meters("o1", done))
    await _step(db, bridge, [_row("o1", "BRK", "restored", restored_s=DAY_S)], _meters("o1", done))
    names = sorted(c for c, k, *_ in await _told(db) if k == "restored")
    assert names == ["K0", "K1", "K2", "K4", "K5"]


async def test_nested_outage_customers_hear_still_out_never_restored(
    db: Database, bridge: NotifyBridge
) -> None:
    await _seed(db)
    await _step(db, bridge, [_row("o1", "BRK", "confirmed")], _meters("o1", ALL_OUT))
    back = {m: "restored" for m in ALL_OUT} | {"M-K4": "transferred", "M-K5": "transferred"}
    await _step(
        db,
        bridge,
        [
            _row("o1", "BRK", "restored", restored_s=DAY_S),
            _row("o2", "TX", "confirmed", parent_key="o1"),
        ],
        _meters("o1", back) + _meters("o2", {"M-K4": "out", "M-K5": "out"}),
    )
    told = [(c, k) for c, k, *_ in await _told(db)]
    assert ("K4", "restored") not in told
    assert ("K5", "restored") not in told
    assert ("K4", "still_out_nested") in told
    assert ("K5", "still_out_nested") in told
    assert sorted(c for c, k in told if k == "restored") == ["K0", "K1", "K2", "K3"]
    # The transformer repaired: now they are told, once.
    await _step(
        db,
        bridge,
        [_row("o2", "TX", "restored", parent_key="o1", restored_s=DAY_S + 600)],
        _meters("o2", {"M-K4": "restored", "M-K5": "restored"}),
        at_s=DAY_S + 600,
    )
    told = [(c, k) for c, k, *_ in await _told(db)]
    assert told.count(("K4", "restored")) == 1
    assert told.count(("K5", "restored")) == 1
    assert told.count(("K4", "outage_detected")) == 1


async def test_notices_roll_back_with_the_outage_rows(db: Database, bridge: NotifyBridge) -> None:
    await _seed(db)
    with pytest.raises(StoreError):
        await _step(
            db, bridge, [_row("o1", "BRK", "confirmed")], _meters("o1", ALL_OUT), fail_after=True
        )
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM outages), count(*) FROM notifications"
        )
        assert await cur.fetchone() == (0, 0)


async def test_etr_update_only_when_the_policy_says_so(db: Database) -> None:
    await _seed(db)
    bridge = NotifyBridge(load_templates(), etr_policy=UpdatePolicy(max_updates=1))
    p = await _step(db, bridge, [_row("o1", "BRK", "confirmed")], _meters("o1", ALL_OUT))
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
    await _step(db, bridge, [_row("o1", "BRK", "restored", restored_s=DAY_S)], _meters("o1", done))
    assert await etr(DAY_S + 1200, DAY_S + 30000) == 0


async def test_a_stale_step_announces_nothing_on_an_outage_an_operator_closed(
    db: Database, bridge: NotifyBridge
) -> None:
    from datetime import UTC, datetime

    from gridwatch.api import create_token
    from gridwatch.store._api_queries import apply_outage_action
    from gridwatch.store._audit import Actor
    from gridwatch.store._auth import api_tokens_matching

    await _seed(db)
    # Predicted (nobody told); an operator calls it a false positive before the engine's
    # next poll of the audit log, and the engine's stale step then confirms it.
    p = await _step(
        db, bridge, [_row("o1", "BRK", "predicted", confirmed=False)], _meters("o1", ALL_OUT)
    )
    at = datetime.fromtimestamp(DAY_S, UTC)
    await create_token(db, "operator", "op")
    (token,) = await api_tokens_matching(db, "op")
    actor = Actor(token.token_id, "op", "operator")
    await apply_outage_action(db, actor, p.outage_ids["o1"], "cancel", "false positive", at)
    await _step(db, bridge, [_row("o1", "BRK", "confirmed")], _meters("o1", ALL_OUT))
    assert await _told(db) == []
    # Restored by an operator: a stale step may still tell the told "restored", never
    # announce the outage to anyone new.
    await _step(
        db, bridge, [_row("o2", "TX", "confirmed")], _meters("o2", {"M-K4": "out"}), at_s=DAY_S
    )
    p2 = await _step(db, bridge, [_row("o2", "TX", "confirmed")], _meters("o2", {"M-K4": "out"}))
    await apply_outage_action(db, actor, p2.outage_ids["o2"], "restore", "crew closed it", at)
    await _step(
        db, bridge, [_row("o2", "TX", "confirmed")], _meters("o2", {"M-K4": "out", "M-K5": "out"})
    )
    assert [(c, k) for c, k, *_ in await _told(db)] == [("K4", "outage_detected")]
    assert bridge.counts["closed_row_skipped"] == 2
