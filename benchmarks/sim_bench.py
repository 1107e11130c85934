"""Simulator throughput: a 1,000,000-meter city, generation alone and with MQTT publishing.

    python -m benchmarks.sim_bench [--meters-scale 1.0] [--hours 1] [--mqtt mqtt://127.0.0.1:1883]

Prints the figures docs/benchmarks/simulators.md quotes. Publishing goes to a unique topic
prefix nobody subscribes to (the broker still parses and routes every message).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
import uuid

import aiomqtt

from simulators import AmiParams, Storm, WorldParams, generate_grid, publish_stream
from simulators._ami import TelemetryGenerator
from simulators._messages import SimMessage, parse_time
from simulators._world import simulate_world


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters-scale", type=float, default=1.0)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--mqtt", default="mqtt://127.0.0.1:1883")
    args = ap.parse_args()
    per_tx = max(1, round(10 * args.meters_scale))

    t0 = time.perf_counter()
    grid = generate_grid(
        1,
        zones=4,
        substations=5,
        feeders=10,
        laterals=25,
        reclosers=2,
        transformers_per_lateral=20,
        meters_per_transformer=per_tx,
    )
    t_grid = time.perf_counter() - t0
    n_m = len(grid.topology.meters)
    print(
        f"grid: {n_m} meters, {len(grid.topology.devices)} devices, {len(grid.dcu_ids)} DCUs "
        f"in {t_grid:.2f} s"
    )

    start = parse_time("2026-11-23T08:00:00Z")
    dur = args.hours * 3600.0
    storm = Storm(zone="Z01", at_s=0.0, duration_s=dur, factor=200.0, level=2, last_gasp_p=0.5)
    t0 = time.perf_counter()
    world = simulate_world(
        grid, WorldParams(storms=(storm,)), start_s=start, duration_s=dur, seed=1
    )
    t_world = time.perf_counter() - t0
    print(
        f"world: {len(world.outages)} interruptions, {world.tr_t.size} meter transitions "
        f"in {t_world:.2f} s"
    )

    ami = AmiParams(direct_fraction=0.01, comm_silent_fraction=0.005)
    gen = TelemetryGenerator(grid, world, ami, seed=1)
    t0 = time.perf_counter()
    msgs: list[SimMessage] = list(gen.messages())
    t_gen = time.perf_counter() - t0
    c = gen.counts
    items = c.readings + c.last_gasps + c.power_restores + c.scada
    print(
        f"generation alone: {len(msgs)} messages ({items} readings+events, "
        f"{sum(len(m.payload) for m in msgs) / 1e6:.0f} MB) for {args.hours:g} h in {t_gen:.2f} s"
        f" = {dur / t_gen:.0f}x real time, {items / t_gen:,.0f} items/s"
    )

    async def publish(fast_msgs: list[SimMessage], speed: float) -> tuple[float, float, float]:
        prefix = f"gwbench/{uuid.uuid4().hex[:8]}/v1"
        stats = await publish_stream(fast_msgs, args.mqtt, speed=speed, prefix=prefix)
        return stats.wall_s, stats.achieved_speed, stats.max_lag_s

    async def raw(fast_msgs: list[SimMessage]) -> float:
        prefix = f"gwbench/{uuid.uuid4().hex[:8]}/v1"
        t = time.perf_counter()
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            for m in fast_msgs:
                await client.publish(f"{prefix}/{m.topic}", m.payload, qos=m.qos)
        return time.perf_counter() - t

    wall, speed, _ = asyncio.run(publish(msgs, math.inf))
    print(
        f"publish (ours, as fast as possible, QoS 1, pre-generated): {len(msgs)} msgs in "
        f"{wall:.2f} s = {speed:.0f}x real time, {len(msgs) / wall:,.0f} msg/s"
    )
    t_raw = asyncio.run(raw(msgs))
    print(
        f"publish (raw aiomqtt, sequential awaits, QoS 1): {len(msgs)} msgs in {t_raw:.2f} s "
        f"= {dur / t_raw:.0f}x real time; ours/raw time ratio {wall / t_raw:.2f}"
    )

    # Generation and publishing together, as `gridwatch simulate` runs them.
    gen2 = TelemetryGenerator(grid, world, ami, seed=1)
    wall, speed, _ = asyncio.run(publish(gen2.messages(), math.inf))  # type: ignore[arg-type]
    print(
        f"generate+publish streaming, as fast as possible: {dur:.0f} s of city in {wall:.2f} s = "
        f"{speed:.0f}x real time"
    )
    gen3 = TelemetryGenerator(grid, world, ami, seed=1)
    wall, speed, lag = asyncio.run(publish(gen3.messages(), 60.0))  # type: ignore[arg-type]
    print(f"generate+publish paced at 60x: {wall:.1f} s wall = {speed:.1f}x, max lag {lag:.2f} s")


if __name__ == "__main__":
    main()
