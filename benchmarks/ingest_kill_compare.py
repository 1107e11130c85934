"""kill -9 comparison: ``python -m benchmarks.ingest_kill_compare``.

For each consumer (gridwatch: ack after the write; naive: aiomqtt's ack on receipt):
publish a backlog of N QoS 1 readings to its persistent session, start it, SIGKILL it
once the first rows are stored, restart it, and count what reached PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks.ingest_bench import DATABASE_URL, count_readings, open_db
from benchmarks.ingest_support import PrivateMosquitto, publish_readings_process
from gridwatch.store import drop_schema

REPO = Path(__file__).resolve().parent.parent
COMMANDS = {
    "gridwatch (ack after write)": ["-m", "gridwatch.app.ingest_process", "--any-id"],
    "naive aiomqtt (ack on receipt)": ["-m", "benchmarks.ingest_naive_consumer"],
}


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    while b"ingest subscribed" not in proc.stderr.readline():
        if proc.poll() is not None:
            raise RuntimeError("consumer exited")
    return proc


async def scenario(broker: PrivateMosquitto, args: list[str], n: int) -> tuple[int, int]:
    db = await open_db()
    prefix = f"gwkill/{uuid.uuid4().hex[:8]}/v1"
    env = {
        **os.environ,
        "GRIDWATCH_DATABASE_URL": DATABASE_URL,
        "GRIDWATCH_DATABASE_SCHEMA": db.schema,
        "GRIDWATCH_MQTT_URL": broker.url,
        "GRIDWATCH_MQTT_PREFIX": prefix,
        "GRIDWATCH_MQTT_CLIENT_ID": f"gwkill-{uuid.uuid4().hex[:8]}",
        "GRIDWATCH_MQTT_SESSION_EXPIRY_S": "600",
        "GRIDWATCH_INGEST_BATCH_MAX": "100",
        "GRIDWATCH_LOG_FORMAT": "text",
    }
    try:
        first = start(args, env)
        first.terminate()
        first.wait(20)
        pub = publish_readings_process(broker.port, prefix, n, ts_start_s=time.time() - 3600)
        pub.wait(120)
        second = start(args, env)
        while (at_kill := await count_readings(db)) == 0:  # noqa: ASYNC110 - polling the DB
            await asyncio.sleep(0.002)
        second.kill()
        second.wait(20)
        third = start(args, env)
        stable_since, last = time.monotonic(), -1
        while time.monotonic() - stable_since < 3:  # until the count stops moving for 3 s
            got = await count_readings(db)
            if got != last:
                stable_since, last = time.monotonic(), got
            await asyncio.sleep(0.1)
        third.terminate()
        third.wait(20)
        return at_kill, last
    finally:
        await drop_schema(db)
        await db.close()


async def main(n: int) -> None:
    with PrivateMosquitto() as broker:
        for name, args in COMMANDS.items():
            at_kill, final = await scenario(broker, args, n)
            print(
                f"{name}: {n} published, {at_kill} stored at the kill, {final} stored in the end,"
                f" lost {n - final} ({(n - final) / n:.0%})"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    asyncio.run(main(parser.parse_args().messages))
