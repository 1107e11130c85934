"""Scoring: what gridwatch concluded against the ground truth, beside naive baselines.

Matching rule: a recorded outage matches a true sustained outage on the same device whose
start is within ``match_tolerance_s`` of the recorded start (or which was still open when
the recording started it); each is matched at most once, nearest start first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from simulators._errors import SimulatorError
from simulators._feeder import SimGrid
from simulators._messages import SimMessage, parse_time
from simulators._truth import GroundTruth, TruthOutage


@dataclass(frozen=True)
class EtrPoint:
    at_s: float  # when this estimate was published
    p10_s: float | None
    p50_s: float
    p90_s: float | None


@dataclass
class RecordedOutage:
    outage_id: str
    device_id: str
    started_at_s: float
    confirmed_at_s: float | None = None
    restored_at_s: float | None = None
    state: str = "confirmed"
    planned: bool = False
    meter_ids: list[str] | None = None
    etr: list[EtrPoint] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedNotification:
    customer_id: str
    outage_id: str | None
    kind: str
    told_at_s: float  # when it could reach the customer (event time on a replay)


@dataclass
class Recorded:
    outages: list[RecordedOutage]
    notifications: list[RecordedNotification] | None = None  # None: not available


@dataclass
class ScoreReport:
    true_outages: int
    recorded_outages: int
    matched: int
    outage_precision: float
    outage_recall: float
    customer_precision: float
    customer_recall: float
    true_customer_minutes: float
    recorded_customer_minutes: float
    detection_latency_p50_s: float
    detection_latency_p95_s: float
    restoration_latency_p50_s: float
    restoration_latency_p95_s: float
    nested_customers: int
    false_restored_notices: int
    false_restored_source: str  # "notifications" | "inferred from outage times" | "none"
    etr_mae_first_min: float
    etr_mae_30min_min: float
    etr_p10_p90_coverage: float
    etr_outages: int
    notifications_per_customer: float
    momentaries_declared: int  # recorded outages that match only a momentary interruption
    # True outages no telemetry could show (wholly inside an already-dark outage): not in
    # the recall denominator, listed here and counted separately, never silently dropped.
    unobservable_outages: int = 0
    unobservable_ids: list[str] = field(default_factory=list)
    unobservable_matched: int = 0  # of those, recorded anyway (they count as matched)
    outage_recall_all: float = math.nan  # recall with the unobservable ones counted as misses
    # Right device: of the observable outages some recorded outage overlaps (time and
    # customers), the share where one of those names the true device.
    detected_any_device: int = 0
    right_device: int = 0
    right_device_share: float = math.nan
    detection_latency_s: list[float] = field(default_factory=list)  # per matched outage
    missed_ids: list[str] = field(default_factory=list)  # observable, not matched
    false_ids: list[str] = field(default_factory=list)  # recorded, matching nothing true
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> str:
        clean = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }
        return orjson.dumps(clean, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()

    def to_table(self) -> str:
        def f(x: float, unit: str = "", digits: int = 2) -> str:
            return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.{digits}f}{unit}"

        base = self.baselines.get("every_dark_meter", {})

        def pair(a: float, b: float) -> str:
            return f"{f(a, ' s', 0)} / {f(b, ' s', 0)}"

        med = self.baselines.get("global_median_etr", {})
        rows = [
            (
                "outages (true / recorded / matched)",
                f"{self.true_outages} / {self.recorded_outages} / {self.matched}",
                f"{int(base.get('recorded_outages', 0))} / {int(base.get('matched', 0))} matched"
                if base
                else "",
            ),
            (
                "outage precision",
                f(self.outage_precision),
                f(base.get("outage_precision", math.nan)),
            ),
            ("outage recall", f(self.outage_recall), f(base.get("outage_recall", math.nan))),
            (
                "unobservable true outages (not in recall)",
                f"{self.unobservable_outages} ({self.unobservable_matched} recorded anyway;"
                f" recall counting them {f(self.outage_recall_all)})",
                "",
            ),
            (
                "right device (of outages detected)",
                f"{f(self.right_device_share)} ({self.right_device} of {self.detected_any_device})",
                "",
            ),
            (
                "customer precision",
                f(self.customer_precision),
                f(base.get("customer_precision", math.nan)),
            ),
            ("customer recall", f(self.customer_recall), f(base.get("customer_recall", math.nan))),
            (
                "customer-minutes (true / recorded)",
                f"{self.true_customer_minutes:.0f} / {self.recorded_customer_minutes:.0f}",
                f"{base.get('recorded_customer_minutes', math.nan):.0f}" if base else "",
            ),
            (
                "detection latency p50 / p95",
                pair(self.detection_latency_p50_s, self.detection_latency_p95_s),
                pair(
                    base.get("detection_latency_p50_s", math.nan),
                    base.get("detection_latency_p95_s", math.nan),
                )
                if base
                else "",
            ),
            (
                "restoration detection p50 / p95",
                pair(self.restoration_latency_p50_s, self.restoration_latency_p95_s),
                "",
            ),
            (
                "false 'restored' (nested customers)",
                f"{self.false_restored_notices} of {self.nested_customers}"
                f" ({self.false_restored_source})",
                "",
            ),
            ("momentaries declared as outages", str(self.momentaries_declared), ""),
            (
                "ETR P50 MAE at first notice",
                f(self.etr_mae_first_min, " min", 1),
                f(med.get("etr_mae_scored_min", med.get("etr_mae_min", math.nan)), " min", 1),
            ),
            (
                "ETR P50 MAE at +30 min",
                f(self.etr_mae_30min_min, " min", 1),
                f(med.get("etr_mae_scored_min", med.get("etr_mae_min", math.nan)), " min", 1),
            ),
            ("ETR P10-P90 coverage", f(self.etr_p10_p90_coverage), ""),
            ("notifications per affected customer", f(self.notifications_per_customer), ""),
        ]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(max(len(r[1]) for r in rows), len("gridwatch"))
        lines = [f"{'metric':<{w0}}  {'gridwatch':<{w1}}  baseline", "-" * (w0 + w1 + 12)]
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
        for label, ids in (
            ("missed (observable)", self.missed_ids),
            ("recorded, matching nothing true", self.false_ids),
            ("unobservable", self.unobservable_ids),
        ):
            if ids:
                lines.append(f"{label}: {', '.join(ids)}")
        lines.append(
            "baseline: every dark meter its own outage; ETR = global median duration"
            " (on the outages given an ETR)"
        )
        return "\n".join(lines)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _customer_minutes(intervals: dict[str, list[tuple[float, float]]]) -> float:
    total = 0.0
    for spans in intervals.values():
        spans.sort()
        cur_lo, cur_hi = spans[0]
        for lo, hi in spans[1:]:
            if lo > cur_hi:
                total += cur_hi - cur_lo
                cur_lo, cur_hi = lo, hi
            else:
                cur_hi = max(cur_hi, hi)
        total += cur_hi - cur_lo
    return total / 60.0


class _CustomerLookup:
    def __init__(self, truth: GroundTruth, grid: SimGrid | None) -> None:
        self.grid = grid
        self.meter_customer: dict[str, str | None] = {}
        self.device_customers: dict[str, set[str]] = {}
        for o in truth.outages:
            self.meter_customer.update(zip(o.meter_ids, o.customer_ids, strict=True))
            self.device_customers.setdefault(o.device_id, o.customers)
        if grid is not None:
            topo = grid.topology
            cids = topo.customers.ids
            for mid, c in zip(topo.meters.ids.tolist(), topo.meters.customer.tolist(), strict=True):
                self.meter_customer[mid] = str(cids[c]) if c >= 0 else None

    def of_recorded(self, r: RecordedOutage) -> set[str]:
        if r.meter_ids is not None:
            return {c for m in r.meter_ids if (c := self.meter_customer.get(m)) is not None}
        got = self.device_customers.get(r.device_id)
        if got is None and self.grid is not None:
            idx = self.grid.topology.device_index.get(r.device_id)
            if idx is not None:
                topo = self.grid.topology
                cust = topo.meters.customer[self.grid.subtree_meters(idx)]
                got = {str(topo.customers.ids[c]) for c in cust.tolist() if c >= 0}
            elif r.device_id in self.meter_customer:  # a meter-level outage (baselines)
                c = self.meter_customer[r.device_id]
                got = {c} if c else set()
        if got is None:
            got = set()
        self.device_customers[r.device_id] = got
        return got


def _outer_chain(truth: list[TruthOutage]) -> dict[str, list[TruthOutage]]:
    """For each nested outage, the outages it is nested in (innermost first)."""
    by_id = {t.outage_id: t for t in truth}
    out: dict[str, list[TruthOutage]] = {}
    for t in truth:
        seen: list[TruthOutage] = []
        cur = t.nested_in
        while cur is not None and cur in by_id and len(seen) < 100:
            seen.append(by_id[cur])
            cur = by_id[cur].nested_in
        if seen:
            out[t.outage_id] = seen
    return out


def observable_from_s(t: TruthOutage, chain: dict[str, list[TruthOutage]]) -> float:
    """When an outage first shows in telemetry: its start, or for a nested one the end of
    the outer outage(s) that kept its meters dark already."""
    return max([t.start_s] + [o.end_s for o in chain.get(t.outage_id, [])])


def unobservable(
    t: TruthOutage,
    chain: dict[str, list[TruthOutage]],
    grid: SimGrid | None = None,
    end_s: float = math.inf,
) -> bool:
    """A fault wholly inside an outage that was already dark: it began after an enclosing
    outage began and was repaired before that one ended, so its customers' supply never
    depended on it while anything could be seen. Only the scored window counts: a fault
    whose enclosing outage is still dark at the scenario's ``end_s`` was never visible in
    it, however long it outlasts the end. When the enclosing outage switched part of
    its area onto a tie before the repair, the fault counts as unobservable only if its
    section stayed dark: no other meter of the enclosing outage in the same section (under
    the faulted device's parent) had supply back before the repair. Without the grid, any
    such switching makes it observable (the conservative side)."""
    seen_until_s = min(t.end_s, end_s)
    for o in chain.get(t.outage_id, []):
        if not (o.start_s <= t.start_s and seen_until_s <= o.end_s):
            continue
        if o.switched_s is None or o.switched_s >= seen_until_s:
            return True
        if grid is not None and _section_stayed_dark(t, o, grid):
            return True
    return False


def _section_stayed_dark(t: TruthOutage, outer: TruthOutage, grid: SimGrid) -> bool:
    topo = grid.topology
    idx = topo.device_index.get(t.device_id)
    if idx is None:
        return False
    parent = int(topo.devices.parent[idx])
    if parent < 0:
        return False
    # The section: meters under the parent, except behind another sectioning device
    # (breaker, recloser, sectionalizer, switch: kind codes 1-4) hanging off it, which a
    # crew may have re-fed through a tie on its own.
    section_idx = set(grid.subtree_meters(parent).tolist())
    for child in np.flatnonzero(topo.devices.parent == parent).tolist():
        if child != idx and 1 <= int(topo.devices.kind[child]) <= 4:
            section_idx -= set(grid.subtree_meters(child).tolist())
    section = {str(topo.meters.ids[m]) for m in section_idx} - set(t.meter_ids)
    back = dict(zip(outer.meter_ids, outer.restore_s, strict=True))
    lit = [back[m] < t.end_s for m in section if m in back]
    return bool(lit) and not any(lit)


def silent(t: TruthOutage, comm_silent_from_s: dict[str, float]) -> bool:
    """Every meter of the outage had gone comm-silent before its fault, or it darkened no
    meter at all (a fuse with no load behind it in an imported grid): no gasp, read,
    restore or ping answer could tell of it, so no telemetry-driven system can see it
    (absence of evidence is not evidence). Unobservable, listed as such."""
    return all(comm_silent_from_s.get(m, math.inf) <= t.start_s for m in t.meter_ids)


def observable_end_s(t: TruthOutage, chain: dict[str, list[TruthOutage]]) -> float:
    """When the end of ``t`` first shows: its repair, or for a fault repaired while an
    enclosing outage kept its meters dark, the end of that enclosing outage."""
    ends = [o.end_s for o in chain.get(t.outage_id, []) if o.start_s <= t.end_s <= o.end_s]
    return max([t.end_s, *ends])


def equivalent_devices(grid: SimGrid) -> dict[str, str]:
    """Device id -> the topmost device no meter evidence can tell it from: a device whose
    meters are exactly its parent's (the parent feeds nothing else, e.g. a transformer with
    one LV fuse-way, common in imported LV grids) is out exactly when that parent would
    look out. Neither may report over SCADA (SCADA tells them apart). Only such chains
    are listed."""
    topo = grid.topology
    parent = topo.devices.parent
    n = parent.shape[0]
    count = np.zeros(n, dtype=np.int64)  # meters in each subtree
    np.add.at(count, topo.meters.device, 1)
    for d in topo.order[::-1].tolist():  # children before parents
        if parent[d] >= 0:
            count[parent[d]] += count[d]
    scada = topo.devices.has_scada
    top: dict[int, int] = {}
    for d in topo.order.tolist():  # parents first, so a chain maps to its top
        p = int(parent[d])
        if p >= 0 and count[d] > 0 and count[d] == count[p] and not (scada[d] or scada[p]):
            top[d] = top.get(p, p)
    ids = topo.devices.ids
    return {str(ids[d]): str(ids[t]) for d, t in top.items()}


def _match(
    truth: list[TruthOutage],
    recorded: list[RecordedOutage],
    tol_s: float,
    same: dict[str, str] | None = None,
) -> list[tuple[TruthOutage, RecordedOutage]]:
    """Pairs of a true and a recorded outage on the same device (or one ``same`` says no
    meter evidence can tell from it), closest starts first."""
    canon = same or {}
    cands: list[tuple[float, int, int]] = []
    by_dev: dict[str, list[int]] = {}
    for j, r in enumerate(recorded):
        by_dev.setdefault(canon.get(r.device_id, r.device_id), []).append(j)
    chain = _outer_chain(truth)
    for i, t in enumerate(truth):
        # A fault inside an outage that is already dark is unobservable until the outer
        # one ends: its customers have been out since the outermost start, which is the
        # start a detector can (and should) report for them.
        lo = min([t.start_s] + [o.start_s for o in chain.get(t.outage_id, [])])
        for j in by_dev.get(canon.get(t.device_id, t.device_id), []):
            r = recorded[j]
            gap = abs(r.started_at_s - t.start_s)
            if gap <= tol_s or lo - tol_s <= r.started_at_s <= t.end_s:
                cands.append((gap, i, j))
    cands.sort()
    used_t: set[int] = set()
    used_r: set[int] = set()
    pairs = []
    for _, i, j in cands:
        if i not in used_t and j not in used_r:
            used_t.add(i)
            used_r.add(j)
            pairs.append((truth[i], recorded[j]))
    return pairs


@dataclass(frozen=True)
class EtrScored:
    """One matched, unplanned outage that got an ETR: the first one published (the first
    notice) and the newest one published by 30 min after it (``+30 min``)."""

    truth: TruthOutage
    recorded: RecordedOutage
    first: EtrPoint
    later: EtrPoint

    @property
    def end_s(self) -> float:
        return self.truth.end_s


def etr_scored(pairs: Iterable[tuple[TruthOutage, RecordedOutage]]) -> list[EtrScored]:
    """The outages ETRs are scored on (outages restored before any ETR was published
    have none and are not scored)."""
    out = []
    for t, r in pairs:
        if t.planned or not r.etr:
            continue
        pts = sorted(r.etr, key=lambda e: e.at_s)
        later = [e for e in pts if e.at_s <= pts[0].at_s + 1800.0]
        out.append(EtrScored(t, r, pts[0], later[-1]))
    return out


def score(
    truth: GroundTruth,
    recorded: Recorded,
    *,
    grid: SimGrid | None = None,
    match_tolerance_s: float = 900.0,
    published: Iterable[SimMessage] | None = None,
    baseline_median_s: float | None = None,
) -> ScoreReport:
    """Score ``recorded`` against ``truth``. ``grid`` maps recorded devices to customers when
    the recording has no meter lists; ``published`` (the telemetry that was sent) feeds the
    every-dark-meter baseline; ``baseline_median_s`` the global-median ETR baseline."""
    report = _score(truth, recorded, grid, match_tolerance_s)
    if published is not None:
        naive = _dark_meter_baseline(truth, published)
        b = _score(truth, naive, grid, match_tolerance_s)
        report.baselines["every_dark_meter"] = {
            "true_outages": b.true_outages,
            "recorded_outages": b.recorded_outages,
            "matched": b.matched,
            "outage_precision": b.outage_precision,
            "outage_recall": b.outage_recall,
            "customer_precision": b.customer_precision,
            "customer_recall": b.customer_recall,
            "recorded_customer_minutes": b.recorded_customer_minutes,
            "detection_latency_p50_s": b.detection_latency_p50_s,
            "detection_latency_p95_s": b.detection_latency_p95_s,
        }
    if baseline_median_s is not None:
        errs = [
            abs(t.start_s + baseline_median_s - t.end_s) / 60.0
            for t in truth.sustained
            if not t.planned
        ]
        # The same outages gridwatch's ETRs are scored on (matched, given an ETR): outages
        # restored before any ETR are easy for neither and would dilute the comparison.
        rec = [r for r in recorded.outages if r.state != "cancelled"]
        scored = etr_scored(_match(truth.sustained, rec, match_tolerance_s))
        report.baselines["global_median_etr"] = {
            "median_s": baseline_median_s,
            "etr_mae_min": _mean(errs),
            "etr_mae_scored_min": _mean(
                [abs(e.truth.start_s + baseline_median_s - e.end_s) / 60.0 for e in scored]
            ),
            "etr_scored_outages": len(scored),
        }
    return report


def _score(
    truth: GroundTruth, recorded: Recorded, grid: SimGrid | None, tol_s: float
) -> ScoreReport:
    true_o = truth.sustained
    rec = [r for r in recorded.outages if r.state != "cancelled"]
    same = equivalent_devices(grid) if grid is not None else {}
    pairs = _match(true_o, rec, tol_s, same)
    used = {id(r) for _, r in pairs}
    unmatched = [r for r in rec if id(r) not in used]
    moment = _match([o for o in truth.outages if o.momentary], unmatched, tol_s, same)
    lookup = _CustomerLookup(truth, grid)
    chain = _outer_chain(truth.outages)
    mute = {t.outage_id for t in true_o if silent(t, truth.comm_silent_from_s)}
    hidden = [t for t in true_o if t.outage_id in mute or unobservable(t, chain, grid, truth.end_s)]
    hidden_ids = {t.outage_id for t in hidden}
    matched_ids = {t.outage_id for t, _ in pairs}
    observable = [t for t in true_o if t.outage_id not in hidden_ids]
    matched_observable = sum(1 for t in observable if t.outage_id in matched_ids)
    any_dev, right_dev = _right_device(observable, rec, lookup, chain, tol_s, same)
    moment_ids = {id(r) for _, r in moment}

    true_cust: set[str] = set()
    true_spans: dict[str, list[tuple[float, float]]] = {}
    for t in true_o:
        for c, back in zip(t.customer_ids, t.restore_s, strict=True):
            if c is not None and back > t.start_s:
                true_cust.add(c)
                true_spans.setdefault(c, []).append((t.start_s, back))
    rec_cust: set[str] = set()
    rec_spans: dict[str, list[tuple[float, float]]] = {}
    for r in rec:
        end = r.restored_at_s if r.restored_at_s is not None else truth.end_s
        for c in lookup.of_recorded(r):
            rec_cust.add(c)
            rec_spans.setdefault(c, []).append((r.started_at_s, max(end, r.started_at_s)))
    both = true_cust & rec_cust

    # From when the outage became observable (a nested fault: when the outer one ended);
    # a recording that knew earlier is measured from the true start.
    detect = []
    for t, r in pairs:
        at = r.confirmed_at_s or r.started_at_s
        seen = observable_from_s(t, chain)
        detect.append(at - (seen if at >= seen else t.start_s))
    restore = [
        r.restored_at_s - observable_end_s(t, chain)
        for t, r in pairs
        if r.restored_at_s is not None
    ]

    scored = etr_scored(pairs)
    first_err = [abs(e.first.p50_s - e.end_s) / 60.0 for e in scored]
    later_err = [abs(e.later.p50_s - e.end_s) / 60.0 for e in scored]
    covered = [
        e.first.p10_s <= e.end_s <= e.first.p90_s
        for e in scored
        if e.first.p10_s is not None and e.first.p90_s is not None
    ]

    nested_cust, false_restored, source = _false_restored(truth, recorded, pairs)
    n_notes = len(recorded.notifications) if recorded.notifications is not None else 0
    return ScoreReport(
        true_outages=len(true_o),
        recorded_outages=len(rec),
        matched=len(pairs),
        outage_precision=len(pairs) / len(rec) if rec else math.nan,
        outage_recall=matched_observable / len(observable) if observable else math.nan,
        customer_precision=len(both) / len(rec_cust) if rec_cust else math.nan,
        customer_recall=len(both) / len(true_cust) if true_cust else math.nan,
        true_customer_minutes=_customer_minutes(true_spans) if true_spans else 0.0,
        recorded_customer_minutes=_customer_minutes(rec_spans) if rec_spans else 0.0,
        detection_latency_s=detect,
        detection_latency_p50_s=_pct(detect, 50),
        detection_latency_p95_s=_pct(detect, 95),
        restoration_latency_p50_s=_pct(restore, 50),
        restoration_latency_p95_s=_pct(restore, 95),
        nested_customers=nested_cust,
        false_restored_notices=false_restored,
        false_restored_source=source,
        etr_mae_first_min=_mean(first_err),
        etr_mae_30min_min=_mean(later_err),
        etr_p10_p90_coverage=float(np.mean(covered)) if covered else math.nan,
        etr_outages=len(first_err),
        notifications_per_customer=(n_notes / len(true_cust))
        if (true_cust and recorded.notifications is not None)
        else math.nan,
        momentaries_declared=len(moment),
        unobservable_outages=len(hidden),
        unobservable_ids=sorted(f"{i} (silent)" if i in mute else i for i in hidden_ids),
        unobservable_matched=len(hidden_ids & matched_ids),
        outage_recall_all=len(pairs) / len(true_o) if true_o else math.nan,
        detected_any_device=any_dev,
        right_device=right_dev,
        right_device_share=right_dev / any_dev if any_dev else math.nan,
        missed_ids=sorted(
            f"{t.outage_id} ({t.device_id})" for t in observable if t.outage_id not in matched_ids
        ),
        false_ids=sorted(
            f"{r.outage_id} ({r.device_id})" for r in unmatched if id(r) not in moment_ids
        ),
    )


def _right_device(
    observable: list[TruthOutage],
    rec: list[RecordedOutage],
    lookup: _CustomerLookup,
    chain: dict[str, list[TruthOutage]],
    tol_s: float,
    same: dict[str, str],
) -> tuple[int, int]:
    """(outages some recording overlaps in time and customers, of those named on the
    true device or one ``same`` says no meter evidence can tell from it). Device-blind
    matching, so a recording on the wrong device shows here."""
    any_dev = right = 0
    for t in observable:
        lo = min([t.start_s] + [o.start_s for o in chain.get(t.outage_id, [])])
        cust = t.customers
        hits = [
            r
            for r in rec
            if (abs(r.started_at_s - t.start_s) <= tol_s or lo - tol_s <= r.started_at_s <= t.end_s)
            and (not cust or lookup.of_recorded(r) & cust)
        ]
        if hits:
            any_dev += 1
            dev = same.get(t.device_id, t.device_id)
            right += any(same.get(r.device_id, r.device_id) == dev for r in hits)
    return any_dev, right


def _false_restored(
    truth: GroundTruth, recorded: Recorded, pairs: list[tuple[TruthOutage, RecordedOutage]]
) -> tuple[int, int, str]:
    """Customers of nested outages told (or, without notifications, implied) 'restored'
    while still dark."""
    by_id = {o.outage_id: o for o in truth.outages}
    dark_until: dict[str, tuple[float, float]] = {}  # customer -> (outer start, inner restore)
    for inner in truth.sustained:
        if inner.nested_in is None:
            continue
        outer = by_id[inner.nested_in]
        for c, back in zip(inner.customer_ids, inner.restore_s, strict=True):
            if c is not None:
                dark_until[c] = (min(outer.start_s, inner.start_s), back)
    if not dark_until:
        return 0, 0, "none"
    if recorded.notifications is not None:
        bad = {
            n.customer_id
            for n in recorded.notifications
            if "restor" in n.kind
            and n.customer_id in dark_until
            and dark_until[n.customer_id][0] <= n.told_at_s < dark_until[n.customer_id][1]
        }
        return len(dark_until), len(bad), "notifications"
    matched = {t.outage_id: r for t, r in pairs}
    bad_inferred: set[str] = set()
    for inner in truth.sustained:
        if inner.nested_in is None or inner.nested_in not in matched:
            continue
        outer_rec = matched[inner.nested_in]
        told = outer_rec.restored_at_s
        inner_rec = matched.get(inner.outage_id)
        # Restored while the inner fault was still dark, and the inner one not (yet) declared.
        if told is not None and (inner_rec is None or inner_rec.started_at_s > told):
            bad_inferred |= {
                c
                for c, back in zip(inner.customer_ids, inner.restore_s, strict=True)
                if c is not None and told < back
            }
    return len(dark_until), len(bad_inferred), "inferred from outage times"


def _dark_meter_baseline(truth: GroundTruth, published: Iterable[SimMessage]) -> Recorded:
    """Every meter that said 'last gasp' is its own outage (at the meter), until it says
    'power restore'. Device ids are meter ids, so only meter-level truth could match: that is
    the point of the baseline."""
    open_at: dict[str, float] = {}
    out: list[RecordedOutage] = []
    events: list[tuple[float, str, str]] = []
    for msg in published:
        if msg.topic.endswith("/batch"):
            body = orjson.loads(msg.payload)
            for e in body.get("events", []):
                events.append((float(e["ts"]), str(e["meter"]), str(e["type"])))
        elif msg.topic.endswith("/event") and "/meters/" in msg.topic:
            body = orjson.loads(msg.payload)
            events.append((parse_time(body["ts"]), msg.topic.split("/")[2], str(body["type"])))
    for ts, meter, kind in sorted(set(events)):
        if kind == "last_gasp" and meter not in open_at:
            open_at[meter] = ts
        elif kind == "power_restore" and meter in open_at:
            out.append(
                RecordedOutage(
                    f"B{len(out) + 1}",
                    meter,
                    open_at.pop(meter),
                    restored_at_s=ts,
                    meter_ids=[meter],
                )
            )
    for meter, ts in open_at.items():
        out.append(RecordedOutage(f"B{len(out) + 1}", meter, ts, meter_ids=[meter]))
    return Recorded(outages=out)


def _time(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            pass
    raise SimulatorError(f"{what}: not a time: {value!r}")


def _etr_points(obj: dict[str, Any], timeline: list[dict[str, Any]], where: str) -> list[EtrPoint]:
    pts: list[EtrPoint] = []
    for ev in timeline:
        d = ev.get("detail") or {}
        if not isinstance(d, dict) or ("p50" not in d and "etr_p50" not in d):
            continue
        p50 = _time(d.get("p50", d.get("etr_p50")), f"{where}: etr p50")
        if p50 is None:
            continue
        pts.append(
            EtrPoint(
                at_s=_time(ev.get("at"), f"{where}: etr at") or 0.0,
                p50_s=p50,
                p10_s=_time(d.get("p10", d.get("etr_p10")), f"{where}: etr p10"),
                p90_s=_time(d.get("p90", d.get("etr_p90")), f"{where}: etr p90"),
            )
        )
    if not pts and obj.get("etr_p50") is not None:
        # Only the latest estimate is known: count it as published when the outage was confirmed.
        at = _time(obj.get("confirmed_at") or obj.get("started_at"), f"{where}: confirmed_at")
        pts.append(
            EtrPoint(
                at_s=at or 0.0,
                p50_s=_time(obj["etr_p50"], f"{where}: etr_p50") or 0.0,
                p10_s=_time(obj.get("etr_p10"), f"{where}: etr_p10"),
                p90_s=_time(obj.get("etr_p90"), f"{where}: etr_p90"),
            )
        )
    return pts


def recorded_from_rows(
    outages: list[dict[str, Any]],
    *,
    timeline: list[dict[str, Any]] | None = None,
    meters: dict[Any, list[str]] | None = None,
    notifications: list[dict[str, Any]] | None = None,
) -> Recorded:
    """Build a ``Recorded`` from database rows or API JSON (same field names as the
    ``outages`` table; ``etr_history`` may carry ``[{"at", "p10", "p50", "p90"}]``)."""
    by_outage: dict[str, list[dict[str, Any]]] = {}
    for ev in timeline or []:
        by_outage.setdefault(str(ev.get("outage_id")), []).append(ev)
    out: list[RecordedOutage] = []
    for k, o in enumerate(outages):
        if not isinstance(o, dict):
            raise SimulatorError(f"recorded outage #{k + 1}: expected an object")
        where = f"recorded outage {o.get('outage_id', f'#{k + 1}')}"
        if "device_id" not in o or "started_at" not in o:
            raise SimulatorError(f"{where}: needs device_id and started_at")
        oid = str(o.get("outage_id", k + 1))
        history = list(by_outage.get(oid, []))
        history += [{"at": h.get("at"), "detail": h} for h in o.get("etr_history", []) or []]
        mids = o.get("meter_ids")
        if mids is None and meters is not None:
            mids = meters.get(o.get("outage_id"), meters.get(oid))
        out.append(
            RecordedOutage(
                outage_id=oid,
                device_id=str(o["device_id"]),
                started_at_s=_time(o["started_at"], f"{where}: started_at") or 0.0,
                confirmed_at_s=_time(o.get("confirmed_at"), f"{where}: confirmed_at"),
                restored_at_s=_time(o.get("restored_at"), f"{where}: restored_at"),
                state=str(o.get("state", "confirmed")),
                planned=bool(o.get("planned", False)),
                meter_ids=[str(m) for m in mids] if mids is not None else None,
                etr=_etr_points(o, history, where),
            )
        )
    notes = None
    if notifications is not None:
        notes = [
            RecordedNotification(
                customer_id=str(n["customer_id"]),
                outage_id=None if n.get("outage_id") is None else str(n["outage_id"]),
                kind=str(n.get("kind", "")),
                # The store gives told_at; an API export may carry only created_at.
                told_at_s=_time(n.get("told_at", n.get("created_at")), "notification told_at")
                or 0.0,
            )
            for n in notifications
        ]
    return Recorded(outages=out, notifications=notes)


def load_recorded_json(path: Path | str) -> Recorded:
    """``{"outages": [...], "notifications": [...]}`` as exported by the API (or a list)."""
    p = Path(path)
    try:
        obj = orjson.loads(p.read_bytes())
    except FileNotFoundError:
        raise SimulatorError(f"{p}: no such file") from None
    except orjson.JSONDecodeError as exc:
        raise SimulatorError(f"{p}: bad JSON ({exc})") from None
    if isinstance(obj, list):
        obj = {"outages": obj}
    if not isinstance(obj, dict) or not isinstance(obj.get("outages"), list):
        raise SimulatorError(f'{p}: expected {{"outages": [...]}}')
    notes = obj.get("notifications")
    return recorded_from_rows(
        obj["outages"], notifications=notes if isinstance(notes, list) else None
    )


async def load_recorded_db(db: Any, from_s: float, to_s: float) -> Recorded:
    """What gridwatch recorded in ``[from_s, to_s]`` (``db`` is a ``gridwatch.store.Database``)."""
    from simulators import recorded_outages as q

    rows = await q.fetch_outages(db, from_s, to_s)
    ids = [int(r["outage_id"]) for r in rows]
    timeline = await q.fetch_etr_history(db, ids) or await q.fetch_outage_timeline(db, ids)
    meters = await q.fetch_outage_meters(db, ids)
    notes = await q.fetch_notifications(db, ids)
    return recorded_from_rows(rows, timeline=timeline, meters=meters, notifications=notes)
