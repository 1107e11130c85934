"""Dead letters: what a rejected message looks like on the wire and in the database,
and logging that a flood of garbage cannot turn into a flood of log lines."""

from __future__ import annotations

import base64
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Final

import orjson

# A dead letter keeps at most this much of the payload (in the table and on the topic);
# a 4 MiB garbage message must not cost 4 MiB per copy. ``payload_bytes`` says the size.
DEAD_LETTER_MAX_PAYLOAD: Final = 64 * 1024


def dead_letter_topic(prefix: str) -> str:
    return f"{prefix}/deadletter"


def clip_payload(payload: bytes) -> bytes:
    return payload[:DEAD_LETTER_MAX_PAYLOAD]


def dead_letter_message(topic: str, reason: str, payload: bytes, received_s: float) -> bytes:
    """The contract's dead letter: {"topic","reason","payload_b64","received"} (+ additive
    ``payload_bytes``, the original size, since the payload may be clipped)."""
    return orjson.dumps(
        {
            "topic": topic,
            "reason": reason,
            "payload_b64": base64.b64encode(clip_payload(payload)).decode("ascii"),
            "received": datetime.fromtimestamp(received_s, UTC).isoformat(timespec="milliseconds"),
            "payload_bytes": len(payload),
        }
    )


class RejectLog:
    """Logs the first ``burst`` rejects of each window, then one summary per window."""

    def __init__(self, logger: logging.Logger, *, burst: int = 10, window_s: float = 10.0) -> None:
        self._log = logger
        self._burst = burst
        self._window_s = window_s
        self._window_start = time.monotonic()
        self._logged = 0
        self._suppressed: Counter[str] = Counter()

    def reject(self, topic: str, code: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._window_start >= self._window_s:
            self.flush(now)
        if self._logged < self._burst:
            self._logged += 1
            self._log.warning(
                "rejected message on %s: %s", topic[:200], reason, extra={"reason_code": code}
            )
        else:
            self._suppressed[code] += 1

    def flush(self, now: float | None = None) -> None:
        if self._suppressed:
            self._log.warning(
                "suppressed %d more rejects in the last %.0f s",
                sum(self._suppressed.values()),
                self._window_s,
                extra={"suppressed_by_code": dict(self._suppressed)},
            )
        self._suppressed.clear()
        self._logged = 0
        self._window_start = time.monotonic() if now is None else now
