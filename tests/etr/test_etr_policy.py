"""Customer update policy (churn control), rounding/windows, vi/en wording, and the
estimate/override rules (pure: no database)."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from detectors.etr import SurvivalModel, synthetic_history
from gridwatch.etr import (
    CustomerWindow,
    EtrConfig,
    HistoryRecord,
    LastNotice,
    OpenOutage,
    Override,
    UpdatePolicy,
    check_override,
    customer_window,
    decide_update,
    estimate_etrs,
    fit_model,
    format_window,
    history_from_records,
)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
P = UpdatePolicy()


def local(h: int, m: int, day: int = 23) -> float:
    return datetime(2026, 11, day, h, m, tzinfo=TZ).timestamp()


def test_first_notice_is_always_sent() -> None:
    d = decide_update(None, local(14, 20), local(14, 50), local(15, 10), local(14, 0), P)
    assert d.notify
    assert d.reason == "first_notice"


def test_small_moves_are_not_sent_and_big_ones_are() -> None:
    last = LastNotice(
        notified_at_s=local(14, 0), p50_s=local(16, 0), window_end_s=local(16, 30), updates_sent=0
    )
    # Two hours announced: threshold max(15 min, 24 min) = 24 min.
    small = decide_update(last, local(15, 40), local(16, 20), local(16, 25), local(14, 30), P)
    assert not small.notify
    assert small.reason == "small_change"
    big = decide_update(last, local(15, 30), local(15, 30), local(15, 40), local(14, 30), P)
    assert big.notify
    assert big.reason == "moved"
    # Short announced remaining: the 15-minute floor decides.
    last2 = LastNotice(local(14, 0), local(14, 30), local(14, 45), 0)
    assert not decide_update(
        last2, local(14, 35), local(14, 40), local(14, 44), local(14, 10), P
    ).notify


def test_running_past_the_promise_is_sent() -> None:
    last = LastNotice(local(14, 0), local(18, 0), local(18, 10), 0)
    # 15 min later than P50 (< 48 min threshold) but past the latest time promised.
    d = decide_update(last, local(17, 50), local(18, 15), local(18, 20), local(17, 0), P)
    assert d.notify
    assert d.reason == "past_promise"


def test_update_limit() -> None:
    last = LastNotice(local(14, 0), local(15, 0), local(15, 15), updates_sent=2)
    d = decide_update(last, local(17, 0), local(18, 0), local(19, 0), local(14, 30), P)
    assert not d.notify
    assert d.reason == "update_limit"
    assert decide_update(
        last, local(17, 0), local(18, 0), local(19, 0), local(14, 30), UpdatePolicy(max_updates=5)
    ).notify


def test_windows_are_rounded_and_never_in_the_past() -> None:
    w = customer_window(local(14, 37), local(14, 52), local(15, 3), local(14, 0), P)
    assert w.single
    assert w.start_s == local(14, 45)
    wide = customer_window(local(14, 37), local(15, 20), local(16, 7), local(14, 0), P)
    assert (wide.start_s, wide.end_s) == (local(14, 30), local(16, 15))
    late = customer_window(local(13, 0), local(14, 10), local(16, 0), local(14, 5), P)
    assert late.start_s == local(14, 15)
    for t in (wide.start_s, wide.end_s, w.start_s):
        assert t % 900 == 0


def test_wording_in_both_languages() -> None:
    now = local(13, 0)
    window = CustomerWindow(local(14, 30), local(15, 15))
    assert format_window(window, "en", now, P) == "between 14:30 and 15:15"
    assert format_window(window, "vi", now, P) == "trong khoảng từ 14:30 đến 15:15"
    single = CustomerWindow(local(14, 30), local(14, 30))
    assert format_window(single, "en", now, P) == "around 14:30"
    assert format_window(single, "vi", now, P) == "khoảng 14:30"
    overnight = CustomerWindow(local(23, 30), local(1, 15, day=24))
    assert format_window(overnight, "en", now, P) == "between 23:30 and 01:15 tomorrow"
    assert format_window(overnight, "vi", now, P) == "trong khoảng từ 23:30 đến 01:15 ngày mai"
    far = CustomerWindow(local(9, 0, day=26), local(9, 0, day=26))
    assert format_window(far, "en", now, P) == "around 09:00 on 26/11"
    assert format_window(far, "xx", now, P).startswith("khoảng")


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="round_to_s"):
        UpdatePolicy(round_to_s=7)
    with pytest.raises(ValueError, match="max_updates"):
        UpdatePolicy(max_updates=-1)
    with pytest.raises(ZoneInfoNotFoundError):
        UpdatePolicy(timezone="Mars/Olympus")


@pytest.fixture(scope="module")
def model() -> SurvivalModel:
    h = synthetic_history(50_000, seed=3)
    records = [
        HistoryRecord(float(s), None, float(d), bool(c), "fuse", None)
        for s, d, c in zip(
            h.started_at_s[:20000], h.duration_s[:20000], h.censored[:20000], strict=True
        )
    ]
    cols = history_from_records(records, as_of_s=float(h.started_at_s[-1]) + 1e7)
    return fit_model(cols)


NOW = 1.8e9


def test_elapsed_moves_the_etr_and_it_is_never_past(model: SurvivalModel) -> None:
    outages = [
        OpenOutage(1, "z1", "fuse", None, NOW - 60.0, 10),
        OpenOutage(2, "z1", "fuse", None, NOW - 3600.0, 10),
        OpenOutage(3, "z1", "fuse", None, NOW - 30 * 86400.0, 10),  # older than the whole grid
    ]
    batch = estimate_etrs(model, "v1", outages, NOW, config=EtrConfig(default_crews=10))
    a, b, _c = batch.estimates
    assert all(e.source == "model" for e in batch.estimates)
    assert b.p50_s - b.inputs["started_at_s"] > a.p50_s - a.inputs["started_at_s"]
    for e in batch.estimates:
        assert NOW + 300.0 <= e.p10_s <= e.p50_s <= e.p90_s
        assert math.isfinite(e.p90_s)
        assert e.model_version == "v1"
        assert e.inputs["class"]["device_kind"] == "fuse"


def test_override_wins_until_it_passes(model: SurvivalModel) -> None:
    outages = [OpenOutage(7, "z1", "fuse", None, NOW - 600.0, 10)]
    ov = {7: Override(1, NOW + 5400.0, "crew on site", "crew-12")}
    batch = estimate_etrs(model, "v1", outages, NOW, overrides=ov)
    (e,) = batch.estimates
    assert (e.source, e.p50_s) == ("override", NOW + 5400.0)
    assert e.inputs["override"]["reason"] == "crew on site"
    later = NOW + 6000.0
    batch2 = estimate_etrs(model, "v1", outages, later, overrides=ov)
    assert batch2.expired_overrides == [7]
    assert batch2.estimates[0].source == "model"
    assert batch2.estimates[0].p10_s >= later + 300.0


def test_backlogged_zone_uses_the_crew_queue(model: SurvivalModel) -> None:
    outages = [OpenOutage(i, "storm", "fuse", None, NOW - 600.0, 100 - i) for i in range(40)]
    outages.append(OpenOutage(99, "calm", "fuse", None, NOW - 600.0, 5))
    cfg = EtrConfig(crews_per_zone={"storm": 2, "calm": 3}, backlog_runs=50)
    batch = estimate_etrs(model, "v1", outages, NOW, config=cfg)
    by_id = {e.outage_id: e for e in batch.estimates}
    assert by_id[99].source == "model"
    assert by_id[0].source == "backlog"
    # The highest-priority outage is served before the lowest.
    assert by_id[0].p50_s < by_id[39].p50_s
    zones = {z.zone: z for z in batch.zones}
    assert zones["storm"].p50_s > zones["calm"].p50_s
    assert zones["storm"].crews == 2
    assert zones["storm"].open_outages == 40


def test_override_checks() -> None:
    cfg = EtrConfig()
    ok = check_override(NOW + 3600, "tree on line", "op", NOW, NOW - 600, cfg)
    assert ok is None
    assert check_override(NOW - 1, "x", "op", NOW, NOW - 600, cfg) == "etr is in the past"
    assert "days ahead" in str(
        check_override(NOW + 3 * 365 * 86400, "x", "op", NOW, NOW - 600, cfg)
    )
    assert "finite" in str(check_override(float("nan"), "x", "op", NOW, NOW - 600, cfg))
    assert "reason" in str(check_override(NOW + 3600, "  ", "op", NOW, NOW - 600, cfg))
    assert "reason" in str(check_override(NOW + 3600, "a" * 501, "op", NOW, NOW - 600, cfg))
    assert "reason" in str(check_override(NOW + 3600, "bad\x00", "op", NOW, NOW - 600, cfg))
    assert "set_by" in str(check_override(NOW + 3600, "ok", "", NOW, NOW - 600, cfg))
    assert "ahead" in str(check_override(NOW + 10, "ok", "op", NOW, NOW - 600, cfg))


def test_empty_batch(model: SurvivalModel) -> None:
    assert estimate_etrs(model, "v1", [], NOW).estimates == []
