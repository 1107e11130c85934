"""Outage list, detail and operator actions over the real PostgreSQL, and bad input."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from detectors.etr import synthetic_history
from gridwatch import ManualClock
from gridwatch.api import DEFAULT_MAX_BODY_BYTES
from gridwatch.api._ops_models import OutagePage
from gridwatch.etr import refit_model, refresh_open_etrs
from gridwatch.store import Database
from gridwatch.store.audit import audit_entries
from gridwatch.store.outages import OutageRow, save_outages
from tests.api_support import (
    NOW,
    NOW_S,
    Tokens,
    api,
    client_for,
    invalid_request,
    make_app,
    make_tokens,
    seed_network,
    seed_outages,
)

__all__ = ["api"]  # the fixture, imported

V1 = "/api/v1"


async def test_list_filters_and_order(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]],
) -> None:
    http, tokens, ids = api
    h = tokens.headers("viewer")

    async def keys(**params: object) -> list[int]:
        response = await http.get(f"{V1}/outages", params=params, headers=h)
        assert response.status_code == 200, response.text
        return [item["outage_id"] for item in response.json()["items"]]

    assert await keys() == [ids["O-T3"], ids["O-R1"], ids["O-T4"]]  # newest first
    assert await keys(active="true") == [ids["O-T3"], ids["O-R1"]]
    assert await keys(active="false") == [ids["O-T4"]]
    assert await keys(state=["confirmed", "restored"]) == [ids["O-R1"], ids["O-T4"]]
    assert await keys(zone="Z2") == [ids["O-T4"]]
    assert await keys(feeder="B1") == [ids["O-R1"]]  # R1 is below breaker B1
    assert await keys(feeder="S1") == [ids["O-T3"], ids["O-R1"]]
    assert await keys(device="T3") == [ids["O-T3"]]
    assert await keys(min_customers=2) == [ids["O-R1"]]
    assert await keys(max_customers=1) == [ids["O-T3"], ids["O-T4"]]
    after = (NOW - timedelta(hours=2)).isoformat()
    assert await keys(started_after=after) == [ids["O-T3"], ids["O-R1"]]
    assert await keys(started_before=after) == [ids["O-T4"]]
    page = (await http.get(f"{V1}/outages", params={"device": "R1"}, headers=h)).json()
    # The list is written straight from rows; it must be exactly what the model says.
    assert OutagePage.model_validate(page).model_dump(mode="json") == page
    item = page["items"][0]
    assert item["state"] == "confirmed"
    assert item["customers_affected"] == 4
    assert set(item["etr"]) == {"p10", "p50", "p90", "model_version"}


async def test_keyset_pages_cover_everything_once(db: Database) -> None:
    await seed_network(db)
    rows = [
        OutageRow(
            f"K{i}",
            "T1",
            "Z1",
            "predicted",
            "x",
            NOW_S - 10 * (i // 3),
            None,
            None,
            0.5,
            1,
            1,
            0,
            0,
            None,
        )
        for i in range(25)  # ties in started_at: the id breaks them
    ]
    ids = await save_outages(db, rows)
    tokens = await make_tokens(db)
    seen: list[int] = []
    async with client_for(make_app(db)) as http:
        cursor = None
        while True:
            params: dict[str, object] = {"limit": 4}
            if cursor:
                params["cursor"] = cursor
            page = (
                await http.get(f"{V1}/outages", params=params, headers=tokens.headers("viewer"))
            ).json()
            seen += [i["outage_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert sorted(seen) == sorted(ids.values())
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "MTox"}, "cursor"),  # "1:1": well-formed, so simply nothing older
        ({"cursor": "x" * 500}, "cursor"),
        ({"state": "exploded"}, "state"),
        ({"zone": "Z1'; DROP TABLE outages; --"}, "zone"),
        ({"feeder": "B1 OR 1=1"}, "feeder"),
        ({"started_after": "yesterday"}, "started_after"),
        ({"started_after": "2026-11-23T08:00:00"}, "started_after"),  # no zone
        ({"min_customers": -1}, "min_customers"),
        ({"min_customers": 5, "max_customers": 1}, "max_customers"),
        (
            {"started_after": "2026-11-23T09:00:00Z", "started_before": "2026-11-23T08:00:00Z"},
            "started_before",
        ),
    ],
)
async def test_bad_list_parameters_name_the_field(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]], params: dict[str, object], field: str
) -> None:
    http, tokens, _ = api
    response = await http.get(f"{V1}/outages", params=params, headers=tokens.headers("viewer"))
    if params.get("cursor") == "MTox":
        assert response.status_code == 200  # a well-formed cursor: simply nothing older
        return
    body = invalid_request(response)
    named = [f["field"].split(".")[0] for f in body["fields"]]  # "state.0": the first value
    assert field in named
    # Nothing was harmed: the table still answers.
    assert (await http.get(f"{V1}/outages", headers=tokens.headers("viewer"))).status_code == 200


async def test_absurd_limit_is_capped(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]],
) -> None:
    http, tokens, _ = api
    for absurd in (10**12, "99999999999999999999999"):
        response = await http.get(
            f"{V1}/outages", params={"limit": absurd}, headers=tokens.headers("viewer")
        )
        assert response.status_code == 200
        assert response.json()["limit"] == 500


async def test_detail_limits_personal_data_by_role(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]],
) -> None:
    http, tokens, ids = api
    url = f"{V1}/outages/{ids['O-R1']}"
    by_role = {}
    for role in ("viewer", "operator", "admin"):
        response = await http.get(url, headers=tokens.headers(role))
        assert response.status_code == 200, response.text
        by_role[role] = response.json()
    first = {r: by_role[r]["affected_meters"]["items"][0] for r in by_role}
    assert first["admin"]["customer_name"] == "Nguyễn Văn 1"
    assert first["admin"]["phone"] == "+84900000001"
    assert first["operator"]["customer_name"] == "Nguyễn Văn 1"
    assert first["operator"]["phone"] == "+84******001"
    assert first["viewer"]["customer_name"] == "N*** V*** 1***"
    assert first["viewer"]["phone"] == "+84******001"
    detail = by_role["viewer"]
    assert detail["device"]["kind"] == "recloser"
    assert [m["meter_id"] for m in detail["affected_meters"]["items"]] == ["M1", "M2", "M3", "M4"]
    assert detail["etr_override"] is None
    missing = await http.get(f"{V1}/outages/999999", headers=tokens.headers("viewer"))
    assert missing.status_code == 404
    meters = await http.get(f"{url}/meters", params={"limit": 2}, headers=tokens.headers("viewer"))
    page = meters.json()
    assert [m["meter_id"] for m in page["items"]] == ["M1", "M2"]
    assert page["next_after"] == "M2"


async def test_actions_change_state_and_leave_audit_rows(
    db: Database, api: tuple[httpx.AsyncClient, Tokens, dict[str, int]]
) -> None:
    http, tokens, ids = api
    op = tokens.headers("operator")
    t3, r1 = ids["O-T3"], ids["O-R1"]
    # Reason is mandatory.
    missing = await http.post(f"{V1}/outages/{t3}/confirm", json={}, headers=op)
    assert missing.status_code == 422
    assert missing.json()["fields"][0]["field"] == "reason"
    blank = await http.post(f"{V1}/outages/{t3}/confirm", json={"reason": "   "}, headers=op)
    assert blank.status_code == 422
    ok = await http.post(f"{V1}/outages/{t3}/confirm", json={"reason": "crew on site"}, headers=op)
    assert ok.status_code == 200
    assert ok.json()["state"] == "confirmed"
    again = await http.post(f"{V1}/outages/{t3}/confirm", json={"reason": "twice"}, headers=op)
    assert again.status_code == 409
    assert "confirmed" in again.json()["detail"]
    restored = await http.post(
        f"{V1}/outages/{r1}/restore", json={"reason": "fuse replaced"}, headers=op
    )
    assert restored.json()["state"] == "restored"
    detail = (await http.get(f"{V1}/outages/{r1}", headers=op)).json()
    assert detail["state"] == "restored"
    assert detail["customers_restored"] == 4
    assert {m["status"] for m in detail["affected_meters"]["items"]} == {"restored"}
    assert detail["timeline"][-1]["kind"] == "operator_restore"
    cancel = await http.post(f"{V1}/outages/{r1}/cancel", json={"reason": "oops"}, headers=op)
    assert cancel.status_code == 409
    entries = await audit_entries(db, target_kind="outage")
    assert [(e.action, e.actor, e.reason) for e in entries] == [
        ("outage.restore", "operator one", "fuse replaced"),
        ("outage.confirm", "operator one", "crew on site"),
    ]


async def test_merge_moves_meters_and_cancels_the_merged(
    db: Database, api: tuple[httpx.AsyncClient, Tokens, dict[str, int]]
) -> None:
    http, tokens, ids = api
    op = tokens.headers("operator")
    t3, r1 = ids["O-T3"], ids["O-R1"]
    self_merge = await http.post(
        f"{V1}/outages/{t3}/merge", json={"into_outage_id": t3, "reason": "x"}, headers=op
    )
    assert self_merge.status_code == 422
    closed = await http.post(
        f"{V1}/outages/{t3}/merge", json={"into_outage_id": ids["O-T4"], "reason": "x"}, headers=op
    )
    assert closed.status_code == 409
    merged = await http.post(
        f"{V1}/outages/{t3}/merge", json={"into_outage_id": r1, "reason": "same fault"}, headers=op
    )
    assert merged.status_code == 200, merged.text
    survivor = (await http.get(f"{V1}/outages/{r1}", headers=op)).json()
    assert survivor["customers_affected"] == 5
    assert "M5" in [m["meter_id"] for m in survivor["affected_meters"]["items"]]
    gone = (await http.get(f"{V1}/outages/{t3}", headers=op)).json()
    assert gone["state"] == "cancelled"
    assert gone["parent_outage_id"] == r1
    assert (await audit_entries(db, target_id=str(t3)))[0].detail == {"into": r1}


async def _xmin(db: Database, sql: str, *args: object) -> str:
    """The id of the transaction that last wrote the row (PostgreSQL's ``xmin``)."""
    async with db.connection() as conn:
        cur = await conn.execute(sql, list(args))
        row = await cur.fetchone()
    assert row is not None, sql
    return str(row[0])


async def _audit_xmin(db: Database, outage_id: int, action: str) -> str:
    return await _xmin(
        db,
        "SELECT xmin::text FROM audit_log WHERE target_kind = 'outage' AND target_id = %s"
        " AND action = %s ORDER BY audit_id DESC LIMIT 1",
        str(outage_id),
        action,
    )


async def test_etr_override_set_and_clear(
    db: Database, api: tuple[httpx.AsyncClient, Tokens, dict[str, int]]
) -> None:
    http, tokens, ids = api
    op = tokens.headers("operator")
    r1 = ids["O-R1"]
    url = f"{V1}/outages/{r1}/etr-override"
    past = await http.put(
        url, json={"etr_at": (NOW - timedelta(hours=1)).isoformat(), "reason": "x"}, headers=op
    )
    assert past.status_code == 409
    naive = await http.put(url, json={"etr_at": "2026-11-23T12:00:00", "reason": "x"}, headers=op)
    assert naive.status_code == 422
    assert naive.json()["fields"][0]["field"] == "etr_at"
    etr_at = NOW + timedelta(hours=2)
    ok = await http.put(
        url, json={"etr_at": etr_at.isoformat(), "reason": "crew estimate"}, headers=op
    )
    assert ok.status_code == 200, ok.text
    # The override and its audit row are one transaction: never one without the other.
    override_sql = "SELECT xmin::text FROM etr_overrides WHERE override_id = %s"
    override_id = ok.json()["override_id"]
    set_xmin = await _xmin(db, override_sql, override_id)
    assert set_xmin == await _audit_xmin(db, r1, "outage.etr_override.set")
    detail = (await http.get(f"{V1}/outages/{r1}", headers=op)).json()
    assert detail["etr_override"]["set_by"] == "operator one"
    assert detail["etr"]["p50"].startswith("2026-11-23T10:30")
    assert detail["etr_history"][0]["source"] == "override"
    cleared = await http.post(f"{url}/clear", json={"reason": "crew left"}, headers=op)
    assert cleared.status_code == 200
    assert cleared.json()["cleared"] is True
    clear_xmin = await _xmin(db, override_sql, override_id)
    assert clear_xmin != set_xmin
    assert clear_xmin == await _audit_xmin(db, r1, "outage.etr_override.clear")
    again = await http.post(f"{url}/clear", json={"reason": "crew left"}, headers=op)
    assert again.status_code == 409
    actions = [e.action for e in await audit_entries(db, target_id=str(r1))]
    assert actions == ["outage.etr_override.clear", "outage.etr_override.set"]


async def _restored_history(db: Database, n: int) -> None:
    """Restored outages for the ETR model to fit on."""
    h = synthetic_history(n, seed=5, span_s=60 * 86400.0, start_s=NOW_S - 61 * 86400.0)
    async with db.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO outages (device_id, zone, state, started_at, restored_at, cause)"
            " VALUES ('T3', 'Z1', 'restored', %s, %s, 'vegetation')",
            [
                (NOW + timedelta(seconds=s - NOW_S), NOW + timedelta(seconds=s + d - NOW_S))
                for s, d in zip(h.started_at_s, h.true_duration_s, strict=True)
            ],
        )


async def test_etr_override_set_clear_and_pass_are_in_the_timeline(db: Database) -> None:
    """Every override set, replaced, cleared by hand and passed unrestored is in the
    outage's timeline (and so in the detail), with its time and reason."""
    await seed_network(db)
    ids = await seed_outages(db)
    await _restored_history(db, 200)
    tokens = await make_tokens(db)
    op = tokens.headers("operator")
    clock = ManualClock(NOW_S)
    model = await refit_model(db, clock)
    r1 = ids["O-R1"]
    url = f"{V1}/outages/{r1}/etr-override"
    first, second, third = (NOW + timedelta(hours=h) for h in (2, 3, 1))
    async with client_for(make_app(db, clock)) as http:
        for etr_at, reason in ((first, "crew estimate"), (second, "a 2nd pole is down")):
            resp = await http.put(
                url, json={"etr_at": etr_at.isoformat(), "reason": reason}, headers=op
            )
            assert resp.status_code == 200, resp.text
        clock.set(NOW_S + 600)
        cleared = await http.post(f"{url}/clear", json={"reason": "crew left"}, headers=op)
        assert cleared.status_code == 200, cleared.text
        resp = await http.put(
            url, json={"etr_at": third.isoformat(), "reason": "crew back"}, headers=op
        )
        assert resp.status_code == 200, resp.text
        # The third override's time passes unrestored: the ETR refresh clears it.
        clock.set(third.timestamp() + 60)
        batch = await refresh_open_etrs(db, clock, model)
        assert batch.expired_overrides == [r1]
        detail = (await http.get(f"{V1}/outages/{r1}", headers=tokens.headers("viewer"))).json()
    got = [
        (t["at"], t["kind"], t["detail"])
        for t in detail["timeline"]
        if t["kind"].startswith("etr_override")
    ]
    ids_set = [d["override_id"] for _, k, d in got if k == "etr_override_set"]
    assert len(ids_set) == 3
    at0, at1, at2 = (
        (NOW + timedelta(seconds=s)).isoformat().replace("+00:00", "Z") for s in (0, 600, 3660)
    )
    assert got == [
        (
            at0,
            "etr_override_set",
            {
                "override_id": ids_set[0],
                "etr_at": first.isoformat(),
                "reason": "crew estimate",
                "set_by": "operator one",
            },
        ),
        (
            at0,
            "etr_override_cleared",
            {
                "override_id": ids_set[0],
                "etr_at": first.isoformat(),
                "set_by": "operator one",
                "cleared_reason": "replaced",
            },
        ),
        (
            at0,
            "etr_override_set",
            {
                "override_id": ids_set[1],
                "etr_at": second.isoformat(),
                "reason": "a 2nd pole is down",
                "set_by": "operator one",
            },
        ),
        (
            at1,
            "etr_override_cleared",
            {
                "override_id": ids_set[1],
                "etr_at": second.isoformat(),
                "set_by": "operator one",
                "cleared_reason": "crew left",
            },
        ),
        (
            at1,
            "etr_override_set",
            {
                "override_id": ids_set[2],
                "etr_at": third.isoformat(),
                "reason": "crew back",
                "set_by": "operator one",
            },
        ),
        (
            at2,
            "etr_override_cleared",
            {
                "override_id": ids_set[2],
                "etr_at": third.isoformat(),
                "set_by": "operator one",
                "cleared_reason": "passed",
            },
        ),
    ]
    assert detail["etr_override"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "ok", "extra": 1}, "extra"),
        ({"reason": "ok", "Reason": "dup"}, "Reason"),
        ({"reason": 12}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": ["a"]}, "reason"),
    ],
)
async def test_unknown_and_bad_body_fields_are_named(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]], body: dict[str, object], field: str
) -> None:
    http, tokens, ids = api
    response = await http.post(
        f"{V1}/outages/{ids['O-T3']}/confirm", json=body, headers=tokens.headers("operator")
    )
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]]


async def test_malformed_and_oversized_bodies(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]],
) -> None:
    http, tokens, ids = api
    op = tokens.headers("operator") | {"content-type": "application/json"}
    url = f"{V1}/outages/{ids['O-T3']}/confirm"
    assert (await http.post(url, content=b"{not json", headers=op)).status_code == 422
    assert (await http.post(url, content=b"[]", headers=op)).status_code == 422
    huge = b'{"reason": "' + b"a" * (DEFAULT_MAX_BODY_BYTES + 10) + b'"}'
    too_big = await http.post(url, content=huge, headers=op)
    assert too_big.status_code == 413
    # The outage was not touched by any of it, and the API still works.
    detail = (await http.get(f"{V1}/outages/{ids['O-T3']}", headers=op)).json()
    assert detail["state"] == "predicted"


@pytest.mark.parametrize("outage_id", ["0", "-1", "abc", "1e3", str(2**63), "1;DROP TABLE outages"])
async def test_bad_path_ids(
    api: tuple[httpx.AsyncClient, Tokens, dict[str, int]], outage_id: str
) -> None:
    http, tokens, _ = api
    response = await http.get(f"{V1}/outages/{outage_id}", headers=tokens.headers("viewer"))
    assert response.status_code in (404, 422)
    if response.status_code == 422:
        assert response.json()["fields"][0]["field"] == "outage_id"
