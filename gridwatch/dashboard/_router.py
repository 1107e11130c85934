"""Serve the dashboard and the customer status page from an allow-list of files.

The files are read once when the router is built (a few tens of kB): a request can only
name a file in the list, so there is no path to traverse. Every answer carries a strict
Content-Security-Policy (scripts and connections to this origin only), since the pages
show data that came from the field (device names, reasons) and must never run it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

DASHBOARD_PATH = "/dashboard"
STATUS_PATH = "/status"
_STATIC_DIR = Path(__file__).resolve().parent / "static"


# The customer page is the notifier's PWA; it is served here too so that it exists even
# where the notifier's webhooks (and their /notify/app/ copy) are not mounted.
def _notifier_web_dir() -> Path:
    spec = importlib.util.find_spec("notifier")  # located, not imported (twilio is heavy)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the notifier package (its web/ folder) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "web"


_STATUS_DIR = _notifier_web_dir()
_MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}
_CSP_DASHBOARD = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
# The PWA keeps its small stylesheet inline (the notifier serves the same files).
_CSP_STATUS = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    media_type: str
    etag: str


def _load(directory: Path) -> dict[str, _File]:
    files: dict[str, _File] = {}
    for path in sorted(directory.iterdir()):
        media = _MEDIA.get(path.suffix)
        if media is None or not path.is_file():
            continue
        body = path.read_bytes()
        files[path.name] = _File(body, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    if "index.html" not in files:
        raise FileNotFoundError(f"{directory} has no index.html")
    return files


def dashboard_files() -> list[str]:
    """Names of the dashboard's static files (what ``/dashboard/<name>`` serves)."""
    return sorted(_load(_STATIC_DIR))


def status_files() -> list[str]:
    """Names of the customer page's files (what ``/status/<name>`` serves)."""
    return sorted(_load(_STATUS_DIR))


def _serve(files: dict[str, _File], name: str, request: Request, csp: str) -> Response:
    file = files.get(name)
    if file is None:
        raise HTTPException(404, "not found")
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # Revalidate every time: a new release must not mix old and new modules.
        "Cache-Control": "no-cache",
        "ETag": file.etag,
    }
    if request.headers.get("if-none-match") == file.etag:
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


def _redirect(request: Request, path: str) -> RedirectResponse:
    # Keep the query: the SMS link is /status?t=<token>.
    query = request.url.query
    return RedirectResponse(path + ("?" + query if query else ""), status_code=307)


def dashboard_router() -> APIRouter:
    """Routes for ``/dashboard/`` and ``/status/`` (left out of the OpenAPI document).

    Mount at the application root, not under ``/api/v1``: the pages are public (the
    dashboard asks for a token in the browser and sends it to the API itself).
    """
    dashboard = _load(_STATIC_DIR)
    status = _load(_STATUS_DIR)
    router = APIRouter(include_in_schema=False)

    @router.get(DASHBOARD_PATH)
    async def dashboard_root(request: Request) -> RedirectResponse:
        return _redirect(request, DASHBOARD_PATH + "/")

    @router.get(DASHBOARD_PATH + "/")
    async def dashboard_index(request: Request) -> Response:
        return _serve(dashboard, "index.html", request, _CSP_DASHBOARD)

    @router.get(DASHBOARD_PATH + "/config.json")
    async def dashboard_config(request: Request) -> dict[str, Any]:
        # The service's clock and local offset: "today" for SAIDI and the times shown are
        # the utility's, also in a replay whose clock is not the wall clock.
        state = request.app.state
        return {
            "api_base": "/api/v1",
            "local_utc_offset_h": float(state.api_settings.local_utc_offset_h),
            "now": datetime.fromtimestamp(state.clock.now_s(), UTC).isoformat(),
        }

    @router.get(DASHBOARD_PATH + "/{name}")
    async def dashboard_file(name: str, request: Request) -> Response:
        return _serve(dashboard, name, request, _CSP_DASHBOARD)

    @router.get(STATUS_PATH)
    async def status_root(request: Request) -> RedirectResponse:
        return _redirect(request, STATUS_PATH + "/")

    @router.get(STATUS_PATH + "/")
    async def status_index(request: Request) -> Response:
        return _serve(status, "index.html", request, _CSP_STATUS)

    @router.get(STATUS_PATH + "/{name}")
    async def status_file(name: str, request: Request) -> Response:
        return _serve(status, name, request, _CSP_STATUS)

    return router
