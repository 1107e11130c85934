"""Authorisation matrix over EVERY route of the app (a new route without auth fails here),
token storage, role rules and the failed-authentication limit."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from gridwatch.api import API_V1_PREFIX, PUBLIC_PATHS, ApiServer, create_token, hash_token
from gridwatch.store import Database
from gridwatch.store.auth import revoke_api_token
from tests.api_support import Tokens, client_for, make_app, make_tokens, seed_network, seed_outages

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _v1_routes() -> list[tuple[str, str]]:
    """Every (method, path) under /api/v1 the app serves, read from the app itself: its
    OpenAPI document, plus the routes of every router it includes (in case one hides
    from the schema)."""
    app = make_app(None)  # type: ignore[arg-type]  # routes only; no request is served
    found = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith(API_V1_PREFIX)
        for method in item
    }
    for route in app.routes:
        router = getattr(route, "original_router", None)
        prefix = getattr(getattr(route, "include_context", None), "prefix", None)
        for inner in getattr(router, "routes", ()):
            if isinstance(inner, APIRoute) and prefix == API_V1_PREFIX:
                found.update((m, prefix + inner.path) for m in inner.methods if m != "HEAD")
    return sorted(found)


ROUTES = _v1_routes()
PROTECTED = [r for r in ROUTES if r[1] not in PUBLIC_PATHS]


def _concrete(path: str) -> str:
    # Path parameters get harmless values that exist or not; either way auth comes first.
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.fixture
async def env(db: Database) -> AsyncIterator[tuple[FastAPI, Tokens]]:
    await seed_network(db)
    await seed_outages(db)
    return make_app(db), await make_tokens(db)


async def _call(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    if path.endswith("/stream/outages"):
        async with http.stream(method, _concrete(path), headers=headers) as response:
            return response  # status only: the body is endless
    return await http.request(method, _concrete(path), headers=headers, json={})


def test_the_matrix_sees_every_kind_of_route() -> None:
    methods = {m for m, _ in PROTECTED}
    assert {"GET", "POST", "PUT"} <= methods
    assert len(PROTECTED) >= 25
    assert {f"{API_V1_PREFIX}/public/summary", f"{API_V1_PREFIX}/customer/status"} == PUBLIC_PATHS


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
async def test_every_operator_route_by_role(
    env: tuple[FastAPI, Tokens], method: str, path: str
) -> None:
    app, tokens = env
    # A real server: the live stream's body never ends, which only real streaming handles.
    async with ApiServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        anonymous = await _call(http, method, path, {})
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        viewer = await _call(http, method, path, tokens.headers("viewer"))
        operator = await _call(http, method, path, tokens.headers("operator"))
        garbage = await _call(http, method, path, {"Authorization": "Bearer gw_nonsense"})
    assert garbage.status_code == 401
    if method in MUTATING and not path.endswith("/stream/tickets"):
        assert viewer.status_code == 403, (method, path, viewer.text)
        assert "operator" in viewer.json()["detail"]
    else:
        assert viewer.status_code not in (401, 403), (method, path, viewer.text)
    assert operator.status_code not in (401, 403), (method, path, operator.text)
    assert operator.status_code < 500


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[1] in PUBLIC_PATHS], ids=str)
async def test_public_routes_need_no_operator_token(
    env: tuple[FastAPI, Tokens], method: str, path: str
) -> None:
    app, _ = env
    async with client_for(app) as http:
        response = await _call(http, method, path, {})
    # The customer routes answer 401/422 on their own terms (no or bad proof), never 5xx.
    assert response.status_code in (200, 401, 422)


async def test_tokens_are_stored_hashed_and_revocable(db: Database) -> None:
    token = await create_token(db, "operator", "night shift")
    assert token.startswith("gw_")
    assert len(token) >= 40
    async with db.connection() as conn:
        cur = await conn.execute("SELECT token_sha256, role, name FROM api_tokens")
        rows = await cur.fetchall()
    assert rows == [(hashlib.sha256(token.encode()).digest(), "operator", "night shift")]
    assert token.encode() not in rows[0][0]
    app = make_app(db, token_cache_s=0)
    async with client_for(app) as http:
        headers = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/api/v1/outages", headers=headers)).status_code == 200
        async with db.connection() as conn:
            cur = await conn.execute("SELECT token_id FROM api_tokens")
            (token_id,) = await cur.fetchone()  # type: ignore[misc]
        assert await revoke_api_token(db, token_id)
        assert (await http.get("/api/v1/outages", headers=headers)).status_code == 401


async def test_create_token_refuses_bad_role_and_name(db: Database) -> None:
    from gridwatch import StoreError

    with pytest.raises(StoreError, match="role"):
        await create_token(db, "root", "x")
    with pytest.raises(StoreError, match="name"):
        await create_token(db, "viewer", "   ")
    assert hash_token("a") != hash_token("b")


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer " + "gw_" + "A" * 5000,
        "Bearer gw_' OR '1'='1",
        b"Bearer gw_\xff\xfe\x01",
        "bearer  ",
    ],
)
async def test_hostile_authorization_headers_are_401(
    env: tuple[FastAPI, Tokens], header: str | bytes
) -> None:
    app, _ = env
    async with client_for(app) as http:
        response = await http.get("/api/v1/outages", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_failed_authentication_is_rate_limited_per_address(
    env: tuple[FastAPI, Tokens],
) -> None:
    db_app, tokens = env
    app = make_app(db_app.state.db, auth_failures_max=3, auth_failure_window_s=60)
    bad = {"Authorization": "Bearer gw_wrong-token-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}
    async with client_for(app, ip="10.9.9.9") as attacker, client_for(app, ip="10.1.1.1") as other:
        for _ in range(3):
            assert (await attacker.get("/api/v1/outages", headers=bad)).status_code == 401
        blocked = await attacker.get("/api/v1/outages", headers=bad)
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
        # Even a good token waits out the block from that address...
        good = tokens.headers("viewer")
        assert (await attacker.get("/api/v1/outages", headers=good)).status_code == 429
        # ...while other addresses are not affected, and a missing token is no guess.
        assert (await other.get("/api/v1/outages", headers=good)).status_code == 200
        for _ in range(5):
            assert (await other.get("/api/v1/outages")).status_code == 401
        assert (await other.get("/api/v1/outages", headers=good)).status_code == 200


async def test_admin_sees_what_operator_sees(env: tuple[FastAPI, Tokens]) -> None:
    app, tokens = env
    async with client_for(app) as http:
        for role in ("viewer", "operator", "admin"):
            assert (
                await http.get("/api/v1/outages", headers=tokens.headers(role))
            ).status_code == 200
