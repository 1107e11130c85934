"""The control API application.

Routers under ``/api/v1`` come in three kinds: operator routers (a viewer token at least,
enforced when mounted, so a new route cannot forget it; mutating routes ask for operator
themselves), the live stream (bearer token or a one-use ticket, checked in the route), and
the public and customer routers (no operator token; see ``PUBLIC_PATHS``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

import gridwatch
from gridwatch.api import (
    _customer_status,
    _customers,
    _dispatch,
    _health,
    _meters,
    _outages,
    _planned,
    _public,
    _reliability,
    _stream,
    _telemetry,
    _topology_routes,
)
from gridwatch.api._api_settings import ApiSettings
from gridwatch.api._auth import FailureLimiter, TokenCache, require_viewer
from gridwatch.api._errors import install_error_handlers
from gridwatch.api._feed import OutageFeed
from gridwatch.api._limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimit
from gridwatch.api._models import ErrorBody
from gridwatch.api._observe import RequestMetrics
from gridwatch.api._readiness import Readiness
from gridwatch.api._response_cache import ResponseCache
from gridwatch.core.clock import Clock, SystemClock
from gridwatch.core.settings import Settings
from gridwatch.dashboard import dashboard_router
from gridwatch.outages import OperatorDesk
from gridwatch.store import Database

API_V1_PREFIX = "/api/v1"
V1_ROUTERS: tuple[APIRouter, ...] = (
    _telemetry.router,
    _outages.router,
    _dispatch.router,
    _planned.router,
    _topology_routes.router,
    _meters.router,
    _customers.router,
    _reliability.router,
)
STREAM_ROUTERS: tuple[APIRouter, ...] = (_stream.router,)
PUBLIC_ROUTERS: tuple[APIRouter, ...] = (_public.router, _customer_status.router)
# Paths under /api/v1 that need no operator token (the authorisation tests check the rest).
PUBLIC_PATHS: frozenset[str] = frozenset(
    API_V1_PREFIX + route.path  # type: ignore[attr-defined]
    for router in PUBLIC_ROUTERS
    for route in router.routes
)


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid bearer token"},
    403: {"model": ErrorBody, "description": "The token's role is not enough"},
    429: {"model": ErrorBody, "description": "Too many failed attempts from this address"},
}


def create_app(
    *,
    db: Database,
    readiness: Readiness,
    settings: Settings,
    clock: Clock | None = None,
    routers: Sequence[APIRouter] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    api_settings: ApiSettings | None = None,
    desk: OperatorDesk | None = None,
) -> FastAPI:
    """The FastAPI app over an open ``db``. The caller owns the database's lifetime.

    ``routers`` are mounted under ``/api/v1`` after the built-in ones, behind a viewer
    token like every operator route.

    ``desk`` applies the operator actions (the service's hands them to its detection
    runner); without one the API gets a desk of its own that only commits.
    """
    api = api_settings or ApiSettings()
    feed = OutageFeed(
        db, queue_max=api.stream_queue_max, subscribers_max=api.stream_subscribers_max
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        feed.start()  # LISTEN from start-up, so list caches are valid and streams start fast
        try:
            yield
        finally:
            await feed.stop()

    app = FastAPI(
        title="gridwatch control API",
        version=getattr(gridwatch, "__version__", "0.1.0"),
        description=(
            "Outage detection and restoration-time estimation for a distribution utility. "
            "Operator routes need `Authorization: Bearer <token>` (roles viewer < operator "
            "< admin; every change needs operator). "
            "Errors are JSON: `{error, detail, fields}`; `fields` names each invalid parameter."
        ),
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.readiness = readiness
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.operator_desk = desk or OperatorDesk(db, app.state.clock)
    app.state.api_settings = api
    app.state.outage_feed = feed
    app.state.auth_limiter = FailureLimiter(api.auth_failures_max, api.auth_failure_window_s)
    app.state.token_cache = TokenCache(api.token_cache_s)
    app.state.outage_list_cache = ResponseCache(api.outage_list_cache_s)
    app.state.stream_tickets = _stream.StreamTickets()
    install_error_handlers(app)
    app.include_router(_health.router)
    app.include_router(dashboard_router())  # /dashboard/ and /status/: static, public pages
    for router in (*V1_ROUTERS, *routers):
        app.include_router(
            router,
            prefix=API_V1_PREFIX,
            dependencies=[Depends(require_viewer)],
            responses=AUTH_RESPONSES,
        )
    for router in (*STREAM_ROUTERS, *PUBLIC_ROUTERS):
        app.include_router(router, prefix=API_V1_PREFIX)
    # Added last = outermost: oversized bodies are refused before anything else runs.
    app.add_middleware(RequestMetrics)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    return app
