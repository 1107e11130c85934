"""Builders the outage-engine tests share: evidence rows, SCADA rows, and an engine on a
small network whose meters all read lit ten minutes before ``T``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

import detectors as d
from gridwatch.outages import EngineConfig, Network, OutageChange, OutageEngine, PingRequest

T = 1_795_400_000.0


def rows(meters: list[int], ts: float, kind: int, v: float = math.nan) -> np.ndarray:
    arr = d.meter_evidence(len(meters))
    arr["meter"] = meters
    arr["ts_s"] = ts
    arr["kind"] = kind
    arr["v_rms_v"] = v
    return arr


def scada(device: int, ts: float, kind: int) -> np.ndarray:
    arr = d.scada_evidence(1)
    arr[0] = (device, ts, kind)
    return arr


def network(
    parent: Sequence[int], kind: Sequence[int], meter_device: npt.NDArray[np.int32]
) -> Network:
    return Network.build(
        list(parent), list(kind), meter_device, meter_customer=np.arange(meter_device.size)
    )


def lit_engine(net: Network, config: EngineConfig | None = None) -> OutageEngine:
    """An engine at ``T`` whose meters were all read lit at ``T - 600``. These small worlds
    send no interval reads, so pinging meters that went quiet is off unless ``config``
    turns it on (the tests of that rule do)."""
    e = OutageEngine(net, now_s=T - 600, config=config or EngineConfig(read_overdue_s=0.0))
    e.apply(rows(list(range(net.meter_device.size)), T - 600, d.READING, 230.0))
    e.tick(T)
    return e


# A head-end's answer to a ping: (reply kind, seconds after it left), or None: never.
Answer = Callable[[PingRequest], tuple[int, float] | None]


def tick_answering(
    eng: OutageEngine, until_s: float, answer: Answer, *, step_s: float = 1.0
) -> list[OutageChange]:
    """Tick every ``step_s`` event seconds to ``until_s``, handing out pings as a runner
    does; each is answered as ``answer`` says."""
    changes: list[OutageChange] = []
    t = eng.now_s
    while t < until_s:
        t += step_s
        changes += eng.tick(t)
        for p in eng.pings_wanted():
            reply = answer(p)
            if reply is not None:
                kind, lag_s = reply
                changes += eng.apply(rows([p.meter], p.requested_s + lag_s, kind), now_s=t)
    return changes


# The feeder most engine tests share: substation 0 -> breaker 1 -> recloser 2 -> fuse 3 ->
# transformers 4, 5; recloser 2 -> transformer 6; substation 0 -> breaker 7 ->
# transformers 8, 9. Six meters on each transformer.
FEEDER_PARENT = [-1, 0, 1, 2, 3, 3, 2, 0, 7, 7]
FEEDER_KIND = [0, 1, 2, 5, 6, 6, 6, 1, 6, 6]
FEEDER_METER_DEVICE = np.repeat([4, 5, 6, 8, 9], 6).astype(np.int32)


def feeder_meters(tx: int) -> list[int]:
    """The meters of transformer ``tx`` on the shared feeder."""
    return np.flatnonzero(tx == FEEDER_METER_DEVICE).tolist()


def feeder_network(parent: Sequence[int] = FEEDER_PARENT) -> Network:
    """The shared feeder (``parent`` may re-hang it, e.g. after a tie)."""
    return network(parent, FEEDER_KIND, FEEDER_METER_DEVICE)
