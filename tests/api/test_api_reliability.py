"""IEEE 1366 indices: the pure functions against hand-worked examples, then the endpoint
against the real database."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridwatch.outages.reliability import indices, major_event_threshold, reliability_report
from gridwatch.store import Database
from gridwatch.store.outages import OutageRow, save_outages
from gridwatch.store.reliability import MomentaryRow, record_momentaries
from tests.api_support import NOW_S, client_for, make_app, make_tokens, seed_network, seed_outages

F = np.float64


def test_indices_by_hand() -> None:
    # 100 customers; day 0: 10 out for 60 min; day 1: 50 out for 300 min; 20 momentary.
    got = indices(np.array([10, 50], F), np.array([600, 15000], F), np.array([20, 0], F), 100)
    assert got.saifi == pytest.approx(0.6)
    assert got.saidi_min == pytest.approx(156.0)
    assert got.caidi_min == pytest.approx(260.0)
    assert got.maifi_e == pytest.approx(0.2)
    none = indices(np.zeros(0, F), np.zeros(0, F), np.zeros(0, F), 100)
    assert none.saifi == 0
    assert none.caidi_min is None
    assert indices(np.ones(1, F), np.ones(1, F), np.ones(1, F), 0).saifi == 0
    with pytest.raises(ValueError, match="same length"):
        indices(np.ones(2, F), np.ones(1, F), np.ones(1, F), 1)


def test_threshold_by_hand() -> None:
    # ln(daily SAIDI) = 0, 1, 2: alpha = 1, sample beta = 1, T_MED = e^3.5.
    t = major_event_threshold(np.array([1.0, math.e, math.e**2, 0.0, 0.0]))
    assert t is not None
    assert t.alpha == pytest.approx(1.0)
    assert t.beta == pytest.approx(1.0)
    assert t.t_med_min == pytest.approx(math.exp(3.5))
    assert t.history_days == 3  # zero days are left out (ln 0 is undefined)
    assert major_event_threshold(np.array([5.0])) is None
    assert major_event_threshold(np.zeros(10)) is None


def test_major_event_days_are_reported_apart() -> None:
    t = major_event_threshold(np.array([1.0, math.e, math.e**2]))
    report = reliability_report(
        np.array([20000, 20001], np.int64),
        np.array([10, 50], F),
        np.array([600, 15000], F),
        np.array([20, 0], F),
        100,
        t,
    )
    # Day SAIDI 6 and 150 minutes; T_MED = 33.1: the second day is a major event day.
    assert report.major_event_days == [(20001, pytest.approx(150.0))]
    assert report.excluding_major_events.saidi_min == pytest.approx(6.0)
    assert report.excluding_major_events.caidi_min == pytest.approx(60.0)
    assert report.excluding_major_events.maifi_e == pytest.approx(0.2)
    assert report.major_events.saifi == pytest.approx(0.5)
    assert report.all_days.saidi_min == pytest.approx(156.0)
    plain = reliability_report(
        np.array([1], np.int64), np.ones(1, F), np.ones(1, F), np.zeros(1, F), 10, None
    )
    assert plain.major_event_days == []
    assert plain.excluding_major_events == plain.all_days


async def test_endpoint_against_the_database(db: Database) -> None:
    await seed_network(db)  # 6 customers served (5 in Z1)
    await seed_outages(db)
    day = 86400.0
    # History (before the period): one customer out 6, 6e and 6e^2 minutes on three days,
    # so daily SAIDI is 1, e, e^2 minutes and T_MED = e^3.5 = 33.1 minutes.
    history = [
        OutageRow(
            f"H{i}",
            "T1",
            "Z1",
            "restored",
            "x",
            NOW_S - (100 + i) * day,
            None,
            NOW_S - (100 + i) * day + 6 * 60 * math.e**i,
            1.0,
            1,
            1,
            1,
            1,
            None,
        )
        for i in range(3)
    ]
    await save_outages(db, history)
    await record_momentaries(
        db, [MomentaryRow("R1", "Z1", NOW_S - day, NOW_S - day + 2, 3, 3, "reclose")]
    )
    cancelled = OutageRow(
        "FP", "T1", "Z1", "cancelled", "x", NOW_S - 100, None, None, 0.1, 1, 1, 0, 0, None
    )
    await save_outages(db, [cancelled])
    tokens = await make_tokens(db)
    async with client_for(make_app(db)) as http:
        response = await http.get(
            "/api/v1/reliability",
            params={"start": "2026-11-22", "end": "2026-11-24"},
            headers=tokens.headers("viewer"),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        bad = await http.get(
            "/api/v1/reliability",
            params={"start": "2026-11-24", "end": "2026-11-22"},
            headers=tokens.headers("viewer"),
        )
        assert bad.status_code == 422
        assert bad.json()["fields"][0]["field"] == "end"
        huge = await http.get(
            "/api/v1/reliability",
            params={"start": "1990-01-01", "end": "2026-01-01"},
            headers=tokens.headers("viewer"),
        )
        assert huge.status_code == 422
    assert body["customers_served"] == 6
    # Period: O-T4 (1 customer, 106.67 min, 22 Nov), O-R1 (4 x 60 min) and O-T3 (1 x 10 min)
    # on 23 Nov (local); the cancelled false positive is not an interruption.
    all_days = body["all_days"]
    assert all_days["customer_interruptions"] == pytest.approx(6)
    assert all_days["saifi"] == pytest.approx(1.0)
    assert all_days["customer_minutes"] == pytest.approx(6400 / 60 + 240 + 10)
    assert all_days["saidi_min"] == pytest.approx((6400 / 60 + 250) / 6)
    assert all_days["maifi_e"] == pytest.approx(0.5)
    threshold = body["threshold"]
    assert threshold["t_med_min"] == pytest.approx(math.exp(3.5))
    assert threshold["history_days"] == 3
    # 23 Nov: SAIDI 250/6 = 41.7 > 33.1, a major event day; 22 Nov (17.8) is not.
    assert body["major_event_days"] == [{"day": "2026-11-23", "saidi_min": pytest.approx(250 / 6)}]
    assert body["excluding_major_events"]["saidi_min"] == pytest.approx(6400 / 60 / 6)
    assert body["major_events"]["saifi"] == pytest.approx(5 / 6)
