"""Detection accuracy over many seeds of a simulator scenario, per seed and aggregated.

    GRIDWATCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python -m benchmarks.detect_accuracy [--scenario storm] [--seeds 1-10,31] [--json out.json]

Each seed is replayed in-process through the real runner and PostgreSQL
(``gridwatch.detection.run_accuracy``) and scored by the simulators' scorer beside its
naive baseline (every dark meter its own outage). Aggregates pool the outages of every
seed: precision = matched / recorded, recall = matched observable / observable true,
latency percentiles over every matched outage. Unobservable true outages (wholly inside an
outage that was already dark) are counted and listed, not in the recall denominator.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path

import numpy as np
import orjson

from gridwatch.core.settings import load_settings
from simulators._scoring import ScoreReport
from simulators.detection_accuracy import run_accuracy


def parse_seeds(text: str) -> list[int]:
    """``"1-10,31"`` -> [1, ..., 10, 31]."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a or b - a > 1000:
            raise ValueError(f"bad seed range {part!r}")
        out.extend(range(a, b + 1))
    if not out:
        raise ValueError("no seeds")
    return out


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def aggregate(reports: dict[int, ScoreReport]) -> dict[str, float]:
    rs = list(reports.values())
    true_n = sum(r.true_outages for r in rs)
    hidden = sum(r.unobservable_outages for r in rs)
    hidden_matched = sum(r.unobservable_matched for r in rs)
    observable = true_n - hidden
    matched = sum(r.matched for r in rs)
    recorded = sum(r.recorded_outages for r in rs)
    lat = [x for r in rs for x in r.detection_latency_s]
    any_dev = sum(r.detected_any_device for r in rs)
    right = sum(r.right_device for r in rs)
    base = [r.baselines.get("every_dark_meter", {}) for r in rs]
    b_rec = sum(b.get("recorded_outages", 0.0) for b in base)
    b_match = sum(b.get("matched", 0.0) for b in base)
    return {
        "seeds": float(len(rs)),
        "true_outages": float(true_n),
        "unobservable": float(hidden),
        "observable": float(observable),
        "recorded": float(recorded),
        "matched": float(matched),
        "precision": matched / recorded if recorded else math.nan,
        "recall": (matched - hidden_matched) / observable if observable else math.nan,
        "recall_all": matched / true_n if true_n else math.nan,
        "right_device": right / any_dev if any_dev else math.nan,
        "nested_customers": float(sum(r.nested_customers for r in rs)),
        "false_restored": float(sum(r.false_restored_notices for r in rs)),
        "momentaries_declared": float(sum(r.momentaries_declared for r in rs)),
        "latency_p50_s": _pct(lat, 50),
        "latency_p95_s": _pct(lat, 95),
        "latency_max_s": max(lat) if lat else math.nan,
        "baseline_recorded": b_rec,
        "baseline_matched": b_match,
        "baseline_precision": b_match / b_rec if b_rec else math.nan,
        "baseline_recall": b_match / true_n if true_n else math.nan,
    }


def to_markdown(reports: dict[int, ScoreReport], agg: dict[str, float]) -> str:
    lines = [
        "| seed | true (unobs.) / recorded / matched | precision | recall | right device"
        " | false restored | latency p50 / p95 (s) | baseline P / R |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed, r in reports.items():
        b = r.baselines.get("every_dark_meter", {})
        lines.append(
            f"| {seed} | {r.true_outages} ({r.unobservable_outages}) / {r.recorded_outages}"
            f" / {r.matched} | {_f(r.outage_precision)} | {_f(r.outage_recall)}"
            f" | {r.right_device} of {r.detected_any_device}"
            f" | {r.false_restored_notices} of {r.nested_customers}"
            f" | {_f(r.detection_latency_p50_s, 0)} / {_f(r.detection_latency_p95_s, 0)}"
            f" | {_f(b.get('outage_precision', math.nan))}"
            f" / {_f(b.get('outage_recall', math.nan))} |"
        )
    a = agg
    lines.append(
        f"| **all** | {a['true_outages']:.0f} ({a['unobservable']:.0f}) / {a['recorded']:.0f}"
        f" / {a['matched']:.0f} | **{_f(a['precision'])}** | **{_f(a['recall'])}**"
        f" | **{_f(a['right_device'])}** | {a['false_restored']:.0f} of"
        f" {a['nested_customers']:.0f} | {_f(a['latency_p50_s'], 0)} /"
        f" **{_f(a['latency_p95_s'], 0)}** | {_f(a['baseline_precision'])}"
        f" / {_f(a['baseline_recall'])} |"
    )
    return "\n".join(lines)


async def run(scenario: str, seeds: list[int], database_url: str) -> dict[int, ScoreReport]:
    out: dict[int, ScoreReport] = {}
    for seed in seeds:
        out[seed] = await run_accuracy(
            scenario, seed=seed, commit_s=1.0, database_url=database_url, truth=None
        )
        r = out[seed]
        extra = "; ".join(
            f"{k}: {', '.join(v)}"
            for k, v in (
                ("missed", r.missed_ids),
                ("false", r.false_ids),
                ("unobservable", r.unobservable_ids),
            )
            if v
        )
        print(
            f"  seed {seed}: P {_f(r.outage_precision)} R {_f(r.outage_recall)}"
            f" latency p95 {_f(r.detection_latency_p95_s, 0)} s {extra}",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detect_accuracy")
    parser.add_argument("--scenario", default="storm")
    parser.add_argument("--seeds", default="1-10,31")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    url = load_settings().database_url.get_secret_value()
    reports = asyncio.run(run(args.scenario, seeds, url))
    agg = aggregate(reports)
    print()
    print(to_markdown(reports, agg))
    print()
    print(
        "aggregate: "
        + ", ".join(f"{k} {float(v):.3f}" for k, v in agg.items() if not math.isnan(float(v)))
    )
    if args.json is not None:
        body = {
            "aggregate": agg,
            "seeds": {str(k): orjson.loads(v.to_json()) for k, v in reports.items()},
        }
        args.json.write_bytes(
            orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
