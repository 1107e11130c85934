"""Prometheus metrics, one registry for the process. Labels stay low-cardinality:
rejects are labelled by a reason *code*, never by free text or ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_IN = Counter(
    "gridwatch_mqtt_messages_in_total",
    "MQTT messages received, by message kind",
    ["kind"],
    registry=REGISTRY,
)
MESSAGES_REJECTED = Counter(
    "gridwatch_mqtt_messages_rejected_total",
    "MQTT messages (or batch items) rejected, by reason code",
    ["reason"],
    registry=REGISTRY,
)
DUPLICATES_DROPPED = Counter(
    "gridwatch_duplicates_dropped_total",
    "Telemetry records dropped as duplicates (redelivery, replay)",
    registry=REGISTRY,
)
RECORDS_WRITTEN = Counter(
    "gridwatch_telemetry_records_written_total",
    "Telemetry records durably written, by table",
    ["table"],
    registry=REGISTRY,
)
BATCH_WRITE_SECONDS = Histogram(
    "gridwatch_batch_write_seconds",
    "Latency of one telemetry batch write to the database",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "gridwatch_ingest_queue_depth",
    "Messages received but not yet durably written",
    registry=REGISTRY,
)
BROKER_CONNECTED = Gauge(
    "gridwatch_mqtt_connected", "1 while connected to the MQTT broker", registry=REGISTRY
)

# Control API (gridwatch/api). ``route`` is the route template, never the raw path.
API_REQUESTS = Counter(
    "gridwatch_api_requests_total",
    "HTTP requests served by the control API, by route template, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
API_REQUEST_SECONDS = Histogram(
    "gridwatch_api_request_seconds",
    "Control API request latency, by route template",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "gridwatch_database_up", "1 if the last readiness ping reached the database", registry=REGISTRY
)
EVENT_LAG_SECONDS = Gauge(
    "gridwatch_event_lag_seconds",
    "How far a loop that shapes decisions or notices runs behind the service clock, in"
    " event (service-clock) seconds; above its budget the service is not keeping up",
    ["loop"],
    registry=REGISTRY,
)
FALLING_BEHIND = Counter(
    "gridwatch_falling_behind_total",
    "Times a loop ran behind the service clock by more than its budget (event seconds)",
    ["loop"],
    registry=REGISTRY,
)
