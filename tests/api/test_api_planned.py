"""Planned work through the API: legal notice period, no-work periods, override, change,
cancel, the notifier's event rows, and what detection sees."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta

import httpx
import pytest

from gridwatch.api import ApiSettings, NoWorkPeriod, planned_work_problems
from gridwatch.store import Database
from gridwatch.store.audit import audit_entries
from gridwatch.store.planned import planned_events, planned_outages_between
from tests.api_support import NOW, NOW_S, Tokens, client_for, make_app, make_tokens, seed_network

URL = "/api/v1/planned-outages"


@pytest.fixture
async def api(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, Tokens]]:
    await seed_network(db)
    tokens = await make_tokens(db)
    async with client_for(make_app(db)) as http:
        yield http, tokens


def _body(start: datetime, hours: float = 4, **extra: object) -> dict[str, object]:
    return {
        "planned_id": "WO-1",
        "device_id": "T1",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "reason": "bảo trì máy biến áp",
        **extra,
    }


def test_problems_cover_notice_and_holidays() -> None:
    settings = ApiSettings()
    ok = datetime.fromisoformat("2026-12-10T01:00:00+00:00")
    assert planned_work_problems(ok, ok + timedelta(hours=4), NOW, settings) == []
    soon = NOW + timedelta(days=2)
    (problem,) = planned_work_problems(soon, soon + timedelta(hours=1), NOW, settings)
    assert "2.0 days ahead" in problem
    assert "5 days" in problem
    tet = datetime.fromisoformat("2027-02-05T02:00:00+00:00")
    (problem,) = planned_work_problems(tet, tet + timedelta(hours=3), NOW, settings)
    assert "Tết Nguyên đán 2027" in problem
    # Local (UTC+7) dates: 2026-08-31T18:00Z is 1 September local, in the Quốc khánh period.
    edge = datetime.fromisoformat("2026-08-31T18:00:00+00:00")
    assert any(
        "Quốc khánh" in p
        for p in planned_work_problems(
            edge, edge + timedelta(hours=2), edge - timedelta(days=30), settings
        )
    )
    custom = ApiSettings(
        planned_notice_days=1,
        no_planned_work_periods=[
            NoWorkPeriod(name="festival", start=date(2026, 12, 1), end=date(2026, 12, 2))
        ],
    )
    festival = datetime.fromisoformat("2026-12-02T10:00:00+07:00")
    assert planned_work_problems(festival, festival + timedelta(hours=1), NOW, custom) == [
        "overlaps the no-planned-work period festival (2026-12-01 to 2026-12-02)"
    ]
    with pytest.raises(ValueError, match="ends before"):
        NoWorkPeriod(name="x", start=date(2026, 1, 2), end=date(2026, 1, 1))


async def test_create_change_cancel(db: Database, api: tuple[httpx.AsyncClient, Tokens]) -> None:
    http, tokens = api
    op = tokens.headers("operator")
    start = datetime.fromisoformat("2026-12-10T01:00:00+00:00")
    created = await http.post(URL, json=_body(start), headers=op)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["warnings"] == []
    assert body["planned"]["zone"] == "Z1"
    assert body["planned"]["created_by"] == "operator one"
    # Detection sees the window (it suppresses declarations inside it).
    seen = await planned_outages_between(db, start.timestamp(), start.timestamp() + 60)
    assert [p.planned_id for p in seen] == ["WO-1"]
    dup = await http.post(URL, json=_body(start), headers=op)
    assert dup.status_code == 409

    moved = start + timedelta(days=1)
    change = {
        "starts_at": moved.isoformat(),
        "ends_at": (moved + timedelta(hours=2)).isoformat(),
        "change_reason": "crew availability",
    }
    changed = await http.put(f"{URL}/WO-1", json=change, headers=op)
    assert changed.status_code == 200, changed.text
    assert changed.json()["planned"]["version"] == 1
    assert changed.json()["planned"]["reason"] == "bảo trì máy biến áp"
    listed = (await http.get(URL, headers=tokens.headers("viewer"))).json()
    assert [p["planned_id"] for p in listed["items"]] == ["WO-1"]

    cancelled = await http.post(f"{URL}/WO-1/cancel", json={"reason": "not needed"}, headers=op)
    assert cancelled.status_code == 200
    assert cancelled.json()["cancelled"] is True
    assert await planned_outages_between(db, moved.timestamp(), moved.timestamp() + 60) == []
    assert (await http.get(f"{URL}/WO-1", headers=op)).status_code == 404
    assert (
        await http.post(f"{URL}/WO-1/cancel", json={"reason": "x"}, headers=op)
    ).status_code == 404
    events = await planned_events(db, "WO-1")
    assert [(e["kind"], e["version"]) for e in events] == [
        ("created", 0),
        ("changed", 1),
        ("cancelled", 2),
    ]
    assert all(e["handled_at"] is None for e in events)
    actions = [e.action for e in await audit_entries(db, target_kind="planned_outage")]
    assert actions == ["planned.cancel", "planned.change", "planned.create"]


async def test_short_notice_and_holidays_need_override(
    db: Database, api: tuple[httpx.AsyncClient, Tokens]
) -> None:
    http, tokens = api
    op = tokens.headers("operator")
    soon = NOW + timedelta(days=2)
    refused = await http.post(URL, json=_body(soon), headers=op)
    assert refused.status_code == 409
    assert "notice period" in refused.json()["detail"]
    assert "override" in refused.json()["detail"]
    assert await planned_outages_between(db, NOW_S, NOW_S + 10 * 86400) == []
    forced = await http.post(URL, json=_body(soon, override=True), headers=op)
    assert forced.status_code == 201
    assert "notice period" in forced.json()["warnings"][0]
    assert forced.json()["planned"]["notice_override"] is True
    (event,) = await planned_events(db, "WO-1")
    assert event["short_notice"] is True
    tet = datetime.fromisoformat("2027-02-05T02:00:00+00:00")
    holiday = await http.post(URL, json=_body(tet, planned_id="WO-2"), headers=op)
    assert holiday.status_code == 409
    assert "Tết" in holiday.json()["detail"]
    # Moving a job into a holiday is refused the same way.
    moved = await http.put(
        f"{URL}/WO-1",
        json={
            "starts_at": tet.isoformat(),
            "ends_at": (tet + timedelta(hours=1)).isoformat(),
            "change_reason": "x",
        },
        headers=op,
    )
    assert moved.status_code == 409


@pytest.mark.parametrize(
    ("patch", "field", "status"),
    [
        ({"device_id": "NOPE"}, None, 404),
        ({"device_id": "T1'--"}, "device_id", 422),
        ({"planned_id": "a b"}, "planned_id", 422),
        ({"planned_id": "x" * 65}, "planned_id", 422),
        ({"starts_at": "2026-12-10T01:00:00"}, "starts_at", 422),
        ({"ends_at": "2026-12-10T00:00:00Z"}, "ends_at", 422),  # before the start
        ({"ends_at": "2026-12-30T00:00:00Z"}, "ends_at", 422),  # a 20-day window
        (
            {"starts_at": "2029-12-10T01:00:00Z", "ends_at": "2029-12-10T05:00:00Z"},
            "starts_at",
            422,
        ),
        ({"reason": ""}, "reason", 422),
        ({"reason": "x" * 501}, "reason", 422),
        ({"override": "maybe"}, "override", 422),
        ({"crew": "A"}, "crew", 422),
    ],
)
async def test_bad_planned_bodies(
    api: tuple[httpx.AsyncClient, Tokens], patch: dict[str, object], field: str | None, status: int
) -> None:
    http, tokens = api
    start = datetime.fromisoformat("2026-12-10T01:00:00+00:00")
    response = await http.post(
        URL, json={**_body(start), **patch}, headers=tokens.headers("operator")
    )
    assert response.status_code == status, response.text
    if field is not None:
        assert field in [f["field"] for f in response.json()["fields"]]
