"""Replay a simulation through the detection runner in-process, in event time.

The same decoder (the contract) and the same runner as the live service, without the
broker: messages are grouped into commits of ``commit_s`` event seconds (standing in for
ingest's flush), the clock steps with them, and pings are answered by the simulator as
the contract's head-end would. A 12-hour storm replays in seconds, so accuracy can be
measured on whole scenarios; the MQTT path itself is covered by the end-to-end test.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from gridwatch.core.clock import ManualClock
from gridwatch.detection import DetectionRunner, OutgoingPing
from ingest import CommittedBatch, ContractDecoder, KnownIds, MeterEvent


class _Message(Protocol):
    @property
    def publish_s(self) -> float: ...
    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...


class PingAnswerer(Protocol):
    def answer_ping(self, meter_id: str, t_s: float) -> bool | None: ...


@dataclass
class LoopbackPings:
    """A ``PingSender`` that answers at once through ``answerer`` (the simulator): replies
    come back as ping_reply events in the next commit, one millisecond after the ping."""

    answerer: PingAnswerer
    sent: int = 0
    answered: int = 0
    replies: list[MeterEvent] = field(default_factory=list)

    def send(self, pings: list[OutgoingPing]) -> int:
        for p in pings:
            self.sent += 1
            meter_id = p.topic.rsplit("/", 2)[-2]
            body = orjson.loads(p.payload)
            ts = _parse_ts(body["ts"])
            on = self.answerer.answer_ping(meter_id, ts)
            if on is None:
                continue  # unreachable meter: never answers
            self.answered += 1
            self.replies.append(
                MeterEvent(meter_id, ts + 0.001, "ping_reply", None, on, str(body["request_id"]))
            )
        return 0

    async def run(self) -> None:  # pragma: no cover - nothing to run in-process
        return None

    def take(self) -> list[MeterEvent]:
        out, self.replies = self.replies, []
        return out


def _parse_ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class ReplayStats:
    messages: int = 0
    commits: int = 0
    rejected_messages: int = 0


async def replay_through_runner(
    messages: Iterable[_Message],
    runner: DetectionRunner,
    clock: ManualClock,
    *,
    prefix: str = "gridwatch/v1",
    known: KnownIds | None = None,
    commit_s: float = 1.0,
    pings: LoopbackPings | None = None,
    until_s: float | None = None,
    after_commit: Callable[[float], Awaitable[None]] | None = None,
) -> ReplayStats:
    """Feed ``messages`` (publish-time order) to ``runner`` in commits of ``commit_s``
    event seconds, advancing ``clock``; then keep ticking to ``until_s``. ``after_commit``
    (event time) runs after every commit: the service's other tasks (ETR, notices) there."""
    if not (math.isfinite(commit_s) and commit_s > 0):
        raise ValueError("commit_s must be a positive finite number")
    decoder = ContractDecoder(prefix, known or KnownIds.any_id(), clock)
    stats = ReplayStats()
    window_end: float | None = None
    batch = CommittedBatch([], [], [])

    async def commit(at_s: float) -> None:
        nonlocal batch
        clock.set(max(clock.now_s(), at_s))
        if pings is not None:
            batch.meter_events.extend(pings.take())
        await runner.step([batch])
        stats.commits += 1
        if after_commit is not None:
            await after_commit(clock.now_s())
        batch = CommittedBatch([], [], [])

    for msg in messages:
        if window_end is None:
            window_end = msg.publish_s + commit_s
            clock.set(msg.publish_s)
        while msg.publish_s >= window_end:
            await commit(window_end)
            window_end += commit_s
        decoded = decoder.decode(f"{prefix}/{msg.topic}", msg.payload)
        stats.messages += 1
        stats.rejected_messages += bool(decoded.rejects)
        batch.readings.extend(decoded.readings)
        batch.meter_events.extend(decoded.meter_events)
        batch.scada_events.extend(decoded.scada_events)
    if window_end is not None:
        await commit(window_end)
        t = window_end
        while until_s is not None and t < until_s:
            t = min(t + commit_s, until_s)
            await commit(t)
    return stats
