"""``GET /api/v1/dispatch`` (every active outage with its crew status) and the crew status
in the outage detail and timeline, over the real PostgreSQL; malformed, hostile and
oversized input to the board's parameters and to ``PUT /outages/{id}/crew``."""

from __future__ import annotations

import httpx
import pytest

from gridwatch.api import DEFAULT_MAX_BODY_BYTES
from gridwatch.store import Database
from gridwatch.store.outages import OutageRow, save_outages
from tests.api_support import NOW, NOW_S, Api, Tokens, api, invalid_request

__all__ = ["api"]  # the fixture, imported

V1 = "/api/v1"


async def _set_crew(
    http: httpx.AsyncClient, tokens: Tokens, outage_id: int, **body: object
) -> dict[str, object]:
    response = await http.put(
        f"{V1}/outages/{outage_id}/crew", json=body, headers=tokens.headers("operator")
    )
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_board_lists_active_outages_with_crew_status(api: Api) -> None:
    http, tokens, ids = api
    board = await http.get(f"{V1}/dispatch", headers=tokens.headers("viewer"))
    assert board.status_code == 200, board.text
    body = board.json()
    # Most customers out first (R1: 4, T3: 1); the restored T4 is not on the board.
    assert [i["outage_id"] for i in body["items"]] == [ids["O-R1"], ids["O-T3"]]
    r1 = body["items"][0]
    assert r1["device"] == {"device_id": "R1", "kind": "recloser", "name": "Recloser Hai Bà Trưng"}
    assert r1["zone"] == "Z1"
    assert r1["state"] == "confirmed"
    assert r1["customers_out"] == 4
    assert r1["started_at"] == "2026-11-23T07:30:00Z"
    assert set(r1["etr"]) == {"p10", "p50", "p90", "model_version"}
    assert r1["crew"] is None
    assert body["crew_counts"] == {"none": 2, "dispatched": 0, "on_site": 0, "released": 0}
    assert body["truncated"] is False
    assert body["may_set_crew"] is False  # a viewer reads the board, an operator sets crews

    await _set_crew(http, tokens, ids["O-R1"], status="dispatched", reason="crew 3 sent")
    await _set_crew(
        http, tokens, ids["O-R1"], status="on_site", cause="tree", reason="crew 3 arrived"
    )
    body = (await http.get(f"{V1}/dispatch", headers=tokens.headers("operator"))).json()
    assert body["may_set_crew"] is True
    crew = body["items"][0]["crew"]
    assert crew == {
        "status": "on_site",
        "cause": "tree",
        "set_by": "operator one",
        "set_at": NOW.isoformat().replace("+00:00", "Z"),
    }
    assert body["crew_counts"] == {"none": 1, "dispatched": 0, "on_site": 1, "released": 0}

    # The detail carries the crew too, and each report is a timeline entry.
    detail = (
        await http.get(f"{V1}/outages/{ids['O-R1']}", headers=tokens.headers("viewer"))
    ).json()
    assert detail["crew"] == crew
    reports = [t for t in detail["timeline"] if t["kind"] == "crew_status"]
    assert [t["detail"] for t in reports] == [
        {"status": "dispatched", "cause": None, "set_by": "operator one"},
        {"status": "on_site", "cause": "tree", "set_by": "operator one"},
    ]
    t3 = (await http.get(f"{V1}/outages/{ids['O-T3']}", headers=tokens.headers("viewer"))).json()
    assert t3["crew"] is None


async def test_board_filters_by_zone_and_caps_its_page(api: Api, db: Database) -> None:
    http, tokens, ids = api
    h = tokens.headers("viewer")
    extra = [
        OutageRow(
            f"O-X{n}",
            "T4",
            "Z2",
            "predicted",
            "meters",
            NOW_S - n,
            None,
            None,
            0.5,
            1,
            1,
            0,
            0,
            None,
        )
        for n in range(1, 4)
    ]
    await save_outages(db, extra)
    z2 = (await http.get(f"{V1}/dispatch", params={"zone": "Z2"}, headers=h)).json()
    assert len(z2["items"]) == 3
    assert {i["zone"] for i in z2["items"]} == {"Z2"}
    assert z2["crew_counts"]["none"] == 3  # counts follow the filter
    page = (await http.get(f"{V1}/dispatch", params={"limit": 2}, headers=h)).json()
    assert len(page["items"]) == 2
    assert page["truncated"] is True
    assert page["items"][0]["outage_id"] == ids["O-R1"]
    assert sum(page["crew_counts"].values()) == 5  # every active outage, not only the page
    capped = await http.get(f"{V1}/dispatch", params={"limit": 10**9}, headers=h)
    assert capped.status_code == 200
    assert capped.json()["limit"] == 500


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"limit": str(2**70)}, "limit"),
        ({"zone": "Z1'; DROP TABLE outages; --"}, "zone"),
        ({"zone": "x" * 65}, "zone"),
        ({"zone": ""}, "zone"),
        ({"zone": "Z1\x00"}, "zone"),
        ({"zone": "<script>alert(1)</script>"}, "zone"),
    ],
)
async def test_bad_board_parameters_name_the_field(
    api: Api, params: dict[str, object], field: str
) -> None:
    http, tokens, _ = api
    response = await http.get(f"{V1}/dispatch", params=params, headers=tokens.headers("viewer"))
    body = invalid_request(response)
    assert field in [f["field"] for f in body["fields"]]
    assert body["detail"]  # a reason in words


async def test_board_needs_a_token(api: Api) -> None:
    http, _, _ = api
    assert (await http.get(f"{V1}/dispatch")).status_code == 401
    bad = await http.get(f"{V1}/dispatch", headers={"Authorization": "Bearer gw_nope"})
    assert bad.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "sent"}, "status"),
        ({"status": "en_route", "reason": "sent"}, "status"),
        ({"status": None, "reason": "sent"}, "status"),
        ({"status": ["dispatched"], "reason": "sent"}, "status"),
        ({"status": "dispatched"}, "reason"),
        ({"status": "dispatched", "reason": "   "}, "reason"),
        ({"status": "dispatched", "reason": "x" * 501}, "reason"),
        ({"status": "dispatched", "reason": "ok", "cause": "c" * 101}, "cause"),
        ({"status": "dispatched", "reason": "ok", "cause": ""}, "cause"),
        ({"status": "dispatched", "reason": "ok", "cause": {"$ne": 1}}, "cause"),
        ({"status": "dispatched", "reason": "ok", "crew": "A"}, "crew"),
        ({"status": "dispatched", "reason": "ok", "Status": "on_site"}, "Status"),
    ],
)
async def test_bad_crew_bodies_name_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    http, tokens, ids = api
    response = await http.put(
        f"{V1}/outages/{ids['O-R1']}/crew", json=body, headers=tokens.headers("operator")
    )
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]]
    detail = (
        await http.get(f"{V1}/outages/{ids['O-R1']}", headers=tokens.headers("viewer"))
    ).json()
    assert detail["crew"] is None  # nothing was recorded


async def test_hostile_crew_input_is_refused_or_kept_as_text(api: Api) -> None:
    http, tokens, ids = api
    op = tokens.headers("operator") | {"content-type": "application/json"}
    url = f"{V1}/outages/{ids['O-R1']}/crew"
    assert (await http.put(url, content=b"{not json", headers=op)).status_code == 422
    assert (await http.put(url, content=b"[]", headers=op)).status_code == 422
    assert (await http.put(url, content=b"null", headers=op)).status_code == 422
    huge = b'{"status": "dispatched", "reason": "' + b"a" * (DEFAULT_MAX_BODY_BYTES + 10) + b'"}'
    assert (await http.put(url, content=huge, headers=op)).status_code == 413
    # A control character in the cause is refused with its reason (409 from the ETR service).
    control = await http.put(
        url, json={"status": "dispatched", "cause": "tree\x07", "reason": "ok"}, headers=op
    )
    assert control.status_code in (409, 422), control.text
    assert "cause" in control.text
    # Markup is stored as plain text (the dashboard never parses it).
    markup = "<img src=x onerror=alert(1)>"
    await _set_crew(http, tokens, ids["O-R1"], status="dispatched", cause=markup, reason="ok")
    board = (await http.get(f"{V1}/dispatch", headers=op)).json()
    assert board["items"][0]["crew"]["cause"] == markup


async def test_crew_roles_and_states(api: Api) -> None:
    http, tokens, ids = api
    body = {"status": "dispatched", "reason": "crew 1"}
    viewer = await http.put(
        f"{V1}/outages/{ids['O-R1']}/crew", json=body, headers=tokens.headers("viewer")
    )
    assert viewer.status_code == 403
    restored = await http.put(
        f"{V1}/outages/{ids['O-T4']}/crew", json=body, headers=tokens.headers("operator")
    )
    assert restored.status_code == 409
    unknown = await http.put(
        f"{V1}/outages/999999/crew", json=body, headers=tokens.headers("operator")
    )
    assert unknown.status_code == 404
