"""Control API benchmark: ``python -m benchmarks.api_bench`` (prints Markdown).

Seeds a schema of its own with 1,000,000 customers/meters and 10,000 active outages, serves
the API from a separate process (one uvicorn worker, as ``gridwatch serve`` runs it), and
measures from this process over loopback:

(a) GET /api/v1/outages?active=true&limit=100 under 200 concurrent keep-alive clients:
    closed loop (each client sends its next request as soon as the answer arrives: the
    saturation case) and open loop (each client polls once a second, as dashboards do, and
    at 2 and 4 requests a second, `--rates`, to find where the p99 target stops holding);
    with the change-invalidated list cache on and off; and the same SQL through psycopg
    alone, for the part the database takes;
(b) SSE fan-out: 1,000 subscribers on /api/v1/stream/outages, one outage UPDATE committed,
    time until each subscriber has the event.

The schema is dropped at the end. ``--customers``/``--outages`` shrink it for a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from gridwatch.api import create_token
from gridwatch.store import Database, drop_schema, migrate
from gridwatch.store.outage_queries import OutageFilter, list_outages

DATABASE_URL = os.environ.get(
    "GRIDWATCH_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
LIST_PATH = "/api/v1/outages?active=true&limit=100"


# --- seeding --------------------------------------------------------------------------------


async def seed(db: Database, customers: int, outages: int) -> None:
    """Substations -> breakers -> transformers; one meter per customer; outages on
    transformers with their meters in outage_meters."""
    zones = 20
    transformers = max(outages * 2, customers // 50)
    per_zone_breakers = 10
    conn = await psycopg.AsyncConnection.connect(
        DATABASE_URL, options=f"-c search_path={db.schema}", autocommit=False
    )
    async with conn:
        async with conn.cursor() as cur:
            async with cur.copy(
                "COPY devices (device_id, parent_id, kind, zone, name) FROM STDIN"
            ) as cp:
                for z in range(zones):
                    await cp.write_row((f"S{z}", None, "substation", f"Z{z}", f"Substation {z}"))
                    for b in range(per_zone_breakers):
                        await cp.write_row(
                            (f"B{z}-{b}", f"S{z}", "breaker", f"Z{z}", f"Feeder {z}-{b}")
                        )
                for t in range(transformers):
                    z = t % zones
                    b = (t // zones) % per_zone_breakers
                    await cp.write_row((f"T{t}", f"B{z}-{b}", "transformer", f"Z{z}", f"TBA {t}"))
            buf = io.StringIO()
            for c in range(customers):
                buf.write(f"C{c}\tACC{c:08d}\tKhách hàng {c}\t+8491{c:07d}\n")
            async with cur.copy(
                "COPY customers (customer_id, account_no, name, phone_e164) FROM STDIN"
            ) as cp:
                await cp.write(buf.getvalue())
            buf = io.StringIO()
            for c in range(customers):
                t = c % transformers
                buf.write(f"M{c}\tT{t}\tC{c}\tZ{t % zones}\n")
            async with cur.copy(
                "COPY meters (meter_id, device_id, customer_id, zone) FROM STDIN"
            ) as cp:
                await cp.write(buf.getvalue())
            now_s = time.time()
            buf = io.StringIO()
            for o in range(outages):
                t = o * 2  # distinct transformers
                started = datetime.fromtimestamp(now_s - 7200 + o * 0.5, UTC).isoformat()
                state = ("predicted", "confirmed", "partially_restored")[o % 3]
                n = customers // transformers
                buf.write(f"E{o}\tT{t}\tZ{t % zones}\t{state}\tbench\t{started}\t0.9\t{n}\t{n}\n")
            async with cur.copy(
                "COPY outages (engine_key, device_id, zone, state, cause, started_at, confidence,"
                " meters_affected, customers_affected) FROM STDIN"
            ) as cp:
                await cp.write(buf.getvalue())
            await cur.execute(
                "INSERT INTO outage_meters (outage_id, meter_id, customer_id)"
                " SELECT o.outage_id, m.meter_id, m.customer_id FROM outages o"
                " JOIN meters m ON m.device_id = o.device_id"
            )
        await conn.commit()
        await conn.execute("ANALYZE")


# --- a minimal keep-alive HTTP/1.1 client (the load generator must not be the bottleneck) --


class RawClient:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self, path: str) -> int:
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {self.token}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _read(path: str) -> str:
    return Path(path).read_text()  # /proc: never blocks


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(port: int, token: str, clients: int, duration_s: float) -> dict[str, float]:
    conns = [RawClient(port, token) for _ in range(clients)]
    await asyncio.gather(*(c.connect() for c in conns))
    for c in conns[:20]:
        await c.get(LIST_PATH)  # warm
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def run(c: RawClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            if await c.get(LIST_PATH) != 200:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return _summary(latencies, elapsed, errors)


async def open_loop(
    port: int, token: str, clients: int, duration_s: float, rate_per_client_hz: float
) -> dict[str, float]:
    conns = [RawClient(port, token) for _ in range(clients)]
    await asyncio.gather(*(c.connect() for c in conns))
    for c in conns:
        await c.get(LIST_PATH)  # warm every connection, one at a time
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate_per_client_hz

    async def run(i: int, c: RawClient) -> None:
        nonlocal errors
        start = time.perf_counter() + i * interval / clients  # spread the clients out
        n = 0
        while True:
            due = start + n * interval
            if due > start + duration_s:
                return
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            # Latency from when the request was due: queueing in the client counts too.
            if await c.get(LIST_PATH) != 200:
                errors += 1
            latencies.append(time.perf_counter() - due)
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(run(i, c) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return _summary(latencies, elapsed, errors)


def _summary(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.50) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


async def sql_only(db: Database, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await list_outages(db, OutageFilter(active=True), limit=100)
        times.append(time.perf_counter() - t0)
    return {"p50_ms": pct(times, 0.5) * 1000, "p99_ms": pct(times, 0.99) * 1000}


# --- SSE fan-out ----------------------------------------------------------------------------


async def sse_fanout(db: Database, port: int, token: str, subscribers: int) -> dict[str, float]:
    async def subscribe() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            "GET /api/v1/stream/outages HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        await reader.readuntil(b"connected")
        return reader, writer

    subs = []
    for i in range(0, subscribers, 100):  # connect in waves (the accept backlog is finite)
        subs += await asyncio.gather(*(subscribe() for _ in range(min(100, subscribers - i))))
    await asyncio.sleep(1.0)
    received: list[float] = []

    async def wait_event(reader: asyncio.StreamReader) -> None:
        await reader.readuntil(b"event: outage")
        received.append(time.perf_counter())

    waiters = [asyncio.create_task(wait_event(r)) for r, _ in subs]
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE outages SET state = 'confirmed', updated_at = now()"
            " WHERE outage_id = (SELECT min(outage_id) FROM outages)"
        )
    await asyncio.wait_for(asyncio.gather(*waiters), 30)
    for _, w in subs:
        w.close()
    delays = [r - t0 for r in received]
    return {
        "subscribers": len(delays),
        "first_ms": min(delays) * 1000,
        "p50_ms": pct(delays, 0.5) * 1000,
        "p99_ms": pct(delays, 0.99) * 1000,
        "all_ms": max(delays) * 1000,
    }


# --- the server process ---------------------------------------------------------------------


def serve(schema: str, port: int, cache_s: float) -> None:
    from gridwatch import SystemClock, load_settings
    from gridwatch.api import ApiServer, ApiSettings, FlagReadiness, create_app

    async def main() -> None:
        db = await Database.open(DATABASE_URL, schema, max_size=8)
        app = create_app(
            db=db,
            readiness=FlagReadiness(broker_connected=True),
            settings=load_settings(profile="test"),
            clock=SystemClock(),
            api_settings=ApiSettings(outage_list_cache_s=cache_s, stream_subscribers_max=5000),
        )
        async with ApiServer(app, "127.0.0.1", port):
            print("READY", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())


def start_server(schema: str, port: int, cache_s: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.api_bench", "--serve", schema, str(port), str(cache_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "READY" not in line:
        proc.kill()
        raise RuntimeError("API server did not start")
    return proc


async def main(args: argparse.Namespace) -> None:
    from gridwatch.app.embedded import free_port

    schema = f"gwbench_api_{uuid.uuid4().hex[:8]}"
    db = await Database.open(DATABASE_URL, schema, create_schema=True, max_size=4)
    try:
        await migrate(db)
        t0 = time.perf_counter()
        await seed(db, args.customers, args.outages)
        seed_s = time.perf_counter() - t0
        token = await create_token(db, "viewer", "bench")
        cpu_lines = _read("/proc/cpuinfo").splitlines()
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in cpu_lines if ln.startswith("model name")),
            platform.processor(),
        )
        print("## Control API (`python -m benchmarks.api_bench`)\n")
        print(
            f"Machine: {os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; "
            f"PostgreSQL on loopback. Data: {args.customers:,} customers/meters, "
            f"{args.outages:,} active outages (seeded in {seed_s:.0f} s).\n"
        )
        sql = await sql_only(db, 200)
        print(
            "Outage list SQL alone (psycopg, first page of 100 active):"
            f" p50 {sql['p50_ms']:.2f} ms, p99 {sql['p99_ms']:.2f} ms.\n"
        )
        print(
            "| outage list, 200 clients | cache | requests | errors | req/s | p50 ms"
            " | p99 ms | max ms | load avg |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        sse: dict[str, float] = {}
        for cache_s in (0.0, 2.0):
            port = free_port()
            proc = start_server(schema, port, cache_s)
            try:
                label = "on" if cache_s else "off (single-flight only)"
                # Open loop at rising per-client rates shows the load up to which the p99
                # target holds; the closed loop shows the ceiling (saturation).
                runs: list[tuple[str, Callable[[], Awaitable[dict[str, float]]]]] = [
                    (
                        f"open loop, {rate:g} req/s each",
                        functools.partial(open_loop, port, token, args.clients, args.seconds, rate),
                    )
                    for rate in args.rates
                ]
                runs.append(
                    (
                        "closed loop (saturation)",
                        functools.partial(closed_loop, port, token, args.clients, args.seconds),
                    )
                )
                for name, run in runs:
                    r = await run()
                    # The machine is shared: the 1-minute load average says how much.
                    load = _read("/proc/loadavg").split()[0]
                    print(
                        f"| {name} | {label} | {r['requests']:.0f} | {r['errors']:.0f}"
                        f" | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f}"
                        f" | {r['max_ms']:.1f} | {load} |"
                    )
                if cache_s:
                    sse = await sse_fanout(db, port, token, args.subscribers)
            finally:
                proc.terminate()
                proc.wait(10)
        print(
            f"\nSSE fan-out of one outage UPDATE to {sse['subscribers']:.0f} subscribers"
            f" (commit -> event read by the client): first {sse['first_ms']:.0f} ms,"
            f" p50 {sse['p50_ms']:.0f} ms, p99 {sse['p99_ms']:.0f} ms, all {sse['all_ms']:.0f} ms."
        )
    finally:
        await drop_schema(db)
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", nargs=3, metavar=("SCHEMA", "PORT", "CACHE_S"))
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--outages", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--rates",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[1.0, 2.0, 4.0],
        help="open-loop requests per second per client, comma-separated (default 1,2,4)",
    )
    a = parser.parse_args()
    if a.serve:
        serve(a.serve[0], int(a.serve[1]), float(a.serve[2]))
    else:
        asyncio.run(main(a))
