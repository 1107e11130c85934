"""Outage detection inside the running service: ingest records -> engine -> store + pings."""

from gridwatch.detection._evidence import Evidence, EvidenceAdapter, EvidenceReject
from gridwatch.detection._pings import (
    MqttPingSender,
    OutgoingPing,
    PingSender,
    ping_payload,
    ping_topic,
)
from gridwatch.detection._runner import (
    DetectionRunner,
    DetectionSnapshot,
    OnCommitted,
    OnPersisted,
    OpenOutageView,
    PersistedOutages,
    RunnerConfig,
)

__all__ = [
    "DetectionRunner",
    "DetectionSnapshot",
    "Evidence",
    "EvidenceAdapter",
    "EvidenceReject",
    "MqttPingSender",
    "OnCommitted",
    "OnPersisted",
    "OpenOutageView",
    "OutgoingPing",
    "PersistedOutages",
    "PingSender",
    "RunnerConfig",
    "ping_payload",
    "ping_topic",
]
