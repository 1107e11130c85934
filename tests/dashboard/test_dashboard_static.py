"""The dashboard's and the status page's files as served: allow-listed names only (hostile
paths are 404, never a file outside the list and never 5xx), strict security headers,
revalidation, every module import and page reference resolving to a served file, and
nothing fetched from another origin (no CDN, no build step)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gridwatch.dashboard import dashboard_files, status_files
from tests.api_support import NOW, client_for, make_app

STATIC = Path(__file__).resolve().parents[2] / "gridwatch" / "dashboard" / "static"
STATUS = Path(__file__).resolve().parents[2] / "notifier" / "web"
MEDIA = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
    "webmanifest": "application/manifest+json",
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(None)  # type: ignore[arg-type]  # static routes never touch the database
    async with client_for(app) as http:
        yield http


async def test_bare_paths_redirect_keeping_the_query(client: httpx.AsyncClient) -> None:
    dashboard = await client.get("/dashboard")
    assert dashboard.status_code == 307
    assert dashboard.headers["location"] == "/dashboard/"
    status = await client.get("/status", params={"t": "C1.abc"})
    assert status.status_code == 307
    assert status.headers["location"] == "/status/?t=C1.abc"


@pytest.mark.parametrize(
    ("prefix", "names"), [("/dashboard/", dashboard_files()), ("/status/", status_files())]
)
async def test_every_file_is_served_with_its_type_and_headers(
    client: httpx.AsyncClient, prefix: str, names: list[str]
) -> None:
    assert "index.html" in names
    assert "app.js" in names
    for name in names:
        response = await client.get(prefix + name)
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(MEDIA[name.rsplit(".", 1)[1]]), name
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"
        again = await client.get(prefix + name, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""
    index = await client.get(prefix)
    assert index.status_code == 200
    assert index.text == (await client.get(prefix + "index.html")).text


def test_dashboard_csp_allows_no_inline_script_or_style() -> None:
    # The dashboard renders field data (device names, reasons): no inline code at all.
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(
        r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML",
        "".join(p.read_text() for p in STATIC.glob("*.js")),
    )


@pytest.mark.parametrize(
    "name",
    [
        "..%2F_router.py",
        "..%2f..%2fpyproject.toml",
        "%2e%2e%2f__init__.py",
        "_router.py",
        "index.html%00.js",
        "INDEX.HTML",
        "app.js.map",
        "x" * 5000,
        "%F0%9F%92%A5.js",
        "..",
        "static%2Fapp.js",
    ],
)
async def test_hostile_names_are_not_found(client: httpx.AsyncClient, name: str) -> None:
    for prefix in ("/dashboard/", "/status/"):
        response = await client.get(prefix + name)
        assert response.status_code == 404, (prefix, name, response.status_code)
        assert response.json()["error"] == "not_found"


async def test_config_tells_the_service_clock_and_local_offset(client: httpx.AsyncClient) -> None:
    config = (await client.get("/dashboard/config.json")).json()
    assert config == {
        "api_base": "/api/v1",
        "local_utc_offset_h": 7.0,
        "now": NOW.isoformat(),
    }


async def test_pages_stay_out_of_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(("/dashboard", "/status"))]


def _references(path: Path) -> set[str]:
    text = path.read_text()
    if path.suffix == ".js":
        found = set(re.findall(r"""^\s*import\b[^'"]*['"]\./([^'"]+)['"]""", text, re.M))
        return found | set(re.findall(r"""register\(["']([^"'/]+)["']\)""", text))
    return set(re.findall(r"""(?:src|href)="(?!https?:|#|/)([^"?]+)""", text))


@pytest.mark.parametrize(
    ("folder", "names"), [(STATIC, dashboard_files()), (STATUS, status_files())]
)
def test_every_reference_is_a_served_file_and_none_leaves_the_origin(
    folder: Path, names: list[str]
) -> None:
    for path in folder.iterdir():
        if path.suffix not in (".html", ".js", ".css", ".webmanifest"):
            continue
        text = path.read_text()
        assert not re.search(r"""["'(]\s*(https?:)?//""", text), f"{path.name} names another origin"
        missing = _references(path) - set(names)
        assert not missing, f"{path.name} refers to files that are not served: {missing}"
