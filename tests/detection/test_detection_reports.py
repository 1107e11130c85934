"""Customer OUT reports (stored by the inbound-SMS webhook) become detection evidence: the
runner maps each new report to the customer's meters and feeds it as REPORT_OUT at the
report's time, on the real PostgreSQL; bad reports are skipped with a reason, a restart
reads recent reports again, and reports an operator already judged are not re-fed."""

from __future__ import annotations

from typing import Any

import numpy as np

import detectors as det
from gridwatch.core.clock import ManualClock
from gridwatch.detection import DetectionRunner
from gridwatch.detection._reports import report_evidence
from gridwatch.outages import EngineConfig, OperatorDesk
from gridwatch.store import Database
from gridwatch.store.customer_reports import (
    CustomerReportRow,
    add_customer_report,
    insert_customer_report,
)
from gridwatch.topology import save_topology
from ingest import CommittedBatch, MeterEvent, Reading
from simulators import toy_grid
from tests.api_support import client_for, make_app, make_tokens

T = 1_795_413_600.0  # 2026-11-23T06:00:00Z
GRID = toy_grid(3)
TOPO = GRID.topology
TX = "Z01-S01-F01-L003-T02"
# Suspect pings stay unanswered and never time out here: only gasps and reports count.
CONFIG = EngineConfig(ping_timeout_s=3600.0)


def _tx_meters() -> list[int]:
    return sorted(GRID.subtree_meters(TOPO.device_index[TX]).tolist())


def _customer_of(meter: int) -> str:
    return str(TOPO.customers.ids[TOPO.meters.customer[meter]])


async def _rows(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT outage_id, engine_key, device_id, state, scope, meters_affected"
            " FROM outages ORDER BY outage_id"
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]


async def _sms_report(db: Database, customer_id: str, at_s: float, sid: str) -> bool:
    async with db.connection() as conn:  # the inbound-SMS webhook's own insert
        return await insert_customer_report(
            conn,
            customer_id=customer_id,
            phone_e164="+84900000001",
            body="OUT",
            provider_id=sid,
            received_at_s=at_s,
        )


async def _one_gasp_under_tx(db: Database, clock: ManualClock) -> DetectionRunner:
    await save_topology(db, TOPO)
    runner = DetectionRunner(db, TOPO, clock=clock, engine_config=CONFIG)
    await runner.start()
    everyone = [str(m) for m in TOPO.meters.ids.tolist()]
    await runner.step(
        [CommittedBatch([Reading(m, T, 230.0, None, None) for m in everyone], [], [])]
    )
    first = str(TOPO.meters.ids[_tx_meters()[0]])
    clock.set(T + 10)
    await runner.step(
        [CommittedBatch([], [MeterEvent(first, T + 5, "last_gasp", 1, None, None)], [])]
    )
    for t in (T + 60, T + 120):
        clock.set(t)
        await runner.step([])
    # One gasp in six is not enough for the transformer (model section 2's worked example),
    # but with no restore and no later "on" it is an outage of that service point.
    (row,) = await _rows(db)
    assert (row["device_id"], row["scope"], row["meters_affected"]) == (TX, "premise", 1)
    return runner


async def test_a_customer_report_tips_the_transformer(db: Database) -> None:
    clock = ManualClock(T)
    runner = await _one_gasp_under_tx(db, clock)
    reporter = _tx_meters()[1]
    # Hostile and useless reports around the good one: a customer with no meter, a meter
    # the topology does not know, a report from three days ago, one from the far future.
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO customers (customer_id, account_no, name, phone_e164)"
            " VALUES ('C-NOMETER', 'ACC-X', 'x', '+84900000099')"
        )
    assert await _sms_report(db, "C-NOMETER", T + 110, "SM-a")
    await add_customer_report(db, reported_s=T + 110, kind="out", meter_id="M-NOPE")
    await add_customer_report(db, reported_s=T - 3 * 86400, kind="out", meter_id="M-NOPE2")
    old_meter = str(TOPO.meters.ids[_tx_meters()[2]])
    await add_customer_report(db, reported_s=T - 3 * 86400, kind="out", meter_id=old_meter)
    await add_customer_report(db, reported_s=T + 10 * 86400, kind="out", meter_id=old_meter)
    assert await _sms_report(db, _customer_of(reporter), T + 115, "SM-b")
    assert not await _sms_report(db, _customer_of(reporter), T + 115, "SM-b")  # retried

    clock.set(T + 121)
    await runner.step([])
    ms = runner.engine.meter_state
    assert int(ms.state[reporter]) == det.OFF
    assert int(ms.source[reporter]) == det.REPORT_OUT
    assert float(ms.since_s[reporter]) == T + 115
    assert int(ms.state[_tx_meters()[2]]) != det.OFF  # the stale and future reports
    (premise,) = await _rows(db)
    assert (premise["device_id"], premise["scope"]) == (TX, "premise")
    # The report and the gasp together tip the transformer: after the declaration delay
    # from the report, the same outage takes the whole transformer.
    clock.set(T + 115 + CONFIG.declaration_delay_s + 1)
    await runner.step([])
    (row,) = await _rows(db)
    assert (row["outage_id"], row["scope"]) == (premise["outage_id"], "device")
    assert row["device_id"] == TX
    assert row["meters_affected"] == len(_tx_meters())
    c = runner.customer_reports.counts
    assert c["reports"] == 6
    assert c["skipped:no_meters"] == 1
    assert c["skipped:unknown_meter"] == 2
    assert c["rejected:too_old"] == 1
    assert c["rejected:future"] == 1
    # Read once: the next step feeds nothing again.
    await runner.step([])
    assert runner.customer_reports.counts["reports"] == 6

    # A restart reads the last hour's reports again: the evidence is not lost.
    clock.set(T + 200)
    again = DetectionRunner(db, TOPO, clock=clock, engine_config=CONFIG)
    await again.start()
    await again.step([])
    # The good report again, plus the stale and the future one (rejected again).
    assert again.customer_reports.counts["evidence"] == 3
    assert again.customer_reports.counts["rejected:too_old"] == 1
    # (The outage taken back re-seeds its meters as gasps at its start; the report, newer,
    # extends the run but never downgrades a gasp as its source.)
    assert int(again.engine.meter_state.state[reporter]) == det.OFF
    assert float(again.engine.meter_state.last_s[reporter]) == T + 115


async def test_reports_judged_by_an_operator_are_not_fed_again(db: Database) -> None:
    clock = ManualClock(T)
    runner = await _one_gasp_under_tx(db, clock)
    reporter = _tx_meters()[1]
    assert await _sms_report(db, _customer_of(reporter), T + 115, "SM-c")
    judged_s = T + 115 + CONFIG.declaration_delay_s + 1  # the transformer's outage by then
    clock.set(judged_s)
    await runner.step([])
    (row,) = await _rows(db)
    assert row["scope"] == "device"
    tokens = await make_tokens(db)
    clock.set(judged_s + 9)
    desk = OperatorDesk(db, clock, inbox=runner)  # the service's desk hands it to the runner
    async with client_for(make_app(db, clock, desk=desk)) as http:
        resp = await http.post(
            f"/api/v1/outages/{row['outage_id']}/cancel",
            json={"reason": "crew found power on"},
            headers=tokens.headers("operator"),
        )
    assert resp.status_code == 200, resp.text
    clock.set(judged_s + 10)
    await runner.step([])
    assert int(runner.engine.meter_state.state[reporter]) == det.UNKNOWN
    # After a restart the report is still within the lookback, but the operator judged it.
    clock.set(judged_s + 40)
    again = DetectionRunner(db, TOPO, clock=clock, engine_config=CONFIG)
    await again.start()
    await again.step([])
    assert again.customer_reports.counts["skipped:operator_judged"] == 1
    assert int(again.engine.meter_state.state[reporter]) != det.OFF
    # A new report after the cancel is new evidence.
    assert await _sms_report(db, _customer_of(reporter), judged_s + 45, "SM-d")
    clock.set(judged_s + 46)
    await again.step([])
    assert int(again.engine.meter_state.source[reporter]) == det.REPORT_OUT


def test_report_evidence_maps_kinds_and_skips_with_reasons() -> None:
    index = {"M1": 0, "M2": 1}
    rows = [
        CustomerReportRow(1, "out", T, ("M1", "M2")),  # a customer with two meters
        CustomerReportRow(2, "on", T + 5, ("M1",)),
        CustomerReportRow(3, "out", T, ()),
        CustomerReportRow(4, "meteor", T, ("M1",)),
        CustomerReportRow(5, "out", T, ("M-UNKNOWN",)),
        CustomerReportRow(6, "out", T - 1, ("M2",)),  # judged by an operator at T - 1
    ]
    ev, skipped = report_evidence(rows, index, {"M2": T - 1})
    assert ev["meter"].tolist() == [0, 1, 0]
    assert ev["kind"].tolist() == [det.REPORT_OUT, det.REPORT_OUT, det.REPORT_ON]
    assert ev["ts_s"].tolist() == [T, T, T + 5]
    assert bool(np.isnan(ev["v_rms_v"]).all())
    assert dict(skipped) == {
        "no_meters": 1,
        "bad_kind": 1,
        "unknown_meter": 1,
        "operator_judged": 1,
    }
