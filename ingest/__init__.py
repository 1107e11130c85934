"""ingest: the MQTT wire. Decodes the telemetry contract, dead-letters what breaks it,
de-duplicates, writes telemetry in bulk, and acknowledges only after the write."""

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
    "Decoded",
    "IngestService",
    "KnownIds",
    "MeterEvent",
    "OnRecords",
    "Reading",
    "Reject",
    "ScadaEvent",
    "Topic",
    "dead_letter_message",
    "dead_letter_topic",
    "parse_topic",
    "subscription_topics",
]
