"""Recordings: gzip-compressed JSON lines, one message per line, byte-identical per seed.

Line 1 is a header ``{"format": "gridwatch-sim-recording", "version": 1, "start_s": ..., ...}``;
every other line is ``{"offset_s": <publish time - start_s>, "topic": <relative to the MQTT
prefix>, "ts": <event time, epoch s>, "qos": 0|1, "payload": <the JSON text sent>}``
(``payload_b64`` instead of ``payload`` for a payload that is not UTF-8).
"""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from simulators._errors import RecordingError
from simulators._messages import SimMessage

FORMAT: Final = "gridwatch-sim-recording"
VERSION: Final = 1


@dataclass
class RecordStats:
    path: Path
    messages: int = 0
    bytes_payload: int = 0
    header: dict[str, Any] = field(default_factory=dict)


def write_recording(
    messages: Iterable[SimMessage], path: Path | str, *, start_s: float, **header: Any
) -> RecordStats:
    """Write ``messages`` (publish order) to ``path``. The gzip header carries no name or time,
    so the same messages always give the same bytes."""
    path = Path(path)
    head = {"format": FORMAT, "version": VERSION, "start_s": start_s, **header}
    stats = RecordStats(path=path, header=head)
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(orjson.dumps(head) + b"\n")
        for msg in messages:
            line: dict[str, Any] = {
                "offset_s": round(msg.publish_s - start_s, 6),
                "topic": msg.topic,
                "ts": msg.event_ts_s,
                "qos": msg.qos,
            }
            try:
                line["payload"] = msg.payload.decode("utf-8")
            except UnicodeDecodeError:
                line["payload_b64"] = base64.b64encode(msg.payload).decode("ascii")
            gz.write(orjson.dumps(line) + b"\n")
            stats.messages += 1
            stats.bytes_payload += len(msg.payload)
    return stats


class Recording:
    """A recording opened for replay: ``header`` is read at once, ``messages()`` streams."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"{self.path}: no such recording")
        lines = self._lines()
        try:
            first = next(lines)
        except StopIteration:
            raise RecordingError(f"{self.path}: empty recording (no header line)") from None
        n, raw = first
        head = self._parse(n, raw)
        if head.get("format") != FORMAT or head.get("version") != VERSION:
            raise RecordingError(f"{self.path}: line 1: not a {FORMAT} v{VERSION} header")
        start = head.get("start_s")
        if not isinstance(start, int | float) or isinstance(start, bool):
            raise RecordingError(f"{self.path}: line 1: header start_s must be a number")
        self.header: dict[str, Any] = head
        self.start_s = float(start)

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        n = 0
        try:
            with gzip.open(self.path, "rb") as gz:
                for n, raw in enumerate(gz, start=1):
                    yield n, raw
        except (OSError, EOFError, zlib.error) as exc:
            # Truncated or damaged compression: say where reading stopped.
            raise RecordingError(f"{self.path}: corrupt after line {n}: {exc}") from None

    def _parse(self, n: int, raw: bytes) -> dict[str, Any]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RecordingError(f"{self.path}: line {n}: bad JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise RecordingError(f"{self.path}: line {n}: expected a JSON object")
        return obj

    def messages(self) -> Iterator[SimMessage]:
        lines = self._lines()
        next(lines, None)  # the header
        for n, raw in lines:
            if not raw.strip():
                continue
            obj = self._parse(n, raw)
            try:
                offset = obj["offset_s"]
                topic = obj["topic"]
                ts = obj["ts"]
                qos = obj.get("qos", 1)
                if "payload" in obj:
                    payload = str(obj["payload"]).encode("utf-8")
                else:
                    payload = base64.b64decode(obj["payload_b64"], validate=True)
                if not isinstance(topic, str) or not topic or qos not in (0, 1, 2):
                    raise ValueError("topic must be a non-empty string and qos 0, 1 or 2")
                msg = SimMessage(self.start_s + float(offset), topic, payload, float(ts), int(qos))
            except (KeyError, TypeError, ValueError) as exc:
                raise RecordingError(f"{self.path}: line {n}: bad message ({exc!s})") from None
            yield msg
