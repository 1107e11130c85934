"""The control API in-process (httpx ASGITransport) over the real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.types import Message, Scope

from gridwatch import ManualClock, load_settings
from gridwatch.api import DEFAULT_MAX_BODY_BYTES, FlagReadiness, create_app, create_token
from gridwatch.app.embedded import free_port
from gridwatch.store import (
    Database,
    ensure_partitions,
    insert_dead_letter,
    migrate,
    write_telemetry,
)
from tests.polling import wait_until

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


class TcpProxy:
    """A loopback proxy a test can cut: the database "going away" for real (connections
    reset, new ones refused) without touching the shared server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


def _echo_router() -> APIRouter:
    """A body-reading route mounted through create_app's extension point."""
    router = APIRouter()

    @router.post("/echo-size")
    async def echo_size(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return router


@pytest.fixture
def readiness() -> FlagReadiness:
    return FlagReadiness(broker_connected=True)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW.timestamp())


@pytest.fixture
def app(db: Database, readiness: FlagReadiness, clock: ManualClock) -> FastAPI:
    return create_app(
        db=db,
        readiness=readiness,
        settings=load_settings(profile="test"),
        clock=clock,
        routers=[_echo_router()],
    )


@pytest.fixture
async def client(app: FastAPI, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    # /api/v1 needs a token (tests/api/test_api_authz.py checks that); a viewer's is enough here.
    token = await create_token(db, "viewer", "test_api_app")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as http:
        yield http


def _field_names(body: dict[str, object]) -> set[str]:
    fields = body["fields"]
    assert isinstance(fields, list)
    return {f["field"] for f in fields}


# -- health ----------------------------------------------------------------------------------


async def test_healthz_needs_nothing(client: httpx.AsyncClient, readiness: FlagReadiness) -> None:
    readiness.set_broker_connected(False)
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_ok_when_database_and_broker_are(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "database": "ok", "broker": "connected", "tasks": {}}


async def test_readyz_503_names_the_broker(
    client: httpx.AsyncClient, readiness: FlagReadiness
) -> None:
    readiness.set_broker_connected(False)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "database": "ok",
        "broker": "disconnected",
        "tasks": {},
    }


async def test_database_going_away_and_back(database_url: str, schema_name: str) -> None:
    """readyz says which part is down, data endpoints answer 503 JSON, and both recover."""
    target = urlparse(database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    via_proxy = target._replace(netloc=f"{target.username or 'postgres'}@127.0.0.1:{proxy.port}")
    db = await Database.open(via_proxy.geturl(), schema_name, create_schema=True, timeout_s=3)
    try:
        await migrate(db)
        app = create_app(
            db=db,
            readiness=FlagReadiness(broker_connected=True),
            settings=load_settings(profile="test"),
        )
        token = await create_token(db, "viewer", "test_api_app")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            assert (await http.get("/readyz")).status_code == 200
            await proxy.cut()
            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.json() == {
                "ready": False,
                "database": "unreachable",
                "broker": "connected",
                "tasks": {},
            }
            summary = await http.get("/api/v1/telemetry/summary")
            assert summary.status_code == 503
            assert summary.json()["error"] == "database_unavailable"
            assert (await http.get("/healthz")).status_code == 200
            await proxy.start()

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            # The pool reconnects in the background.
            await wait_until(
                ready, interval_s=0.2, what="readyz to recover after the database came back"
            )
            assert (await http.get("/api/v1/telemetry/summary")).status_code == 200
    finally:
        await proxy.cut()
        direct = await Database.open(database_url, schema_name)
        with contextlib.suppress(Exception):
            from gridwatch.store import drop_schema

            await drop_schema(direct)
        await direct.close()
        await db.close()


async def test_metrics_is_prometheus_text_with_api_and_ingest_series(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for series in (
        "gridwatch_mqtt_messages_in_total",
        "gridwatch_mqtt_messages_rejected_total",
        "gridwatch_batch_write_seconds_bucket",
        "gridwatch_ingest_queue_depth",
        'gridwatch_api_requests_total{method="GET",route="/healthz",status="200"}',
    ):
        assert series in text, series


async def test_metrics_label_routes_by_template_not_raw_path(client: httpx.AsyncClient) -> None:
    await client.get("/no/such/path/12345")
    text = (await client.get("/metrics")).text
    assert "/no/such/path/12345" not in text
    assert 'route="unmatched"' in text


# -- telemetry summary -----------------------------------------------------------------------


async def _seed_telemetry(db: Database) -> None:
    t0 = NOW.timestamp()
    await ensure_partitions(db, t0 - 3 * 86400, t0 + 86400)
    await write_telemetry(
        db,
        readings=[
            ("M-1", t0 - 600, 230.1, 10.0, 1),
            ("M-2", t0 - 60, 229.0, None, None),
            ("M-1", t0 - 2 * 86400, 231.0, 9.0, 0),  # outside the default hour
        ],
        meter_events=[("M-3", t0 - 30, "last_gasp", 7, None, None)],
        scada_events=[("R-1", t0 - 45.5, "trip", "ABC")],
        received_s=t0,
    )
    for minutes_ago, reason in ((5, "ts: not a time"), (6, "ts: not a time"), (7, "json")):
        await insert_dead_letter(
            db,
            topic="gridwatch/v1/Z1/batch",
            reason=reason,
            payload=b"{",
            received_at=NOW - timedelta(minutes=minutes_ago),
        )
    await insert_dead_letter(
        db, topic="t", reason="old", payload=b"", received_at=NOW - timedelta(days=2)
    )


async def test_summary_default_window_is_the_last_hour_of_the_clock(
    client: httpx.AsyncClient, db: Database
) -> None:
    await _seed_telemetry(db)
    response = await client.get("/api/v1/telemetry/summary")
    assert response.status_code == 200, response.text
    body = response.json()
    assert datetime.fromisoformat(body["end"]) == NOW
    assert datetime.fromisoformat(body["start"]) == NOW - timedelta(hours=1)
    assert body["readings"]["count"] == 2
    assert datetime.fromisoformat(body["readings"]["latest_ts"]) == NOW - timedelta(seconds=60)
    assert body["meter_events"]["count"] == 1
    assert body["scada_events"]["count"] == 1
    assert datetime.fromisoformat(body["scada_events"]["latest_ts"]) == NOW - timedelta(
        seconds=45.5
    )
    assert body["dead_letters_by_reason"] == {"ts: not a time": 2, "json": 1}
    assert body["dead_letters_total"] == 3


async def test_summary_explicit_window_and_empty_tables(
    client: httpx.AsyncClient, db: Database
) -> None:
    await _seed_telemetry(db)
    start = (NOW - timedelta(days=3)).isoformat()
    end = (NOW - timedelta(days=1)).isoformat()
    body = (
        await client.get("/api/v1/telemetry/summary", params={"start": start, "end": end})
    ).json()
    assert body["readings"]["count"] == 1
    assert body["meter_events"] == {"count": 0, "latest_ts": None}
    assert body["dead_letters_by_reason"] == {"old": 1}


async def test_summary_accepts_offsets_and_epoch_seconds(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/telemetry/summary",
        params={"start": "2026-11-23T14:00:00+07:00", "end": str(int(NOW.timestamp()))},
    )
    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["start"]) == datetime(
        2026, 11, 23, 7, 0, tzinfo=UTC
    )


async def test_summary_tolerates_unknown_query_params(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/telemetry/summary", params={"zone": "Z1", "x": "y"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-11-23T08:00:00"}, "start"),  # no zone: ambiguous
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-40T99:00:00Z"}, "end"),
        ({"start": "x" * 20_000}, "start"),
        ({"start": "2026-11-23T08:00:00Z'; DROP TABLE readings; --"}, "start"),
        ({"start": "2026-11-23T09:00:00Z", "end": "2026-11-23T08:00:00Z"}, "end"),
        ({"start": "2026-11-23T08:00:00Z", "end": "2026-11-23T08:00:00Z"}, "end"),
        ({"start": "2026-11-01T00:00:00Z", "end": "2026-11-23T00:00:00Z"}, "start"),
    ],
)
async def test_summary_rejects_bad_windows_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await client.get("/api/v1/telemetry/summary", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert _field_names(body) == {field}
    assert field in body["detail"]
    # The service keeps answering after a rejected request.
    assert (await client.get("/api/v1/telemetry/summary")).status_code == 200


# -- dead letters ----------------------------------------------------------------------------


async def test_dead_letters_paginate_newest_first_without_overlap(
    client: httpx.AsyncClient, db: Database
) -> None:
    ids = [
        await insert_dead_letter(
            db, topic=f"t/{i}", reason="json", payload=f"{i}".encode(), received_at=NOW
        )
        for i in range(25)
    ]
    seen: list[int] = []
    before: int | None = None
    pages = 0
    while True:
        params: dict[str, int] = {"limit": 10}
        if before is not None:
            params["before"] = before
        page = (await client.get("/api/v1/dead-letters", params=params)).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        before = page["next_before"]
        if before is None:
            break
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


async def test_dead_letter_payload_is_base64_and_truncated(
    client: httpx.AsyncClient, db: Database
) -> None:
    hostile = bytes(range(256)) * 20  # 5120 bytes, not UTF-8, NULs included
    for payload in (hostile, b"{}"):
        await insert_dead_letter(
            db, topic="gridwatch/v1/Z/batch", reason="json", payload=payload, received_at=NOW
        )
    items = (await client.get("/api/v1/dead-letters")).json()["items"]
    small, big = items
    assert base64.b64decode(small["payload_b64"]) == b"{}"
    assert small["payload_truncated"] is False
    assert big["payload_bytes"] == len(hostile)
    assert big["payload_truncated"] is True
    assert base64.b64decode(big["payload_b64"]) == hostile[:1024]


async def test_dead_letter_limit_is_capped(client: httpx.AsyncClient, db: Database) -> None:
    await insert_dead_letter(db, topic="t", reason="r", payload=b"x", received_at=NOW)
    body = (await client.get("/api/v1/dead-letters", params={"limit": 1_000_000})).json()
    assert body["limit"] == 1000
    assert len(body["items"]) == 1
    assert body["next_before"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"before": "abc"}, "before"),
        ({"before": "0"}, "before"),
        ({"before": str(2**64)}, "before"),
    ],
)
async def test_dead_letters_reject_bad_params_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await client.get("/api/v1/dead-letters", params=params)
    assert response.status_code == 422, response.text
    assert _field_names(response.json()) == {field}


# -- request limits, errors, OpenAPI -------------------------------------------------------


async def test_body_at_the_limit_passes_and_one_byte_more_is_413(
    client: httpx.AsyncClient,
) -> None:
    ok = await client.post("/api/v1/echo-size", content=b"a" * DEFAULT_MAX_BODY_BYTES)
    assert ok.status_code == 200
    assert ok.json() == {"bytes": DEFAULT_MAX_BODY_BYTES}
    too_big = await client.post("/api/v1/echo-size", content=b"a" * (DEFAULT_MAX_BODY_BYTES + 1))
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "payload_too_large"


async def test_streamed_body_without_length_is_cut_at_the_limit(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"b" * 65536  # 2.5 MiB in all, no Content-Length

    response = await client.post("/api/v1/echo-size", content=chunks())
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_oversized_body_on_a_get_route_is_413(client: httpx.AsyncClient) -> None:
    response = await client.request(
        "GET", "/api/v1/dead-letters", content=b"z" * (2 * DEFAULT_MAX_BODY_BYTES)
    )
    assert response.status_code == 413


async def test_malformed_content_length_is_400(app: FastAPI) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/echo-size",
        "raw_path": b"/api/v1/echo-size",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", b"12abc")],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "state": {},
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = await client.delete("/healthz")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


async def test_openapi_documents_every_response(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/telemetry/summary",
        "/api/v1/dead-letters",
    ):
        assert path in paths, path
    summary_op = paths["/api/v1/telemetry/summary"]["get"]
    assert summary_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TelemetrySummaryBody"
    }
    assert summary_op["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    dl_params = {p["name"] for p in paths["/api/v1/dead-letters"]["get"]["parameters"]}
    assert dl_params == {"limit", "before"}
    ready_503 = paths["/readyz"]["get"]["responses"]["503"]
    assert ready_503["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReadyBody"
    }
    for name in ("DeadLetterPage", "DeadLetterItem", "ErrorBody", "ReadyBody", "HealthBody"):
        assert name in spec["components"]["schemas"], name
