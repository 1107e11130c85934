"""Notifier metrics in gridwatch's registry (labels: channel and outcome codes only)."""

from __future__ import annotations

from prometheus_client import Counter

from gridwatch.core.metrics import REGISTRY

NOTICES_ENQUEUED = Counter(
    "gridwatch_notices_enqueued_total",
    "Notices written to the outbox, by kind",
    ["kind"],
    registry=REGISTRY,
)
NOTICES_DISPATCHED = Counter(
    "gridwatch_notices_dispatched_total",
    "Dispatch outcomes, by channel and outcome (sent, retry, failed, unknown, reconciled, skipped)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
WEBHOOKS_REJECTED = Counter(
    "gridwatch_notify_webhooks_rejected_total",
    "Inbound webhooks rejected, by reason code",
    ["reason"],
    registry=REGISTRY,
)
