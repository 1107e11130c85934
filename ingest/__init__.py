"""ingest: the MQTT wire. Decodes the telemetry contract, dead-letters what breaks it,
de-duplicates, writes telemetry in bulk, and acknowledges only after the write.

It depends on gridwatch.core only: the application gives it an ``IngestConfig`` and a
``TelemetrySink`` (the PostgreSQL one in production)."""

from ingest._consumer import BrokerAddress, IngestService, OnRecords, subscription_topics
from ingest._contract import (
    MAX_BATCH_ITEMS,
    MAX_PAYLOAD_BYTES,
    REJECT_CODES,
    ContractDecoder,
    KnownIds,
    Topic,
    parse_topic,
)
from ingest._deadletter import DEAD_LETTER_MAX_PAYLOAD, dead_letter_message, dead_letter_topic
from ingest._ports import (
    DeadLetterRow,
    EventKey,
    IngestConfig,
    TelemetrySink,
    TelemetryWriteResult,
    event_key_us,
)
from ingest._records import (
    METER_EVENT_TYPES,
    SCADA_EVENT_TYPES,
    CommittedBatch,
    Decoded,
    MeterEvent,
    Reading,
    Reject,
    ScadaEvent,
)

__all__ = [
    "DEAD_LETTER_MAX_PAYLOAD",
    "MAX_BATCH_ITEMS",
    "MAX_PAYLOAD_BYTES",
    "METER_EVENT_TYPES",
    "REJECT_CODES",
    "SCADA_EVENT_TYPES",
    "BrokerAddress",
    "CommittedBatch",
    "ContractDecoder",
    "DeadLetterRow",
    "Decoded",
    "EventKey",
    "IngestConfig",
    "IngestService",
    "KnownIds",
    "MeterEvent",
    "OnRecords",
    "Reading",
    "Reject",
    "ScadaEvent",
    "TelemetrySink",
    "TelemetryWriteResult",
    "Topic",
    "dead_letter_message",
    "dead_letter_topic",
    "event_key_us",
    "parse_topic",
    "subscription_topics",
]
