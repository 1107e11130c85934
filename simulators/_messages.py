"""One simulated MQTT message, and the time formats the contract allows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class SimMessage:
    """``topic`` is relative to the MQTT prefix (``Z01/batch``), so one recording can be replayed
    under any prefix. ``publish_s`` is when the simulated world sends it (event time plus
    delivery delay); ``event_ts_s`` the earliest ``ts`` inside the payload."""

    publish_s: float
    topic: str
    payload: bytes
    event_ts_s: float
    qos: int = 1


def ms_of(ts_s: float) -> int:
    return round(ts_s * 1000.0)


def epoch_ms_text(ms: int) -> str:
    """Seconds since the epoch with millisecond precision, as JSON number text."""
    sec, frac = divmod(ms, 1000)
    return f"{sec}.{frac:03d}" if frac else str(sec)


def rfc3339_ms(ms: int) -> str:
    sec, frac = divmod(ms, 1000)
    return f"{datetime.fromtimestamp(sec, UTC):%Y-%m-%dT%H:%M:%S}.{frac:03d}Z"


def rfc3339_s(ts_s: float) -> str:
    return f"{datetime.fromtimestamp(ts_s, UTC):%Y-%m-%dT%H:%M:%S}Z"


def parse_time(text: str) -> float:
    """An RFC 3339 time with a zone, as seconds since the epoch."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone")
    return value.timestamp()
