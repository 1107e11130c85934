"""The telemetry contract (shared/telemetry-contract.md, v1): topics and payloads in,
typed records or rejects out. Pure: no I/O, no asyncio; time comes from the clock seam.

Every reject names the field and why (``reason``, safe to publish in a dead letter) and
carries a low-cardinality ``code`` for metrics. Nothing here raises on bad input: the
worst a hostile payload can do is be rejected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, NamedTuple, Protocol

import orjson

from gridwatch.core.clock import Clock
from gridwatch.core.errors import ContractError
from ingest._records import (
    METER_EVENT_TYPES,
    SCADA_EVENT_TYPES,
    Decoded,
    MeterEvent,
    Reading,
    Reject,
    ScadaEvent,
)

MAX_PAYLOAD_BYTES: Final = 4 * 1024 * 1024
MAX_BATCH_ITEMS: Final = 10_000
_MAX_SEQ: Final = 2**63 - 1
# v_rms_v is stored as `real`; a physical RMS voltage on a distribution grid never nears this.
_MAX_V_RMS_V: Final = 1.0e6

ID_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ZONE_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RFC3339_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_PHASES_RE: Final = re.compile(r"[ABCN]{1,4}")

# Reason codes (metric label values). Kept in one place so dashboards can rely on them.
REJECT_CODES: Final[tuple[str, ...]] = (
    "bad_topic",
    "too_large",
    "not_utf8",
    "not_json",
    "too_deep",
    "not_object",
    "missing_field",
    "bad_type",
    "bad_value",
    "bad_ts",
    "naive_ts",
    "future_ts",
    "too_old",
    "unknown_meter",
    "unknown_device",
    "unknown_type",
    "batch_too_large",
    "store_rejected",
)


class _Invalid(ContractError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class _HasIndexes(Protocol):
    @property
    def meter_index(self) -> Mapping[str, int]: ...
    @property
    def device_index(self) -> Mapping[str, int]: ...


class KnownIds:
    """Which meter and device ids exist: the contract rejects telemetry from unknown ones."""

    def __init__(self, meter: Callable[[str], bool], device: Callable[[str], bool]) -> None:
        self.meter = meter
        self.device = device

    @classmethod
    def from_topology(cls, topology: _HasIndexes) -> KnownIds:
        """Look ids up in ``Topology.meter_index`` / ``device_index`` (live: no copy)."""
        return cls(topology.meter_index.__contains__, topology.device_index.__contains__)

    @classmethod
    def from_ids(cls, meters: Iterable[str], devices: Iterable[str] = ()) -> KnownIds:
        return cls(frozenset(meters).__contains__, frozenset(devices).__contains__)

    @classmethod
    def any_id(cls) -> KnownIds:
        """Accept every well-formed id (development, benchmarks of the raw path)."""
        return cls(_always, _always)


def _always(_id: str) -> bool:
    return True


class Topic(NamedTuple):
    kind: str  # reading | event | batch | scada
    zone: str
    source_id: str | None  # meter id, device id, or None for a batch


def parse_topic(prefix: str, topic: str) -> Topic:
    """Split a telemetry topic; raises ContractError (code ``bad_topic``) if it is not one."""
    head = prefix + "/"
    if not topic.startswith(head):
        raise _Invalid("bad_topic", "topic: not under the telemetry prefix")
    parts = topic[len(head) :].split("/")
    if not parts or not ZONE_RE.fullmatch(parts[0]):
        raise _Invalid("bad_topic", "topic: bad zone")
    zone = parts[0]
    if len(parts) == 2 and parts[1] == "batch":
        return Topic("batch", zone, None)
    if len(parts) == 4 and parts[1] in ("meters", "scada"):
        source_id = parts[2]
        if not ID_RE.fullmatch(source_id):
            what = "meter" if parts[1] == "meters" else "device"
            raise _Invalid("bad_topic", f"topic: bad {what} id")
        if parts[1] == "meters" and parts[3] in ("reading", "event"):
            return Topic(parts[3], zone, source_id)
        if parts[1] == "scada" and parts[3] == "event":
            return Topic("scada", zone, source_id)
    raise _Invalid("bad_topic", "topic: not a telemetry topic")


@lru_cache(maxsize=8192)  # a batch of interval reads usually repeats one timestamp string
def _parse_rfc3339_s(text: str) -> float:
    if len(text) > 40 or not _RFC3339_RE.fullmatch(text):
        if len(text) <= 40 and _looks_naive(text):
            raise _Invalid("naive_ts", "ts: no time zone (RFC 3339 needs Z or an offset)")
        raise _Invalid("bad_ts", "ts: not an RFC 3339 time")
    try:
        parsed = datetime.fromisoformat(text.upper())
    except ValueError:
        raise _Invalid("bad_ts", "ts: not a valid date/time") from None
    return parsed.timestamp()


_NAIVE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?")


def _looks_naive(text: str) -> bool:
    return _NAIVE_RE.fullmatch(text) is not None


def _field_error(field: str, code: str, why: str) -> _Invalid:
    return _Invalid(code, f"{field}: {why}")


class ContractDecoder:
    """Decodes one MQTT message at a time. Thread-unsafe only in its ts cache (harmless)."""

    def __init__(
        self,
        prefix: str,
        known: KnownIds,
        clock: Clock,
        *,
        max_future_skew_s: float = 300.0,
        max_age_s: float = 7 * 24 * 3600.0,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_batch_items: int = MAX_BATCH_ITEMS,
    ) -> None:
        self.prefix = prefix
        self.known = known
        self.clock = clock
        self.max_future_skew_s = max_future_skew_s
        self.max_age_s = max_age_s
        self.max_payload_bytes = max_payload_bytes
        self.max_batch_items = max_batch_items

    # -- whole messages -------------------------------------------------------------

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """Never raises for bad input: rejects come back in ``Decoded.rejects``."""
        try:
            parsed_topic = parse_topic(self.prefix, topic)
        except _Invalid as exc:
            return _rejected("unknown", exc, payload)
        kind = parsed_topic.kind
        try:
            obj = self._load(payload)
            now_s = self.clock.now_s()
            if kind == "batch":
                return self._batch(obj, now_s)
            source_id = parsed_topic.source_id
            assert source_id is not None
            if kind == "reading":
                self._check_meter(source_id)
                return Decoded(kind, [self._reading(obj, source_id, now_s, "")], [], [], [])
            if kind == "event":
                self._check_meter(source_id)
                return Decoded(kind, [], [self._meter_event(obj, source_id, now_s, "")], [], [])
            self._check_device(source_id)
            return Decoded(kind, [], [], [self._scada_event(obj, source_id, now_s)], [])
        except _Invalid as exc:
            return _rejected(kind, exc, payload)

    def _load(self, payload: bytes) -> dict[str, Any]:
        if len(payload) > self.max_payload_bytes:
            raise _Invalid(
                "too_large", f"payload: {len(payload)} bytes, more than {self.max_payload_bytes}"
            )
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise _json_error(payload, exc) from None
        if type(obj) is not dict:
            raise _Invalid("not_object", "payload: not a JSON object")
        return obj

    def _check_meter(self, meter_id: str) -> None:
        if not self.known.meter(meter_id):
            raise _Invalid("unknown_meter", f"meter: unknown id {meter_id}")

    def _check_device(self, device_id: str) -> None:
        if not self.known.device(device_id):
            raise _Invalid("unknown_device", f"device: unknown id {device_id}")

    def _batch(self, obj: dict[str, Any], now_s: float) -> Decoded:
        readings_in = obj.get("readings", [])
        events_in = obj.get("events", [])
        if type(readings_in) is not list:
            raise _field_error("readings", "bad_type", "not an array")
        if type(events_in) is not list:
            raise _field_error("events", "bad_type", "not an array")
        if "readings" not in obj and "events" not in obj:
            raise _Invalid("missing_field", "batch: neither readings nor events")
        total = len(readings_in) + len(events_in)
        if total > self.max_batch_items:
            raise _Invalid(
                "batch_too_large", f"batch: {total} items, more than {self.max_batch_items}"
            )
        readings: list[Reading] = []
        events: list[MeterEvent] = []
        rejects: list[tuple[Reject, bytes]] = []
        known_meter = self.known.meter
        for index, item in enumerate(readings_in):
            where = f"readings[{index}]."
            try:
                meter_id = _item_meter(item, where)
                if not known_meter(meter_id):
                    raise _Invalid("unknown_meter", f"{where}meter: unknown id {meter_id}")
                readings.append(self._reading(item, meter_id, now_s, where))
            except _Invalid as exc:
                rejects.append((Reject(exc.code, exc.reason), _reencode(item)))
        for index, item in enumerate(events_in):
            where = f"events[{index}]."
            try:
                meter_id = _item_meter(item, where)
                if not known_meter(meter_id):
                    raise _Invalid("unknown_meter", f"{where}meter: unknown id {meter_id}")
                events.append(self._meter_event(item, meter_id, now_s, where))
            except _Invalid as exc:
                rejects.append((Reject(exc.code, exc.reason), _reencode(item)))
        return Decoded("batch", readings, events, [], rejects)

    # -- items ----------------------------------------------------------------------

    def _ts(self, obj: dict[str, Any], now_s: float, where: str) -> float:
        value = obj.get("ts")
        kind = type(value)
        if kind is float or kind is int:
            try:
                ts_s = float(value)  # type: ignore[arg-type]
            except OverflowError:
                raise _field_error(where + "ts", "bad_ts", "number out of range") from None
            if not math.isfinite(ts_s):
                raise _field_error(where + "ts", "bad_ts", "not finite")
        elif kind is str:
            try:
                ts_s = _parse_rfc3339_s(value)
            except _Invalid as exc:
                raise _Invalid(exc.code, where + exc.reason) from None
        elif value is None and "ts" not in obj:
            raise _field_error(where + "ts", "missing_field", "missing")
        else:
            raise _field_error(where + "ts", "bad_type", "not a time (RFC 3339 string or epoch s)")
        if ts_s > now_s + self.max_future_skew_s:
            raise _field_error(where + "ts", "future_ts", f"{ts_s - now_s:.0f} s in the future")
        if ts_s < now_s - self.max_age_s:
            raise _field_error(where + "ts", "too_old", f"{now_s - ts_s:.0f} s old")
        return ts_s

    def _reading(self, obj: dict[str, Any], meter_id: str, now_s: float, where: str) -> Reading:
        ts_s = self._ts(obj, now_s, where)
        v = obj.get("v")
        if v is not None:
            v = _number(v, where + "v")
            if not 0.0 <= v <= _MAX_V_RMS_V:
                raise _field_error(where + "v", "bad_value", "out of range")
        kwh = obj.get("kwh")
        if kwh is not None:
            kwh = _number(kwh, where + "kwh")
        return Reading(meter_id, ts_s, v, kwh, _seq(obj, where))

    def _meter_event(
        self, obj: dict[str, Any], meter_id: str, now_s: float, where: str
    ) -> MeterEvent:
        kind = obj.get("type")
        if type(kind) is not str:
            code = "missing_field" if kind is None else "bad_type"
            raise _field_error(where + "type", code, "missing" if kind is None else "not a string")
        if kind not in METER_EVENT_TYPES:
            raise _field_error(where + "type", "unknown_type", f"unknown event type {kind[:32]!r}")
        ts_s = self._ts(obj, now_s, where)
        seq = _seq(obj, where)
        if kind != "ping_reply":
            return MeterEvent(meter_id, ts_s, kind, seq, None, None)
        supply_on = obj.get("on")
        if type(supply_on) is not bool:
            why = "missing (ping_reply needs on)" if supply_on is None else "not true/false"
            code = "missing_field" if supply_on is None else "bad_type"
            raise _field_error(where + "on", code, why)
        request_id = obj.get("request_id")
        if request_id is None:
            raise _field_error(where + "request_id", "missing_field", "missing (ping_reply)")
        if type(request_id) is not str or not ID_RE.fullmatch(request_id):
            raise _field_error(where + "request_id", "bad_type", "not an id string")
        return MeterEvent(meter_id, ts_s, kind, seq, supply_on, request_id)

    def _scada_event(self, obj: dict[str, Any], device_id: str, now_s: float) -> ScadaEvent:
        kind = obj.get("type")
        if type(kind) is not str:
            code = "missing_field" if kind is None else "bad_type"
            raise _field_error("type", code, "missing" if kind is None else "not a string")
        if kind not in SCADA_EVENT_TYPES:
            raise _field_error("type", "unknown_type", f"unknown SCADA event type {kind[:32]!r}")
        ts_s = self._ts(obj, now_s, "")
        phases = obj.get("phases")
        if phases is not None:
            if type(phases) is not str or not _PHASES_RE.fullmatch(phases.upper()):
                raise _field_error("phases", "bad_value", "not phases like ABC")
            phases = phases.upper()
        return ScadaEvent(device_id, ts_s, kind, phases)


def _number(value: Any, field: str) -> float:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise _field_error(field, "bad_value", "not finite")
        return float(value)
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise _field_error(field, "bad_value", "number out of range") from None
    raise _field_error(field, "bad_type", "not a number")


def _seq(obj: dict[str, Any], where: str) -> int | None:
    seq = obj.get("seq")
    if seq is None:
        return None
    if type(seq) is not int:
        raise _field_error(where + "seq", "bad_type", "not an integer")
    if not 0 <= seq <= _MAX_SEQ:
        raise _field_error(where + "seq", "bad_value", "out of range")
    return seq


def _item_meter(item: Any, where: str) -> str:
    if type(item) is not dict:
        raise _Invalid("not_object", f"{where[:-1]}: not a JSON object")
    meter_id = item.get("meter")
    if meter_id is None:
        raise _field_error(where + "meter", "missing_field", "missing")
    if type(meter_id) is not str or not ID_RE.fullmatch(meter_id):
        raise _field_error(where + "meter", "bad_type", "not a meter id")
    return meter_id


def _reencode(item: Any) -> bytes:
    try:
        return orjson.dumps(item)
    except TypeError:  # cannot happen for parsed JSON; never let a reject path raise
        return repr(item).encode()


def _json_error(payload: bytes, exc: orjson.JSONDecodeError) -> _Invalid:
    message = str(exc)
    if "depth limit" in message or "recursion" in message:
        return _Invalid("too_deep", "payload: JSON nested too deeply")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return _Invalid("not_utf8", "payload: not UTF-8")
    return _Invalid("not_json", "payload: not JSON")


def _rejected(kind: str, exc: _Invalid, payload: bytes) -> Decoded:
    return Decoded(kind, [], [], [], [(Reject(exc.code, exc.reason), payload)])
