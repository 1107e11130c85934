"""The live stream: outage changes reach SSE subscribers of a real uvicorn; slow
subscribers are dropped without holding up the others; tickets for EventSource."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from gridwatch.api import ApiServer, OutageFeed
from gridwatch.api._feed import FeedFull
from gridwatch.store import Database
from gridwatch.store.outages import OutageRow, save_outages
from tests.api_support import NOW_S, client_for, make_app, make_tokens, seed_network, seed_outages
from tests.polling import wait_until

_READERS: dict[int, AsyncIterator[str]] = {}


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object]]]:
    # One line iterator per response: a body can be streamed only once.
    lines = _READERS.setdefault(id(response), response.aiter_lines())
    kind = "message"
    async for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, orjson.loads(line[6:])
            kind = "message"


async def _next_outage_event(response: httpx.Response) -> dict[str, object]:
    async for kind, data in _events(response):
        if kind == "outage":
            return data
    raise AssertionError("stream ended")


async def test_outage_changes_reach_every_subscriber(db: Database) -> None:
    await seed_network(db)
    ids = await seed_outages(db)
    tokens = await make_tokens(db)
    app = make_app(db)
    async with ApiServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        feed: OutageFeed = app.state.outage_feed
        await asyncio.wait_for(feed.listening.wait(), 10)
        ticket = (
            await http.post("/api/v1/stream/tickets", headers=tokens.headers("viewer"))
        ).json()["ticket"]
        async with (
            http.stream("GET", "/api/v1/stream/outages", headers=tokens.headers("viewer")) as first,
            http.stream("GET", "/api/v1/stream/outages", params={"ticket": ticket}) as second,
        ):
            assert first.status_code == second.status_code == 200
            assert first.headers["content-type"].startswith("text/event-stream")
            # Both subscribed before the change is made.
            await wait_until(
                lambda: feed.subscriber_count == 2, interval_s=0.02, what="two stream subscribers"
            )
            # A change by the detection engine (another writer) and one by an operator.
            await save_outages(
                db,
                [
                    OutageRow(
                        "O-NEW",
                        "T2",
                        "Z1",
                        "predicted",
                        "meters",
                        NOW_S - 5,
                        None,
                        None,
                        0.5,
                        2,
                        2,
                        0,
                        0,
                        None,
                    )
                ],
            )
            got = await asyncio.wait_for(
                asyncio.gather(_next_outage_event(first), _next_outage_event(second)), 10
            )
            assert all(
                e["op"] == "insert" and e["zone"] == "Z1" and e["state"] == "predicted" for e in got
            )
            confirm = await http.post(
                f"/api/v1/outages/{ids['O-T3']}/confirm",
                json={"reason": "seen"},
                headers=tokens.headers("operator"),
            )
            assert confirm.status_code == 200
            event = await asyncio.wait_for(_next_outage_event(first), 10)
            assert event == {
                **event,
                "outage_id": ids["O-T3"],
                "state": "confirmed",
                "op": "update",
            }
        # A ticket is good once.
        async with http.stream(
            "GET", "/api/v1/stream/outages", params={"ticket": ticket}
        ) as reused:
            assert reused.status_code == 401
        # Disconnected clients are forgotten.
        await wait_until(
            lambda: feed.subscriber_count == 0, interval_s=0.02, what="no stream subscribers"
        )


async def test_other_schemas_changes_are_not_seen(db: Database, database_url: str) -> None:
    other = await Database.open(database_url, db.schema + "_x", create_schema=True, max_size=1)
    try:
        from gridwatch.store import drop_schema, migrate

        await migrate(other)
        feed = OutageFeed(db)
        sub = feed.subscribe()
        await asyncio.wait_for(feed.listening.wait(), 10)
        assert (await sub.next_event(1)).startswith(b"id: 1\nevent: resync")  # type: ignore[union-attr]
        await save_outages(
            other,
            [OutageRow("X", "T", "Z9", "predicted", "m", NOW_S, None, None, 0.5, 1, 1, 0, 0, None)],
        )
        await save_outages(
            db,
            [OutageRow("Y", "T", "Z1", "predicted", "m", NOW_S, None, None, 0.5, 1, 1, 0, 0, None)],
        )
        event = await sub.next_event(5)
        assert event is not None
        assert b'"zone":"Z1"' in event
        assert await sub.next_event(0.3) is None
        await feed.stop()
    finally:
        await drop_schema(other)
        await other.close()


async def test_slow_subscribers_are_dropped_not_waited_for(db: Database) -> None:
    feed = OutageFeed(db, queue_max=3, subscribers_max=2)
    fast, slow = feed.subscribe(), feed.subscribe()
    try:
        with pytest.raises(FeedFull, match="2 live streams"):
            feed.subscribe()
        for i in range(3):
            feed.publish("outage", {"outage_id": i})
            assert await fast.next_event(1) is not None  # the fast one keeps up
        feed.publish("outage", {"outage_id": 99})  # slow's queue (3) is full: dropped
        assert slow.dropped
        assert not fast.dropped
        assert feed.subscriber_count == 1
        assert feed.dropped_total == 1
        assert await fast.next_event(1) is not None
        # The dropped one still drains what it had, then learns it was dropped.
        drained = [await slow.next_event(0.1) for _ in range(4)]
        assert [d is not None for d in drained] == [True, True, True, False]
    finally:
        await feed.stop()


async def test_dropped_stream_tells_the_client(db: Database) -> None:
    await seed_network(db)
    tokens = await make_tokens(db)
    app = make_app(db, stream_queue_max=2, stream_heartbeat_s=0.2)
    async with ApiServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        feed: OutageFeed = app.state.outage_feed
        async with http.stream(
            "GET", "/api/v1/stream/outages", headers=tokens.headers("viewer")
        ) as response:
            await wait_until(
                lambda: feed.subscriber_count == 1, interval_s=0.02, what="the stream subscriber"
            )
            for i in range(10):  # the client is not reading: it falls behind
                feed.publish("outage", {"outage_id": i})
            kinds = [kind async for kind, _ in _events(response)]
    assert kinds[-1] == "dropped"
    _ = client_for


async def test_cached_outage_list_follows_changes(db: Database) -> None:
    await seed_network(db)
    ids = await seed_outages(db)
    tokens = await make_tokens(db)
    app = make_app(db, outage_list_cache_s=60)
    h = tokens.headers("viewer")
    async with ApiServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        feed: OutageFeed = app.state.outage_feed
        await asyncio.wait_for(feed.listening.wait(), 10)

        async def states() -> dict[int, str]:
            page = (await http.get("/api/v1/outages", params={"active": "true"}, headers=h)).json()
            return {i["outage_id"]: i["state"] for i in page["items"]}

        assert (await states())[ids["O-T3"]] == "predicted"
        generation = feed.generation
        # Another writer (the detection engine) changes the outage behind the API's back.
        await save_outages(
            db,
            [
                OutageRow(
                    "O-T3",
                    "T3",
                    "Z1",
                    "confirmed",
                    "meters",
                    NOW_S - 600,
                    NOW_S,
                    None,
                    0.9,
                    1,
                    1,
                    0,
                    0,
                    None,
                )
            ],
        )
        await wait_until(
            lambda: feed.generation > generation,
            interval_s=0.01,
            what="the outage feed to see the change",
        )
        assert (await states())[ids["O-T3"]] == "confirmed"


async def test_concurrent_misses_build_once() -> None:
    from gridwatch.api._response_cache import ResponseCache

    cache = ResponseCache(60)
    builds = 0

    async def build() -> bytes:
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.05)
        return b"body"

    bodies = await asyncio.gather(*(cache.get_or_build("k", 1, build) for _ in range(50)))
    assert bodies == [b"body"] * 50
    assert builds == 1
    assert await cache.get_or_build("k", 1, build) == b"body"
    assert builds == 1
    assert await cache.get_or_build("k", 2, build) == b"body"  # a change: built again
    assert builds == 2


async def test_a_revoked_token_ends_its_stream_and_voids_its_tickets(db: Database) -> None:
    from gridwatch.store.auth import api_tokens_matching, revoke_api_token

    await seed_network(db)
    tokens = await make_tokens(db)
    app = make_app(db, token_cache_s=0.3, stream_heartbeat_s=5.0)
    (viewer,) = await api_tokens_matching(db, "viewer one")
    async with ApiServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        ticket = (
            await http.post("/api/v1/stream/tickets", headers=tokens.headers("viewer"))
        ).json()["ticket"]
        async with http.stream(
            "GET", "/api/v1/stream/outages", headers=tokens.headers("viewer")
        ) as response:
            assert response.status_code == 200
            assert await revoke_api_token(db, viewer.token_id)
            started = asyncio.get_running_loop().time()
            # Idle stream (heartbeat 5 s): the re-check, not a heartbeat, must end it.
            kinds = await asyncio.wait_for(_collect_kinds(response), timeout=4.0)
            waited_s = asyncio.get_running_loop().time() - started
        assert kinds == ["revoked"]
        assert waited_s < 2.0
        refused = await http.get("/api/v1/stream/outages", params={"ticket": ticket})
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]


async def _collect_kinds(response: httpx.Response) -> list[str]:
    return [kind async for kind, _ in _events(response)]
