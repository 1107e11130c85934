"""Synthetic radial networks and storms for the detection tests and benchmarks.

Not the simulators' scenario (that one is scored by ``gridwatch score``); a small,
seeded stand-in with the issue's parameters: 50% last-gasp delivery, 2% comm-silent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

import detectors as det
from gridwatch.outages import Network, OutageEngine
from gridwatch.outages._types import METER_RESTORED

KIND = {"substation": 0, "breaker": 1, "recloser": 2, "fuse": 5, "transformer": 6}


def radial_network(
    level_counts: tuple[int, ...], n_meters: int, seed: int = 0
) -> tuple[Network, npt.NDArray[np.int32]]:
    """Levels substation, breaker, recloser, fuse, transformer with the given counts;
    each node hangs off a random node of the level above; meters off transformers.
    Returns the network and each device's level."""
    rng = np.random.default_rng(seed)
    kinds = (0, 1, 2, 5, 6)
    parent: list[npt.NDArray[np.int32]] = []
    kind: list[npt.NDArray[np.int8]] = []
    level: list[npt.NDArray[np.int32]] = []
    start = 0
    prev_start, prev_n = 0, 0
    for lv, n in enumerate(level_counts):
        if lv == 0:
            p = np.full(n, -1, dtype=np.int32)
        else:
            # every node of the level above gets at least one child where possible
            base = np.arange(n) % prev_n
            extra = rng.integers(0, prev_n, n)
            p = (prev_start + np.where(np.arange(n) < prev_n, base, extra)).astype(np.int32)
        parent.append(p)
        kind.append(np.full(n, kinds[lv], dtype=np.int8))
        level.append(np.full(n, lv, dtype=np.int32))
        prev_start, prev_n = start, n
        start += n
    tx_first = prev_start
    meter_device = (tx_first + np.arange(n_meters) % prev_n).astype(np.int32)
    meter_device = rng.permutation(meter_device).astype(np.int32)
    net = Network.build(
        np.concatenate(parent),
        np.concatenate(kind),
        meter_device,
        meter_customer=np.arange(n_meters, dtype=np.int32),
    )
    return net, np.concatenate(level)


@dataclass
class StormResult:
    faults: list[int]
    predicted: list[int]
    precision: float
    recall: float
    device_accuracy: float
    latencies_s: list[float]
    false_restored: int
    nested_meters: int


def run_storm(
    net: Network,
    level: npt.NDArray[np.int32],
    *,
    n_faults: int = 30,
    p_gasp: float = 0.5,
    p_silent: float = 0.02,
    p_restore_msg: float = 0.5,
    read_period_s: float = 900.0,
    seed: int = 1,
    t0: float = 1_795_400_000.0,
    dt: float = 5.0,
) -> StormResult:
    """Faults on random devices (an antichain, levels 1-4), evidence as a head-end would
    deliver it, pings answered by lit non-silent meters; later every fault but one nested
    transformer is repaired. Scores the open outages 10 minutes in, then restoration."""
    rng = np.random.default_rng(seed)
    n_m = net.n_meters
    silent = rng.random(n_m) < p_silent
    phase = rng.random(n_m) * read_period_s
    # Faults: random devices at levels 1..4, none under another.
    faults: list[int] = []
    weights = np.where(level == 1, 0.02, np.where(level == 2, 0.1, np.where(level == 3, 0.4, 1.0)))
    weights = weights * (level >= 1)
    n_pick = int(np.count_nonzero(weights))
    for d in rng.choice(net.n_devices, size=n_pick, replace=False, p=weights / weights.sum()):
        d = int(d)
        if any(net.is_under(d, f) or net.is_under(f, d) for f in faults):
            continue
        faults.append(d)
        if len(faults) == n_faults:
            break
    dark = np.zeros(n_m, dtype=bool)
    fault_of_meter = np.full(n_m, -1)
    for f in faults:
        ms = net.meters_under(f)
        dark[ms] = True
        fault_of_meter[ms] = f
    # A nested fault: a transformer under the first non-transformer fault stays dark.
    nested_tx = -1
    for f in faults:
        if level[f] < 4:
            txs = [d for d in range(net.n_devices) if level[d] == 4 and net.is_under(d, f)]
            if txs:
                nested_tx = int(rng.choice(txs))
                break
    nested_meters = net.meters_under(nested_tx) if nested_tx >= 0 else np.zeros(0, np.int32)

    eng = OutageEngine(net, now_s=t0 - 1800.0)
    # Warm history: a read from every non-silent meter before the storm.
    ev = det.meter_evidence(int((~silent).sum()))
    ev["meter"] = np.flatnonzero(~silent)
    ev["ts_s"] = t0 - 1800.0 + phase[~silent] * (1800.0 / read_period_s) * 0.5
    ev["kind"] = det.READING
    ev["v_rms_v"] = 230.0
    eng.tick(t0 - 900.0)
    eng.apply(ev)
    fault_t = t0 + rng.random(len(faults)) * 60.0
    onset = np.full(n_m, np.nan)
    for f, t in zip(faults, fault_t, strict=True):
        onset[net.meters_under(f)] = t
    gasp = dark & ~silent & (rng.random(n_m) < p_gasp)
    gasp_t = onset + rng.random(n_m) * 2.0
    first_seen: dict[int, float] = {}

    def answer_pings(now: float) -> npt.NDArray[np.void]:
        reqs = eng.pings_wanted()
        ok = [r for r in reqs if not silent[r.meter] and not lit_dark[r.meter]]
        out = det.meter_evidence(len(ok))
        out["meter"] = [r.meter for r in ok]
        out["ts_s"] = now
        out["kind"] = det.PING_ON
        return out

    def step(now: float, lo: float, hi: float) -> None:
        g = np.flatnonzero(gasp & (gasp_t >= lo) & (gasp_t < hi))
        reads = np.flatnonzero(~silent & ~lit_dark & (((now - phase) % read_period_s) < (hi - lo)))
        ev = det.meter_evidence(g.size + reads.size)
        ev["meter"] = np.concatenate([g, reads])
        ev["ts_s"] = np.concatenate([gasp_t[g], np.full(reads.size, now)])
        ev["kind"] = np.concatenate(
            [np.full(g.size, det.LAST_GASP), np.full(reads.size, det.READING)]
        )
        ev["v_rms_v"][g.size :] = 230.0
        eng.tick(now)
        eng.apply(ev)
        eng.apply(answer_pings(now))
        for o in eng.open_outages():
            first_seen.setdefault(o.device, now)

    lit_dark = dark.copy()

    now = t0
    while now < t0 + 600.0:
        step(now + dt, now, now + dt)
        now += dt
    predicted = [o.device for o in eng.open_outages()]
    # Score: a predicted outage is right if it names a faulted device, or if most of its
    # meters belong to one fault (then the device is wrong but the outage is real).
    matched: dict[int, int] = {}
    tp = 0
    for o in eng.open_outages():
        if o.device in faults:
            tp += 1
            matched[o.device] = o.device
            continue
        f = fault_of_meter[o.meters]
        if f.size and (f >= 0).mean() >= 0.5:
            tp += 1
            top = int(np.bincount(f[f >= 0]).argmax())
            matched.setdefault(top, o.device)
    recall = len(matched) / len(faults)
    device_acc = sum(1 for f, d in matched.items() if f == d) / max(1, len(matched))
    latencies = [
        first_seen[f] - float(t) for f, t in zip(faults, fault_t, strict=True) if f in first_seen
    ]
    # Repair every fault but the nested transformer; half the meters say "restore".
    repair_t = now + 60.0
    back = dark.copy()
    back[nested_meters] = False
    restore_msg = back & ~silent & (rng.random(n_m) < p_restore_msg)
    lit_dark = dark & ~back
    eng.tick(repair_t)
    r = np.flatnonzero(restore_msg)
    ev = det.meter_evidence(r.size)
    ev["meter"] = r
    ev["ts_s"] = repair_t
    ev["kind"] = det.POWER_RESTORE
    eng.apply(ev)
    now = repair_t
    while now < repair_t + 1200.0:
        step(now + dt, now, now + dt)
        now += dt
    false_restored = 0
    for o in eng.outages.values():
        restored = o.meters[o.meter_status == METER_RESTORED]
        false_restored += int(np.isin(restored, nested_meters).sum())
    return StormResult(
        faults=faults,
        predicted=predicted,
        precision=tp / max(1, len(predicted)),
        recall=recall,
        device_accuracy=device_acc,
        latencies_s=latencies,
        false_restored=false_restored,
        nested_meters=int(nested_meters.size),
    )
