"""AMI behaviour: interval reads, last gasps, restores, DCU batching, comm faults, pings.

Telemetry is generated chunk by chunk (one reading interval of event time per chunk) with
numpy, from the world's per-meter supply transitions. Each chunk draws from its own
random stream (seed, chunk), so the output is byte-identical for a seed however it is
consumed. Messages come out ordered by publish time; delays make them out of order in
event time, as real AMI is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from gridwatch.topology import BoolArray, F64Array, I32Array
from simulators._errors import (
    SimulatorError,
    check_non_negative,
    check_positive,
    check_probability,
)
from simulators._feeder import SimGrid
from simulators._messages import SimMessage, epoch_ms_text, ms_of, rfc3339_ms, rfc3339_s
from simulators._world import WorldResult

BATCH_MAX_ITEMS: Final = 10_000  # the contract's limit for one batch
MOMENTARY_DARK_S: Final = 10.0  # a dark spell shorter than this is a momentary for the meter


@dataclass(frozen=True)
class CommBlackout:
    """Backhaul loss: these DCUs (or every DCU in ``zone``) send nothing for a while; the
    power stays on. ``dcus=()`` and ``zone=None`` means every DCU."""

    at_s: float
    duration_s: float
    zone: str | None = None
    dcus: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_non_negative("blackout at_s", self.at_s)
        check_positive("blackout duration_s", self.duration_s)


@dataclass(frozen=True)
class AmiParams:
    interval_s: float = 900.0
    v_nominal_v: float = 230.0
    v_transformer_sigma_v: float = 3.0
    v_daily_swing_v: float = 5.0
    v_noise_v: float = 0.8
    last_gasp_p: float = 0.9
    momentary_gasp_p: float = 0.3
    power_restore_p: float = 0.9
    event_delay_median_s: float = 2.0
    event_delay_sigma: float = 0.8
    dcu_batch_window_s: float = 30.0
    reading_upload_spread_s: float = 240.0
    duplicate_p: float = 0.01
    late_p: float = 0.01
    late_max_s: float = 600.0
    comm_silent_fraction: float = 0.0
    direct_fraction: float = 0.1  # meters with their own modem (per-meter topics)
    scada_latency_s: float = 0.5
    blackouts: tuple[CommBlackout, ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "last_gasp_p",
            "momentary_gasp_p",
            "power_restore_p",
            "duplicate_p",
            "late_p",
            "comm_silent_fraction",
            "direct_fraction",
        ):
            check_probability(name, getattr(self, name))
        for name in ("interval_s", "event_delay_median_s", "dcu_batch_window_s", "v_nominal_v"):
            check_positive(name, getattr(self, name))
        for name in (
            "v_transformer_sigma_v",
            "v_daily_swing_v",
            "v_noise_v",
            "event_delay_sigma",
            "reading_upload_spread_s",
            "late_max_s",
            "scada_latency_s",
        ):
            check_non_negative(name, getattr(self, name))
        if self.interval_s < 60.0:
            raise SimulatorError(f"interval_s must be >= 60, got {self.interval_s!r}")


@dataclass
class AmiCounts:
    readings: int = 0
    last_gasps: int = 0
    power_restores: int = 0
    scada: int = 0
    messages: int = 0
    duplicates: int = 0
    gasps_lost: int = 0  # last gasps the world produced but AMI did not deliver


class TelemetryGenerator:
    """What the head-end, DCUs, direct meters and SCADA gateway send for one world run."""

    def __init__(self, grid: SimGrid, world: WorldResult, params: AmiParams, seed: int) -> None:
        self.grid = grid
        self.world = world
        self.params = params
        self.seed = seed
        topo = grid.topology
        n = len(topo.meters)
        rng = np.random.default_rng([seed, 0x616D69])
        self.meter_ids: list[str] = topo.meters.ids.tolist()
        self.meter_zone: list[str] = topo.devices.zone[topo.meters.device].tolist()
        self.device_ids: list[str] = topo.devices.ids.tolist()
        self.device_zone: list[str] = topo.devices.zone.tolist()
        self.meter_index = topo.meter_index
        n_dev = len(topo.devices)
        self._v_tx = rng.normal(0.0, params.v_transformer_sigma_v, n_dev)
        self._v_sens = rng.uniform(0.3, 1.0, n_dev)  # how much each transformer sags at peak
        self._v_meter = rng.normal(0.0, 0.7, n)
        self._kwh_base = rng.uniform(1_000.0, 30_000.0, n)
        self._kw = rng.lognormal(math.log(0.6), 0.5, n)
        self.direct: BoolArray = rng.random(n) < params.direct_fraction
        silent = rng.random(n) < params.comm_silent_fraction
        span = world.end_s - world.start_s
        self.silent_from_s: F64Array = np.where(
            silent, world.start_s + rng.uniform(-params.interval_s, span / 2, n), np.inf
        )
        self._dcu_offset = rng.uniform(
            10.0, 10.0 + params.reading_upload_spread_s, len(grid.dcu_ids)
        )
        dcu_zone = np.empty(len(grid.dcu_ids), dtype=object)
        dcu_zone[grid.meter_dcu] = topo.devices.zone[topo.meters.device]
        dcu_index = {d: i for i, d in enumerate(grid.dcu_ids.tolist())}
        self._blackouts: list[tuple[float, float, BoolArray]] = []
        for b in params.blackouts:
            mask = np.ones(len(grid.dcu_ids), dtype=np.bool_)
            if b.zone is not None:
                mask &= dcu_zone == b.zone
            if b.dcus:
                unknown = [d for d in b.dcus if d not in dcu_index]
                if unknown:
                    raise SimulatorError(f"blackout: unknown DCU(s) {', '.join(unknown)}")
                sel = np.zeros_like(mask)
                sel[[dcu_index[d] for d in b.dcus]] = True
                mask &= sel
            self._blackouts.append(
                (world.start_s + b.at_s, world.start_s + b.at_s + b.duration_s, mask)
            )
        # DCU membership, meters sorted by DCU.
        self._dcu_order = np.argsort(grid.meter_dcu, kind="stable").astype(np.int32)
        self._dcu_bounds = np.searchsorted(
            grid.meter_dcu[self._dcu_order], np.arange(len(grid.dcu_ids) + 1)
        )
        # Per transition: how long the meter stays dark (for off transitions).
        self._dark_s = self._dark_durations()
        self.counts = AmiCounts()

    # -- what the world looks like to the comms network -------------------------------
    def _dark_durations(self) -> F64Array:
        w = self.world
        out = np.full(w.tr_t.shape, np.inf)
        order = np.lexsort((w.tr_t, w.tr_meter))
        m, t, on = w.tr_meter[order], w.tr_t[order], w.tr_on[order]
        nxt = np.arange(1, order.size + 1)
        ok = (nxt < order.size) & (~on)
        ok_idx = np.flatnonzero(ok)
        same = m[ok_idx] == m[np.minimum(ok_idx + 1, order.size - 1)]
        good = ok_idx[same]
        out[order[good]] = t[good + 1] - t[good]
        return out

    def communicating(self, meters: I32Array, t_s: float) -> BoolArray:
        ok = self.silent_from_s[meters] > t_s
        dcu = self.grid.meter_dcu[meters]
        for lo, hi, mask in self._blackouts:
            if lo <= t_s < hi:
                ok &= ~(mask[dcu] & ~self.direct[meters])
        return ok

    def answer_ping(self, meter_id: str, t_s: float) -> bool | None:
        """A ping's answer: True/False for supply, None when the meter cannot be reached
        (comm-silent or its DCU blacked out): the head-end then simply never answers."""
        idx = self.meter_index.get(meter_id)
        if idx is None:
            return None
        m = np.array([idx], dtype=np.int32)
        if not self.communicating(m, t_s)[0]:
            return None
        return bool(self.world.meters_on_at(m, t_s)[0])

    def zone_of(self, meter_id: str) -> str | None:
        idx = self.meter_index.get(meter_id)
        return None if idx is None else self.meter_zone[idx]

    def _last_gasp_p(self, zone: str, t_s: float, dark_s: float) -> float:
        if dark_s < MOMENTARY_DARK_S:
            return self.params.momentary_gasp_p
        off = t_s - self.world.start_s
        for st in self.world.storms:
            if (
                st.zone == zone
                and st.last_gasp_p is not None
                and st.at_s <= off < st.at_s + st.duration_s
            ):
                return st.last_gasp_p
        return self.params.last_gasp_p

    # -- generation ------------------------------------------------------------------
    def chunks(self) -> Iterator[list[SimMessage]]:
        p = self.params
        w = self.world
        n_chunks = math.ceil((w.end_s - w.start_s) / p.interval_s)
        order = np.argsort(w.tr_t, kind="stable")
        tr_t, tr_m, tr_on, dark = (
            w.tr_t[order],
            w.tr_meter[order],
            w.tr_on[order],
            self._dark_s[order],
        )
        scada = w.scada
        state = np.ones(len(self.meter_ids), dtype=np.bool_)
        i_tr = 0
        i_sc = 0
        pending: list[SimMessage] = []
        for k in range(n_chunks):
            rng = np.random.default_rng([self.seed, 0x6368756E6B, k])
            lo = w.start_s + k * p.interval_s
            hi = min(w.end_s, lo + p.interval_s)
            while i_tr < tr_t.size and tr_t[i_tr] < lo:
                state[tr_m[i_tr]] = tr_on[i_tr]
                i_tr += 1
            new = self._readings(lo, state, rng)
            j = int(np.searchsorted(tr_t, hi, side="left"))
            sel = slice(i_tr, j)
            new += self._events(tr_t[sel], tr_m[sel], tr_on[sel], dark[sel], rng)
            while i_sc < len(scada) and scada[i_sc].t_s < hi:
                op = scada[i_sc]
                i_sc += 1
                if op.t_s < w.start_s:
                    continue
                ms = ms_of(op.t_s)
                body = f'{{"ts":"{rfc3339_ms(ms)}","type":"{op.kind}","phases":"ABC"}}'
                topic = f"{self.device_zone[op.device]}/scada/{self.device_ids[op.device]}/event"
                lat = p.scada_latency_s * float(rng.uniform(0.5, 1.5))
                new.append(SimMessage(op.t_s + lat, topic, body.encode(), op.t_s))
                self.counts.scada += 1
            new = self._disturb(new, rng)
            pending += new
            pending.sort(key=lambda msg: msg.publish_s)  # stable: creation order breaks ties
            cut = 0
            while cut < len(pending) and pending[cut].publish_s < hi:
                cut += 1
            out, pending = pending[:cut], pending[cut:]
            self.counts.messages += len(out)
            yield out
        if pending:
            self.counts.messages += len(pending)
            yield pending

    def messages(self) -> Iterator[SimMessage]:
        for chunk in self.chunks():
            yield from chunk

    def _readings(self, t_s: float, state: BoolArray, rng: np.random.Generator) -> list[SimMessage]:
        p = self.params
        if t_s >= self.world.end_s:
            return []
        n = state.shape[0]
        all_m = np.arange(n, dtype=np.int32)
        reads = state & self.communicating(all_m, t_s)
        dev = self.grid.topology.meters.device
        hour_local = ((t_s / 3600.0) + 7.0) % 24.0  # Indochina time: evening peak sags volts
        load = 0.5 - 0.5 * math.cos(2 * math.pi * (hour_local - 7.0) / 24.0)
        v = (
            p.v_nominal_v
            + self._v_tx[dev]
            + self._v_meter
            - p.v_daily_swing_v * load * self._v_sens[dev]
            + rng.normal(0.0, p.v_noise_v, n)
        )
        kwh = self._kwh_base + self._kw * ((t_s - 1_700_000_000.0) / 3600.0)
        ts_int = int(t_s) if float(t_s).is_integer() else None
        ts_txt = str(ts_int) if ts_int is not None else epoch_ms_text(ms_of(t_s))
        seq = ms_of(t_s)
        ids = self.meter_ids
        out: list[SimMessage] = []
        # Concentrated meters: one batch per DCU, uploaded a DCU-specific while after the read.
        dcu_meters = reads & ~self.direct
        jitter = rng.uniform(0.0, 5.0, len(self.grid.dcu_ids))
        for d in range(len(self.grid.dcu_ids)):
            members = self._dcu_order[self._dcu_bounds[d] : self._dcu_bounds[d + 1]]
            members = members[dcu_meters[members]]
            for s in range(0, members.size, BATCH_MAX_ITEMS):
                part = members[s : s + BATCH_MAX_ITEMS]
                items = ",".join(
                    f'{{"meter":"{ids[m]}","ts":{ts_txt},"v":{vv:.1f},"kwh":{kk:.3f},"seq":{seq}}}'
                    for m, vv, kk in zip(
                        part.tolist(), v[part].tolist(), kwh[part].tolist(), strict=True
                    )
                )
                body = f'{{"readings":[{items}]}}'.encode()
                zone = self.meter_zone[int(part[0])]
                pub = t_s + float(self._dcu_offset[d]) + float(jitter[d])
                out.append(SimMessage(pub, f"{zone}/batch", body, t_s))
                self.counts.readings += int(part.size)
        direct = np.flatnonzero(reads & self.direct)
        if direct.size:
            ts_rfc = rfc3339_s(t_s) if ts_int is not None else rfc3339_ms(seq)
            delays = rng.uniform(1.0, 60.0, direct.size)
            for m, vv, kk, dl in zip(
                direct.tolist(),
                v[direct].tolist(),
                kwh[direct].tolist(),
                delays.tolist(),
                strict=True,
            ):
                body = f'{{"ts":"{ts_rfc}","v":{vv:.1f},"kwh":{kk:.3f},"seq":{seq}}}'.encode()
                out.append(
                    SimMessage(t_s + dl, f"{self.meter_zone[m]}/meters/{ids[m]}/reading", body, t_s)
                )
            self.counts.readings += int(direct.size)
        return out

    def _events(
        self, t: F64Array, m: I32Array, on: BoolArray, dark: F64Array, rng: np.random.Generator
    ) -> list[SimMessage]:
        p = self.params
        if t.size == 0:
            return []
        # Meter-side times: a last gasp leaves within half a second, a restore after boot-up.
        ev_t = np.where(on, t + rng.uniform(0.5, 3.0, t.size), t + rng.uniform(0.05, 0.5, t.size))
        draw = rng.random(t.size)
        delay = p.event_delay_median_s * np.exp(p.event_delay_sigma * rng.standard_normal(t.size))
        ids = self.meter_ids
        bulk: dict[int, list[tuple[int, int, str]]] = {}  # dcu -> (ms, meter, type)
        out: list[SimMessage] = []
        for i in range(t.size):
            mi = int(m[i])
            zone = self.meter_zone[mi]
            if on[i]:
                keep = draw[i] < p.power_restore_p
                kind = "power_restore"
            else:
                keep = draw[i] < self._last_gasp_p(zone, float(t[i]), float(dark[i]))
                kind = "last_gasp"
            if keep and not self.communicating(np.array([mi], dtype=np.int32), float(ev_t[i]))[0]:
                keep = False
            if not keep:
                if kind == "last_gasp":
                    self.counts.gasps_lost += 1
                continue
            ms = ms_of(float(ev_t[i]))
            if ms % 1000 == 0:
                ms += 1  # never share a millisecond (seq) with an interval read
            if kind == "last_gasp":
                self.counts.last_gasps += 1
            else:
                self.counts.power_restores += 1
            if self.direct[mi]:
                body = f'{{"ts":"{rfc3339_ms(ms)}","type":"{kind}","seq":{ms}}}'.encode()
                out.append(
                    SimMessage(
                        ms / 1000.0 + float(delay[i]),
                        f"{zone}/meters/{ids[mi]}/event",
                        body,
                        ms / 1000.0,
                    )
                )
            else:
                bulk.setdefault(int(self.grid.meter_dcu[mi]), []).append((ms, mi, kind))
        # A DCU collects what its meters said for a window after the first, then sends it.
        for d in sorted(bulk):
            items = sorted(bulk[d])
            start = 0
            while start < len(items):
                w0 = items[start][0]
                end = start
                while (
                    end < len(items)
                    and items[end][0] < w0 + p.dcu_batch_window_s * 1000
                    and end - start < BATCH_MAX_ITEMS
                ):
                    end += 1
                group = items[start:end]
                text = ",".join(
                    f'{{"meter":"{ids[mi]}","ts":{epoch_ms_text(ms)},"type":"{kind}","seq":{ms}}}'
                    for ms, mi, kind in group
                )
                pub = w0 / 1000.0 + p.dcu_batch_window_s + float(rng.uniform(0.0, 2.0))
                zone = self.meter_zone[group[0][1]]
                out.append(
                    SimMessage(pub, f"{zone}/batch", f'{{"events":[{text}]}}'.encode(), w0 / 1000.0)
                )
                start = end
        return out

    def _disturb(self, msgs: list[SimMessage], rng: np.random.Generator) -> list[SimMessage]:
        """QoS 1 redeliveries (same bytes) and stragglers (late, hence out of order)."""
        p = self.params
        if not msgs:
            return msgs
        n = len(msgs)
        dup = rng.random(n) < p.duplicate_p
        late = rng.random(n) < p.late_p
        late_by = rng.uniform(60.0, max(60.0, p.late_max_s), n)
        dup_by = rng.uniform(1.0, 30.0, n)
        out: list[SimMessage] = []
        for i, msg in enumerate(msgs):
            if late[i]:
                msg = SimMessage(
                    msg.publish_s + float(late_by[i]),
                    msg.topic,
                    msg.payload,
                    msg.event_ts_s,
                    msg.qos,
                )
            out.append(msg)
            if dup[i]:
                out.append(
                    SimMessage(
                        msg.publish_s + float(dup_by[i]),
                        msg.topic,
                        msg.payload,
                        msg.event_ts_s,
                        msg.qos,
                    )
                )
                self.counts.duplicates += 1
        return out
