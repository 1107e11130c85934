"""``GET /api/v1/topology/map``: the map's devices in one request (shape, worst open outage
per device, truncation and paging, the bounding box and its field errors, a network
without coordinates)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gridwatch.store import Database
from tests.api_support import (
    DEVICES,
    POSITIONS,
    Tokens,
    invalid_request,
    place_devices,
    seeded_client,
)

V1 = "/api/v1"


@pytest.fixture
async def api(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, Tokens, Database]]:
    async with seeded_client(db) as (http, tokens, _):
        yield http, tokens, db


async def test_map_returns_every_device_with_position_and_worst_open_state(
    api: tuple[httpx.AsyncClient, Tokens, Database],
) -> None:
    http, tokens, db = api
    await place_devices(db, POSITIONS)
    response = await http.get(f"{V1}/topology/map", headers=tokens.headers("viewer"))
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 10
    assert body["positioned"] == 7
    assert body["truncated"] is False
    assert body["next_after"] is None
    assert body["limit"] == 20_000
    by_id = {d["device_id"]: d for d in body["items"]}
    assert list(by_id) == sorted(by_id)  # by id, so paging is stable
    assert by_id["R1"] == {
        "device_id": "R1",
        "parent_id": "B1",
        "kind": "recloser",
        "name": "Recloser Hai Bà Trưng",
        "lat": 10.795,
        "lon": 106.7,
        "open_state": "confirmed",
    }
    assert by_id["T3"]["open_state"] == "predicted"
    assert by_id["T4"]["open_state"] is None  # its outage is restored
    assert by_id["T4"]["lat"] is None  # devices without a position still come (tree links)
    assert by_id["T1"]["open_state"] is None  # below an outage, but none on T1 itself


async def test_map_truncates_and_pages(api: tuple[httpx.AsyncClient, Tokens, Database]) -> None:
    http, tokens, _ = api
    h = tokens.headers("viewer")
    seen: list[str] = []
    after = None
    for _page in range(4):
        params: dict[str, str | int] = {"limit": 4, **({"after": after} if after else {})}
        body = (await http.get(f"{V1}/topology/map", params=params, headers=h)).json()
        seen += [d["device_id"] for d in body["items"]]
        assert body["total"] == 10  # the whole match, not the page
        if not body["truncated"]:
            assert body["next_after"] is None
            break
        assert len(body["items"]) == 4
        after = body["next_after"]
        assert after == body["items"][-1]["device_id"]
    assert seen == sorted(d[0] for d in DEVICES)
    capped = (await http.get(f"{V1}/topology/map", params={"limit": 10**9}, headers=h)).json()
    assert capped["limit"] == 20_000


async def test_map_bounding_box(api: tuple[httpx.AsyncClient, Tokens, Database]) -> None:
    http, tokens, db = api
    await place_devices(db, POSITIONS)
    box = {"min_lat": 10.79, "max_lat": 10.80, "min_lon": 106.69, "max_lon": 106.701}
    body = (
        await http.get(f"{V1}/topology/map", params=box, headers=tokens.headers("viewer"))
    ).json()
    assert [d["device_id"] for d in body["items"]] == ["B1", "R1", "T1"]
    assert (body["total"], body["positioned"], body["truncated"]) == (3, 3, False)


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"min_lat": "nan", "max_lat": 1, "min_lon": 0, "max_lon": 1}, {"min_lat"}),
        ({"min_lat": 0, "max_lat": "inf", "min_lon": 0, "max_lon": 1}, {"max_lat"}),
        ({"min_lat": -91, "max_lat": 1, "min_lon": 0, "max_lon": 181}, {"min_lat", "max_lon"}),
        ({"min_lat": "north", "max_lat": 1, "min_lon": 0, "max_lon": 1}, {"min_lat"}),
        ({"min_lat": 2, "max_lat": 1, "min_lon": 5, "max_lon": 5}, {"max_lat", "max_lon"}),
        ({"min_lat": 0, "max_lat": 1}, {"min_lon", "max_lon"}),
        ({"limit": 0}, {"limit"}),
        ({"after": "../x"}, {"after"}),
    ],
)
async def test_map_bad_input_names_the_fields(
    api: tuple[httpx.AsyncClient, Tokens, Database],
    params: dict[str, str | int | float],
    fields: set[str],
) -> None:
    http, tokens, _ = api
    response = await http.get(f"{V1}/topology/map", params=params, headers=tokens.headers("viewer"))
    body = invalid_request(response)
    assert {f["field"] for f in body["fields"]} == fields
    assert all(f["location"] == "query" for f in body["fields"])


async def test_map_of_a_network_without_coordinates(
    api: tuple[httpx.AsyncClient, Tokens, Database],
) -> None:
    http, tokens, _ = api
    h = tokens.headers("viewer")
    body = (await http.get(f"{V1}/topology/map", params={"limit": 1}, headers=h)).json()
    assert (body["total"], body["positioned"], body["truncated"]) == (10, 0, True)
    assert body["items"][0]["lat"] is None
    box = {"min_lat": -90, "max_lat": 90, "min_lon": -180, "max_lon": 180}
    empty = (await http.get(f"{V1}/topology/map", params=box, headers=h)).json()
    assert (empty["items"], empty["total"], empty["positioned"]) == ([], 0, 0)
    assert (await http.get(f"{V1}/topology/map")).status_code == 401
