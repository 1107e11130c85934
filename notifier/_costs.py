"""Cost and reach of notices: per outage and local day, notices per channel, SMS segments
and an estimated cost from configured prices (VND). Estimates: what the providers bill is
on their invoices; here a sent SMS costs its segments and a sent ZNS one message."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from notifier._events import NOTICE_KINDS
from notifier._ports import ChannelDay, OutageReach, SmsKind


@dataclass(frozen=True, slots=True)
class Prices:
    sms_segment_vnd: float
    zns_vnd: float

    def __post_init__(self) -> None:
        for name in ("sms_segment_vnd", "zns_vnd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1_000_000):
                raise ValueError(f"{name} must be a price within [0, 1000000] VND")

    def cost_vnd(self, row: ChannelDay) -> float:
        if row.channel == "sms":
            return row.sms_segments * self.sms_segment_vnd
        if row.channel == "zns":
            return row.sent * self.zns_vnd
        return 0.0  # push, webhook, console: no per-message price


def cost_report(
    days: Sequence[ChannelDay], reach: Sequence[OutageReach], prices: Prices
) -> dict[str, Any]:
    """The figures as one JSON-able document (the table view prints the same)."""
    rows: list[dict[str, Any]] = [
        {
            "outage_id": d.outage_id,
            "day": d.day.isoformat(),
            "channel": d.channel,
            "sent": d.sent,
            "failed": d.failed,
            "waiting": d.waiting,
            "delivered": d.delivered,
            "sms_segments": d.sms_segments,
            "cost_vnd": round(prices.cost_vnd(d)),
        }
        for d in days
    ]
    outages: dict[str, dict[str, Any]] = {}
    for r in reach:
        outages[str(r.outage_id)] = {
            "customers": r.customers,
            "reached": r.reached,
            "reach_pct": round(100 * r.reached / r.customers, 1) if r.customers else None,
            "fallbacks": r.fallbacks,
            "fallbacks_not_needed": r.fallbacks_not_needed,
            "cost_vnd": 0,
        }
    for row in rows:
        entry = outages.setdefault(
            str(row["outage_id"]),
            {
                "customers": 0,
                "reached": 0,
                "reach_pct": None,
                "fallbacks": 0,
                "fallbacks_not_needed": 0,
                "cost_vnd": 0,
            },
        )
        entry["cost_vnd"] += row["cost_vnd"]
    per_day: dict[str, dict[str, Any]] = {}
    for row in rows:
        day = per_day.setdefault(str(row["day"]), {"sent": {}, "sms_segments": 0, "cost_vnd": 0})
        day["sent"][row["channel"]] = day["sent"].get(row["channel"], 0) + row["sent"]
        day["sms_segments"] += row["sms_segments"]
        day["cost_vnd"] += row["cost_vnd"]
    return {
        "prices_vnd": {"sms_segment": prices.sms_segment_vnd, "zns": prices.zns_vnd},
        "rows": rows,
        "outages": outages,
        "days": per_day,
        "total_cost_vnd": sum(r["cost_vnd"] for r in rows),
    }


def format_report(report: dict[str, Any]) -> str:
    """A table an operator reads at a glance: per outage and day, then per day, totals."""
    lines: list[str] = []
    head = ("OUTAGE", "DAY", "CHANNEL", "SENT", "FAILED", "WAITING", "DELIVERED", "SEGMENTS", "VND")
    table = [head] + [
        (
            str(r["outage_id"]),
            r["day"],
            r["channel"],
            str(r["sent"]),
            str(r["failed"]),
            str(r["waiting"]),
            str(r["delivered"]),
            str(r["sms_segments"]) if r["channel"] == "sms" else "-",
            f"{r['cost_vnd']:,}",
        )
        for r in report["rows"]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    lines.append("")
    for outage, o in report["outages"].items():
        pct = "-" if o["reach_pct"] is None else f"{o['reach_pct']}%"
        lines.append(
            f"outage {outage}: {o['reached']}/{o['customers']} customers reached ({pct}),"
            f" {o['fallbacks']} by fallback ({o['fallbacks_not_needed']} fallbacks not needed),"
            f" {o['cost_vnd']:,} VND"
        )
    for day, d in report["days"].items():
        sent = ", ".join(f"{ch} {n}" for ch, n in sorted(d["sent"].items()))
        lines.append(f"day {day}: {sent}; {d['sms_segments']} SMS segments; {d['cost_vnd']:,} VND")
    prices = report["prices_vnd"]
    lines.append(
        f"total {report['total_cost_vnd']:,} VND (estimate at {prices['sms_segment']:g} VND per"
        f" SMS segment, {prices['zns']:g} VND per ZNS)"
    )
    return "\n".join(lines)


def sms_churn_lines(kinds: Sequence[SmsKind], prices: Prices) -> list[str]:
    """SMS per kind of notice, per customer, and their cost; and the ETR updates' share of
    it (a storm re-estimates often, and each update is another SMS to every customer)."""
    order = {kind: i for i, kind in enumerate(NOTICE_KINDS)}
    rows = sorted(kinds, key=lambda k: (order.get(k.kind, len(order)), k.kind))
    width = max([len(k.kind) for k in rows] + [len("total")])
    lines = [f"SMS cost (stored notices; estimate at {prices.sms_segment_vnd:g} VND per segment)"]
    for k in rows:
        cost = k.segments * prices.sms_segment_vnd
        each = (
            f" to {k.customers} customers ({k.sent / k.customers:.1f} per customer)"
            if k.customers
            else ""
        )
        waiting = f" ({k.waiting} waiting)" if k.waiting else ""
        lines.append(
            f"  {k.kind:<{width}}  {k.sent} SMS{each}{waiting},"
            f" {k.segments} segments, {cost:,.0f} VND"
        )
    sent = sum(k.sent for k in rows)
    segments = sum(k.segments for k in rows)
    etr = sum(k.segments for k in rows if k.kind == "etr_updated")
    share = f"; ETR updates are {100 * etr / segments:.0f}% of the SMS cost" if segments else ""
    lines.append(
        f"  {'total':<{width}}  {sent} SMS, {segments} segments,"
        f" {segments * prices.sms_segment_vnd:,.0f} VND{share}"
    )
    return lines
