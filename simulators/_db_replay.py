"""Replay telemetry stored in the database (readings, meter_events, scada_events) as messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from simulators._messages import SimMessage, ms_of, rfc3339_ms


def message_from_row(row: dict[str, Any]) -> SimMessage:
    ts_s = row["ts"].timestamp()
    ts = rfc3339_ms(ms_of(ts_s))
    what = row["what"]
    body: dict[str, Any]
    if what == "reading":
        body = {"ts": ts, "v": row["v_rms_v"]}
        if row.get("energy_kwh") is not None:
            body["kwh"] = row["energy_kwh"]
        if row.get("seq") is not None:
            body["seq"] = row["seq"]
        topic = f"{row['zone']}/meters/{row['id']}/reading"
    elif what == "event":
        body = {"ts": ts, "type": row["kind"]}
        if row.get("seq") is not None:
            body["seq"] = row["seq"]
        if row["kind"] == "ping_reply":
            body["on"] = bool(row.get("supply_on"))
            body["request_id"] = row.get("request_id") or "replay"
        topic = f"{row['zone']}/meters/{row['id']}/event"
    else:
        body = {"ts": ts, "type": row["kind"]}
        if row.get("phases"):
            body["phases"] = row["phases"]
        topic = f"{row['zone']}/scada/{row['id']}/event"
    return SimMessage(ts_s, topic, orjson.dumps(body), ts_s)


async def messages_from_db(db: Any, from_s: float, to_s: float) -> AsyncIterator[SimMessage]:
    """Stored telemetry in ``[from_s, to_s)`` in event-time order (``db``: a gridwatch
    ``Database``). Published at event time: the original delivery delays are not stored."""
    from gridwatch.store.telemetry import stream_telemetry

    async for row in stream_telemetry(db, from_s, to_s):
        yield message_from_row(row)
