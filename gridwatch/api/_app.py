"""The control API application.

Later capabilities add routers (outages, auth, live stream, dashboard) under ``/api/v1``
by passing them to ``create_app(routers=...)`` or by adding them to ``V1_ROUTERS``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

import gridwatch
from gridwatch._clock import Clock, SystemClock
from gridwatch._settings import Settings
from gridwatch.api import _health, _telemetry
from gridwatch.api._errors import install_error_handlers
from gridwatch.api._limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimit
from gridwatch.api._observe import RequestMetrics
from gridwatch.api._readiness import Readiness
from gridwatch.store import Database

API_V1_PREFIX = "/api/v1"
V1_ROUTERS: tuple[APIRouter, ...] = (_telemetry.router,)


def create_app(
    *,
    db: Database,
    readiness: Readiness,
    settings: Settings,
    clock: Clock | None = None,
    routers: Sequence[APIRouter] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The FastAPI app over an open ``db``. The caller owns the database's lifetime.

    ``routers`` are mounted under ``/api/v1`` after the built-in ones.
    """
    app = FastAPI(
        title="gridwatch control API",
        version=getattr(gridwatch, "__version__", "0.1.0"),
        description=(
            "Outage detection and restoration-time estimation for a distribution utility. "
            "Errors are JSON: `{error, detail, fields}`; `fields` names each invalid parameter."
        ),
    )
    app.state.db = db
    app.state.readiness = readiness
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    install_error_handlers(app)
    app.include_router(_health.router)
    for router in (*V1_ROUTERS, *routers):
        app.include_router(router, prefix=API_V1_PREFIX)
    # Added last = outermost: oversized bodies are refused before anything else runs.
    app.add_middleware(RequestMetrics)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    return app
