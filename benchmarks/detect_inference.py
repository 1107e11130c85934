"""Detection speed and memory: ``python -m benchmarks.detect_inference [--quick]``.

1. 1,000,000 meters / ~120,000 devices: apply a batch of 10,000 events and re-run
   inference (kernels alone, then the whole OutageEngine.apply), one core.
2. A storm with hundreds of open outages, many of them separate earlier faults beneath a
   later one (explaining away on every pass), against one open outage: the same batches
   on the same network, the two engines alternating, one run (``--nested N``).
3. Kernel vs the plain-Python reference (tests/reference_detectors.py), side by side in
   one run, on a subset the reference can finish.
4. Detector state bytes per meter.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import numpy as np

import detectors as det
from benchmarks.detect_synth import radial_network
from detectors._meter_state import _RANK, _apply_meter_evidence_kernel
from gridwatch.outages import Network, OutageEngine
from tests.reference_detectors import RefMeter, ref_apply_meter_evidence, ref_infer

T = 1_795_400_000.0


def _batch(
    rng: np.random.Generator, net_meters: int, n: int, t: float, dark: np.ndarray
) -> np.ndarray:
    """A storm-like batch: half last gasps from a dark area, half interval reads."""
    ev = det.meter_evidence(n)
    half = n // 2
    ev["meter"][:half] = rng.choice(dark, size=half, replace=dark.size < half)
    ev["kind"][:half] = det.LAST_GASP
    ev["meter"][half:] = rng.integers(0, net_meters, n - half)
    ev["kind"][half:] = det.READING
    ev["v_rms_v"][half:] = 230.0
    ev["ts_s"] = t - rng.random(n) * 5.0
    return ev


def _ms(samples: list[float]) -> str:
    s = sorted(samples)
    p95 = s[int(0.95 * (len(s) - 1))]
    return f"median {statistics.median(s) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms"


LEVELS = (10, 100, 1_000, 8_900, 110_000)


def _lit_engine(net: Network, rng: np.random.Generator, t_s: float) -> OutageEngine:
    """An engine whose meters were all read lit in the 15 minutes before ``t_s``."""
    eng = OutageEngine(net, now_s=t_s - 900)
    warm = det.meter_evidence(net.n_meters)
    warm["meter"] = np.arange(net.n_meters)
    warm["ts_s"] = t_s - 900 + rng.random(net.n_meters) * 800
    warm["kind"] = det.READING
    warm["v_rms_v"] = 230.0
    eng.apply(warm)
    eng.tick(t_s)
    return eng


def _gasps(meters: np.ndarray, t_s: float) -> np.ndarray:
    ev = det.meter_evidence(meters.size)
    ev["meter"], ev["ts_s"], ev["kind"] = meters, t_s, det.LAST_GASP
    return ev


def big_network(reps: int) -> None:
    net, level = radial_network(LEVELS, 1_000_000, seed=0)
    print(f"network: {net.n_meters:,} meters, {net.n_devices:,} devices")
    model = det.DetectionModel()
    prior = model.prior_log_odds(net.kind)
    rng = np.random.default_rng(1)
    eng = _lit_engine(net, rng, T)
    recloser = int(np.flatnonzero(level == 2)[3])
    dark = net.meters_under(recloser)
    ms = det.MeterState(
        eng.meter_state.state.copy(),
        eng.meter_state.source.copy(),
        eng.meter_state.since_s.copy(),
        eng.meter_state.last_s.copy(),
        eng.meter_state.prev_s.copy(),
    )
    fold, infer, both = [], [], []
    for i in range(reps):
        ev = _batch(rng, net.n_meters, 10_000, T + i, dark)
        t0 = time.perf_counter()
        det.apply_meter_evidence(ms, ev, now_s=T + i, horizon_s=86400.0, future_skew_s=300.0)
        t1 = time.perf_counter()
        inf = det.infer_outages(net.tree, net.meter_device, ms, prior, model, now_s=T + i)
        t2 = time.perf_counter()
        fold.append(t1 - t0)
        infer.append(t2 - t1)
        both.append(t2 - t0)
    print(f"kernels, 10,000-event batch + full inference: {_ms(both)}")
    print(f"  of which evidence fold: {_ms(fold)}; inference pass: {_ms(infer)}")
    print(
        f"  out devices in the last pass: {inf.out_devices.tolist()} (faulted recloser {recloser})"
    )
    engine_t = []
    eng.tick(T + 60)
    eng.apply(_batch(rng, net.n_meters, 10_000, T + 60, dark))
    for i in range(reps):
        ev = _batch(rng, net.n_meters, 10_000, T + 110 + i, dark)
        eng.tick(T + 110 + i)
        t0 = time.perf_counter()
        eng.apply(ev)
        engine_t.append(time.perf_counter() - t0)
    print(f"OutageEngine.apply (fold + inference + lifecycle), 10,000 events: {_ms(engine_t)}")
    print(f"  open outages: {[o.device for o in eng.open_outages()]}")
    per_meter = eng.meter_state.nbytes / net.n_meters
    total = eng.state_nbytes / net.n_meters
    print(
        f"detector state: {per_meter:.1f} bytes/meter (meter state), {total:.1f} bytes/meter "
        "including per-device SCADA state"
    )


def nested_storm(reps: int, n_earlier: int) -> None:
    """``n_earlier`` transformers under as many fuses fail one by one over the first hour
    (separate, confirmed outages); an hour later half of those fuses fail too, each beneath
    it one earlier outage that explains part of its meters. Every pass then judges each
    fuse on the meters its earlier outage does not hold (``detectors.subset_weight``).
    ``OutageEngine.apply`` on the same 10,000-event batches is timed on that engine and on
    one with a single open recloser outage, alternating, on the same network."""
    net, level = radial_network(LEVELS, 1_000_000, seed=0)
    rng = np.random.default_rng(2)
    fuses = [
        int(f)
        for f in np.flatnonzero(level == 3)
        if np.count_nonzero(net.parent == f) >= 3 and net.meters_under(int(f)).size >= 30
    ][:n_earlier]
    many = _lit_engine(net, rng, T)
    one = _lit_engine(net, rng, T)
    spread_s = 3000.0 / max(len(fuses), 1)
    t = T
    for i, f in enumerate(fuses):
        tx = int(np.flatnonzero(net.parent == f)[0])
        t = T + i * spread_s
        many.tick(t)
        many.apply(_gasps(net.meters_under(tx), t))
        many.pings_wanted()  # handed out, never answered: dark meters cannot answer
    recloser = int(np.flatnonzero(level == 2)[3])
    one.apply(_gasps(net.meters_under(recloser), T))
    later = fuses[::2]
    t_fuse = T + 3600.0
    dark = np.concatenate([net.meters_under(f) for f in later])
    for eng in (many, one):
        for step in range(0, 3600 + 120, 30):
            eng.tick(min(t + step, t_fuse))
            eng.pings_wanted()
    many.apply(_gasps(dark, t_fuse))
    for step in range(30, 240, 30):
        for eng in (many, one):
            eng.tick(t_fuse + step)
            eng.pings_wanted()
    opened = many.open_outages()
    nested = sum(1 for o in opened if int(o.device) in set(later))
    print(
        f"nested storm: {len(opened)} open outages ({nested} fuses over an earlier outage "
        f"each, {len(opened) - nested} earlier transformer outages) against "
        f"{len(one.open_outages())} open outage"
    )
    t_many: list[float] = []
    t_one: list[float] = []
    for i in range(reps):
        at = t_fuse + 300 + i
        ev = _batch(rng, net.n_meters, 10_000, at, dark)
        for eng, out in ((many, t_many), (one, t_one)):
            eng.tick(at)
            t0 = time.perf_counter()
            eng.apply(ev.copy())
            out.append(time.perf_counter() - t0)
            eng.pings_wanted()
    ratio = statistics.median(t_many) / statistics.median(t_one)
    print(f"  OutageEngine.apply, {len(opened)} open: {_ms(t_many)}")
    print(f"  OutageEngine.apply, 1 open: {_ms(t_one)}; ratio of medians {ratio:.2f}x")


def reference_side_by_side(n_meters: int, n_events: int) -> None:
    levels = (1, 3, 12, max(24, n_meters // 40), max(48, n_meters // 10))
    net, level = radial_network(levels, n_meters, seed=2)
    rng = np.random.default_rng(3)
    dark = net.meters_under(int(np.flatnonzero(level == 2)[0]))
    ev = _batch(rng, net.n_meters, n_events, T, dark)
    rows = [(int(m), float(t), int(k), float(v)) for m, t, k, v in ev.tolist()]
    # meter state: the wrapper (validation, time sort, unique) and the kernel alone
    k_fold = k_only = math.inf
    for _ in range(5):
        ms = det.MeterState.empty(net.n_meters)
        t0 = time.perf_counter()
        det.apply_meter_evidence(ms, ev, now_s=T, horizon_s=86400.0, future_skew_s=300.0)
        k_fold = min(k_fold, time.perf_counter() - t0)
        fresh = det.MeterState.empty(net.n_meters)
        order = np.argsort(ev["ts_s"], kind="stable").astype(np.int64)
        cols = [np.ascontiguousarray(ev[f]) for f in ("meter", "ts_s", "kind", "v_rms_v")]
        status = np.zeros(n_events, np.int8)
        changed = np.empty(n_events, np.int32)
        t0 = time.perf_counter()
        _apply_meter_evidence_kernel(
            *cols,
            order,
            fresh.state,
            fresh.source,
            fresh.since_s,
            fresh.last_s,
            fresh.prev_s,
            T - 86400.0,
            T + 300.0,
            20.0,
            1000.0,
            _RANK,
            status,
            changed,
        )
        k_only = min(k_only, time.perf_counter() - t0)
    ref = [RefMeter() for _ in range(net.n_meters)]
    t0 = time.perf_counter()
    ref_apply_meter_evidence(ref, rows, now_s=T, horizon_s=86400.0, future_skew_s=300.0)
    r_fold = time.perf_counter() - t0
    model = det.DetectionModel()
    prior = model.prior_log_odds(net.kind)
    best_k = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        inf = det.infer_outages(net.tree, net.meter_device, ms, prior, model, now_s=T)
        best_k = min(best_k, time.perf_counter() - t0)
    n_dev = net.n_devices
    t0 = time.perf_counter()
    want = ref_infer(
        net.parent.tolist(),
        net.meter_device.tolist(),
        ref,
        prior.tolist(),
        [0] * n_dev,
        [math.nan] * n_dev,
        [False] * n_dev,
        model.llr_off_by_source().tolist(),
        model.llr_on_by_source().tolist(),
        model.llr_unknown(),
        T - model.onset_lookback_s,
    )
    r_inf = time.perf_counter() - t0
    assert inf.chosen.tolist() == want.chosen, "kernel and reference disagree"
    print(f"side by side on {n_meters:,} meters / {n_dev:,} devices, {n_events:,} events:")
    print(
        f"  evidence fold: wrapper {k_fold * 1e3:.3f} ms, kernel alone {k_only * 1e3:.3f} ms, "
        f"reference {r_fold * 1e3:.1f} ms; ratio wrapper {r_fold / k_fold:.0f}x, "
        f"kernel alone {r_fold / k_only:.0f}x"
    )
    print(
        f"  inference:     kernel {best_k * 1e3:.3f} ms, reference {r_inf * 1e3:.1f} ms, "
        f"ratio {r_inf / best_k:.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--nested",
        type=int,
        default=300,
        metavar="N",
        help="earlier transformer outages in the nested storm (0: skip it)",
    )
    args = parser.parse_args()
    if not 0 <= args.nested <= 5_000:
        parser.error("--nested must be within 0..5000")
    det.warm_up()
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    big_network(reps=5 if args.quick else 30)
    if args.nested:
        nested_storm(5 if args.quick else 30, args.nested)
    reference_side_by_side(2_000, 10_000)
    if not args.quick:
        reference_side_by_side(5_000, 10_000)


if __name__ == "__main__":
    main()
