"""Publishes a deterministic stream of readings (paho, synchronous, its own process).

Message k carries readings for consecutive (meter, ts) keys, so every reading is unique
and the consumer side can count exactly: reading i -> meter M-{i % meters}, ts start + i // meters.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, required=True, help="messages to publish")
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--zone", default="Z1")
    parser.add_argument("--qos", type=int, default=1)
    parser.add_argument("--ts-start", type=float, required=True)
    args = parser.parse_args(argv)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    started = time.perf_counter()
    infos = []
    index = 0
    for _ in range(args.count):
        if args.per_message == 1:
            meter = f"M-{index % args.meters:07d}"
            ts_s = args.ts_start + index // args.meters
            topic = f"{args.prefix}/{args.zone}/meters/{meter}/reading"
            payload = orjson.dumps({"ts": ts_s, "v": 230.0 + (index % 7), "seq": index})
            index += 1
        else:
            items = []
            for _ in range(args.per_message):
                items.append(
                    {
                        "meter": f"M-{index % args.meters:07d}",
                        "ts": args.ts_start + index // args.meters,
                        "v": 230.0 + (index % 7),
                        "kwh": 1000.0 + index * 0.01,
                    }
                )
                index += 1
            topic = f"{args.prefix}/{args.zone}/batch"
            payload = orjson.dumps({"readings": items})
        infos.append(client.publish(topic, payload, qos=args.qos))
        if len(infos) >= 5000:
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    elapsed = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    print(f"published {args.count} messages in {elapsed:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
