"""The telemetry contract's decoder: every malformed class is rejected with a reason and a
code; valid input becomes typed records. Pure (no broker, no database)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.core.clock import ManualClock
from ingest import REJECT_CODES, ContractDecoder, KnownIds, MeterEvent, Reading, ScadaEvent

NOW_S = 1_795_421_700.0  # 2026-11-23T08:15:00Z
P = "gridwatch/v1"
R = f"{P}/Z1/meters/M-1/reading"
E = f"{P}/Z1/meters/M-1/event"
B = f"{P}/Z1/batch"
S = f"{P}/Z1/scada/REC-7/event"


@pytest.fixture
def decoder() -> ContractDecoder:
    known = KnownIds.from_ids([f"M-{i}" for i in range(10)], ["REC-7"])
    return ContractDecoder(P, known, ManualClock(NOW_S), max_future_skew_s=300, max_age_s=86400)


def one_reject(decoder: ContractDecoder, topic: str, payload: bytes) -> tuple[str, str]:
    decoded = decoder.decode(topic, payload)
    assert decoded.record_count == 0
    assert len(decoded.rejects) == 1
    reject, raw = decoded.rejects[0]
    assert reject.code in REJECT_CODES
    assert raw == payload
    return reject.code, reject.reason


def test_valid_reading_event_and_scada(decoder: ContractDecoder) -> None:
    reading = decoder.decode(R, b'{"ts":"2026-11-23T08:10:00Z","v":229.8,"kwh":18234.5,"seq":4}')
    assert reading.readings == [Reading("M-1", NOW_S - 300, 229.8, 18234.5, 4)]
    assert reading.rejects == []
    event = decoder.decode(E, b'{"ts":"2026-11-23T15:15:03+07:00","type":"last_gasp","x":1}')
    assert event.meter_events == [MeterEvent("M-1", NOW_S + 3, "last_gasp", None, None, None)]
    ping = decoder.decode(E, b'{"ts":1795421700,"type":"ping_reply","on":false,"request_id":"a1"}')
    assert ping.meter_events == [MeterEvent("M-1", NOW_S, "ping_reply", None, False, "a1")]
    scada = decoder.decode(S, b'{"ts":"2026-11-23T08:15:01.250Z","type":"trip","phases":"abc"}')
    assert scada.scada_events == [ScadaEvent("REC-7", NOW_S + 1.25, "trip", "ABC")]


def test_null_v_and_missing_optional_fields(decoder: ContractDecoder) -> None:
    decoded = decoder.decode(R, b'{"ts": 1795421600.5, "v": null}')
    assert decoded.readings == [Reading("M-1", 1795421600.5, None, None, None)]


@pytest.mark.parametrize(
    ("topic", "payload", "code", "field"),
    [
        (R, b"not json", "not_json", "payload"),
        (R, b'{"ts": 1795421700, "v": "\xff\xfe"}', "not_utf8", "payload"),
        (R, b"\xef\xbb\xbf{}", "not_json", "payload"),
        (R, b"[1, 2]", "not_object", "payload"),
        (R, b'"just a string"', "not_object", "payload"),
        (R, b"[" * 5000 + b"]" * 5000, "too_deep", "payload"),
        (R, b'{"v": 230}', "missing_field", "ts"),
        (R, b'{"ts": null, "v": 230}', "bad_type", "ts"),
        (R, b'{"ts": true, "v": 230}', "bad_type", "ts"),
        (R, b'{"ts": [1], "v": 230}', "bad_type", "ts"),
        (R, b'{"ts": "yesterday", "v": 230}', "bad_ts", "ts"),
        (R, b'{"ts": "2026-11-23T08:15:00", "v": 230}', "naive_ts", "ts"),
        (R, b'{"ts": "2026-11-23 08:15", "v": 230}', "naive_ts", "ts"),
        (R, b'{"ts": "2026-02-30T08:15:00Z", "v": 230}', "bad_ts", "ts"),
        (R, b'{"ts": "2026-11-23T08:15:60Z", "v": 230}', "bad_ts", "ts"),
        (R, b'{"ts": 1e400, "v": 230}', "not_json", "payload"),
        (R, b'{"ts": 123456789012345678901234567890, "v": 230}', "future_ts", "ts"),
        (R, b'{"ts": "2026-11-23T09:00:00Z", "v": 230}', "future_ts", "ts"),
        (R, b'{"ts": 1795000000, "v": 230}', "too_old", "ts"),
        (R, b'{"ts": -5, "v": 230}', "too_old", "ts"),
        (R, b'{"ts": 1795421700, "v": "230"}', "bad_type", "v"),
        (R, b'{"ts": 1795421700, "v": true}', "bad_type", "v"),
        (R, b'{"ts": 1795421700, "v": -3}', "bad_value", "v"),
        (R, b'{"ts": 1795421700, "v": 1e300}', "bad_value", "v"),
        (R, b'{"ts": 1795421700, "v": 230, "kwh": "lots"}', "bad_type", "kwh"),
        (R, b'{"ts": 1795421700, "v": 230, "seq": 1.5}', "bad_type", "seq"),
        (R, b'{"ts": 1795421700, "v": 230, "seq": -1}', "bad_value", "seq"),
        (R, b'{"ts": 1795421700, "v": 230, "seq": 18446744073709551615}', "bad_value", "seq"),
        (f"{P}/Z1/meters/M-404/reading", b'{"ts": 1795421700}', "unknown_meter", "meter"),
        (
            f"{P}/Z1/scada/SW-404/event",
            b'{"ts": 1795421700, "type": "open"}',
            "unknown_device",
            "device",
        ),
        (E, b'{"ts": 1795421700, "type": "explode"}', "unknown_type", "type"),
        (E, b'{"ts": 1795421700}', "missing_field", "type"),
        (E, b'{"ts": 1795421700, "type": 7}', "bad_type", "type"),
        (E, b'{"ts": 1795421700, "type": "ping_reply"}', "missing_field", "on"),
        (
            E,
            b'{"ts": 1795421700, "type": "ping_reply", "on": 1, "request_id": "a"}',
            "bad_type",
            "on",
        ),
        (E, b'{"ts": 1795421700, "type": "ping_reply", "on": true}', "missing_field", "request_id"),
        (
            E,
            b'{"ts": 1795421700, "type": "ping_reply", "on": true, "request_id": 5}',
            "bad_type",
            "request_id",
        ),
        (S, b'{"ts": 1795421700, "type": "last_gasp"}', "unknown_type", "type"),
        (S, b'{"ts": 1795421700, "type": "trip", "phases": "XYZ"}', "bad_value", "phases"),
        (B, b'{"readings": {"meter": "M-1"}}', "bad_type", "readings"),
        (B, b'{"other": []}', "missing_field", "batch"),
        (f"{P}/Z1/meters/bad id!/reading", b"{}", "bad_topic", "topic"),
        (f"{P}/Z 1/batch", b"{}", "bad_topic", "topic"),
        (f"{P}/Z1/meters/M-1/ping", b"{}", "bad_topic", "topic"),
        ("elsewhere/Z1/batch", b"{}", "bad_topic", "topic"),
        (f"{P}/Z1/meters/{'x' * 65}/reading", b"{}", "bad_topic", "topic"),
    ],
)
def test_malformed_messages_are_rejected_with_code_and_field(
    decoder: ContractDecoder, topic: str, payload: bytes, code: str, field: str
) -> None:
    got_code, reason = one_reject(decoder, topic, payload)
    assert got_code == code, reason
    assert reason.startswith(field), reason


def test_oversized_payload_rejected_before_parsing(decoder: ContractDecoder) -> None:
    payload = b'{"pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    code, reason = one_reject(decoder, R, payload)
    assert code == "too_large"
    assert "bytes" in reason


def test_oversized_batch_rejected_whole(decoder: ContractDecoder) -> None:
    items = [{"meter": "M-1", "ts": NOW_S - i, "v": 230.0} for i in range(10_001)]
    code, reason = one_reject(decoder, B, orjson.dumps({"readings": items}))
    assert code == "batch_too_large"
    assert "10001" in reason


def test_batch_of_exactly_10000_items_is_accepted(decoder: ContractDecoder) -> None:
    items = [{"meter": "M-1", "ts": NOW_S - i, "v": 230.0} for i in range(9_999)]
    events = [{"meter": "M-2", "ts": NOW_S, "type": "power_restore"}]
    decoded = decoder.decode(B, orjson.dumps({"readings": items, "events": events}))
    assert len(decoded.readings) == 9_999
    assert len(decoded.meter_events) == 1
    assert decoded.rejects == []


def test_batch_bad_items_rejected_alone(decoder: ContractDecoder) -> None:
    payload = orjson.dumps(
        {
            "readings": [
                {"meter": "M-1", "ts": NOW_S, "v": 230.0},
                {"meter": "M-404", "ts": NOW_S, "v": 230.0},
                {"meter": "M-2", "ts": "2026-11-23T08:15:00", "v": 230.0},
                "not an object",
                {"ts": NOW_S},
                {"meter": "M-3", "ts": NOW_S - 1, "v": None, "unknown": {"deep": [1]}},
            ],
            "events": [
                {"meter": "M-4", "ts": NOW_S, "type": "last_gasp", "seq": 9},
                {"meter": "M-4", "ts": NOW_S, "type": "nope"},
            ],
        }
    )
    decoded = decoder.decode(B, payload)
    assert [r.meter_id for r in decoded.readings] == ["M-1", "M-3"]
    assert decoded.meter_events == [MeterEvent("M-4", NOW_S, "last_gasp", 9, None, None)]
    codes = [(reject.code, reject.reason.split(":")[0]) for reject, _ in decoded.rejects]
    assert codes == [
        ("unknown_meter", "readings[1].meter"),
        ("naive_ts", "readings[2].ts"),
        ("not_object", "readings[3]"),
        ("missing_field", "readings[4].meter"),
        ("unknown_type", "events[1].type"),
    ]
    # the dead letter of a batch item carries that item, not the whole batch
    assert orjson.loads(decoded.rejects[0][1]) == {"meter": "M-404", "ts": NOW_S, "v": 230.0}


def test_topology_lookup_from_indexes() -> None:
    class Topo:
        def __init__(self) -> None:
            self.meter_index = {"M-1": 0}
            self.device_index = {"BRK-1": 0}

    known = KnownIds.from_topology(Topo())
    assert known.meter("M-1")
    assert not known.meter("BRK-1")
    assert known.device("BRK-1")


def test_future_skew_is_configurable() -> None:
    decoder = ContractDecoder(P, KnownIds.any_id(), ManualClock(NOW_S), max_future_skew_s=10)
    assert decoder.decode(R, orjson.dumps({"ts": NOW_S + 9})).readings
    assert decoder.decode(R, orjson.dumps({"ts": NOW_S + 11})).rejects[0][0].code == "future_ts"


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    decoder = ContractDecoder(P, KnownIds.any_id(), ManualClock(NOW_S))
    for topic in (R, E, B, S):
        decoded = decoder.decode(topic, payload)
        assert decoded.record_count + len(decoded.rejects) >= 1


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    obj=st.dictionaries(
        st.sampled_from(
            [
                "ts",
                "v",
                "kwh",
                "seq",
                "type",
                "on",
                "request_id",
                "meter",
                "readings",
                "events",
                "phases",
            ]
        ),
        json_values,
    )
)
def test_arbitrary_json_objects_never_raise(obj: dict[str, object]) -> None:
    decoder = ContractDecoder(P, KnownIds.any_id(), ManualClock(NOW_S))
    payload = json.dumps(obj).encode()  # stdlib: also writes integers beyond 64 bits
    for topic in (R, E, B, S):
        decoded = decoder.decode(topic, payload)
        for reject, _ in decoded.rejects:
            assert reject.code in REJECT_CODES
