"""Engine objects -> store rows (ids instead of indices). Pure; the caller does the I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridwatch.outages._types import (
    METER_RESTORED,
    METER_STATUS_NAMES,
    Momentary,
    Outage,
    OutageChange,
)
from gridwatch.store.outages import OutageMeterRow, OutageRow, TimelineRow
from gridwatch.store.reliability import MomentaryRow

Obj = npt.NDArray[np.object_]


@dataclass(frozen=True, eq=False)
class Names:
    """Ids by index, as the topology holds them."""

    device_ids: Obj
    device_zone: Obj
    meter_ids: Obj
    customer_ids: Obj  # by customer index
    meter_customer: npt.NDArray[np.int32]


def outage_row(o: Outage, names: Names) -> OutageRow:
    restored = o.meter_status == METER_RESTORED
    cust = names.meter_customer[o.meters[restored]]
    return OutageRow(
        engine_key=o.key,
        device_id=str(names.device_ids[o.device]),
        zone=str(names.device_zone[o.device]),
        state=o.state,
        cause=o.cause,
        started_s=o.start_s,
        confirmed_s=o.confirmed_s,
        restored_s=o.restored_s,
        # Rounded: a logistic far in its tail is a subnormal PostgreSQL refuses (underflow).
        confidence=round(float(min(max(o.confidence, 0.0), 1.0)), 9),
        meters_affected=o.meters_affected,
        customers_affected=o.customers_affected,
        meters_restored=int(restored.sum()),
        customers_restored=int(np.unique(cust[cust >= 0]).shape[0]),
        parent_key=o.parent_key,
        scope=o.scope,
    )


def outage_meter_rows(o: Outage, names: Names) -> list[OutageMeterRow]:
    rows = []
    for m, status, at in zip(
        o.meters.tolist(), o.meter_status.tolist(), o.meter_restored_s.tolist(), strict=True
    ):
        c = int(names.meter_customer[m])
        rows.append(
            OutageMeterRow(
                o.key,
                str(names.meter_ids[m]),
                None if c < 0 else str(names.customer_ids[c]),
                METER_STATUS_NAMES[status],
                None if np.isnan(at) else float(at),
            )
        )
    return rows


def rows_for_changes(
    outages: dict[str, Outage], changes: Sequence[OutageChange], names: Names
) -> tuple[list[OutageRow], list[OutageMeterRow], list[TimelineRow]]:
    """The rows to write after one ``apply``/``tick``: every outage touched (parents
    before the nested outages that point at them), its meters, and the new entries."""
    touched = list(dict.fromkeys(c.key for c in changes))
    touched.sort(key=lambda k: outages[k].parent_key is not None)
    out_rows = [outage_row(outages[k], names) for k in touched]
    meter_rows = [r for k in touched for r in outage_meter_rows(outages[k], names)]
    timeline = [TimelineRow(c.key, c.at_s, c.kind, c.detail) for c in changes]
    return out_rows, meter_rows, timeline


def momentary_rows(momentaries: Sequence[Momentary], names: Names) -> list[MomentaryRow]:
    return [
        MomentaryRow(
            str(names.device_ids[m.device]),
            str(names.device_zone[m.device]),
            m.start_s,
            m.end_s,
            m.meters,
            m.customers,
            m.cause,
        )
        for m in momentaries
    ]
