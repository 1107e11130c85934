"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright
(never ``playwright install``: it downloads browsers, which this project cannot do).

``watched_page`` collects what must not happen during a test: console errors, uncaught
page errors and 5xx answers; a test may allow the 4xx it provokes on purpose.
``served_dashboard`` runs the app under a real uvicorn with such a page open beside it, and
``sign_in`` opens the operator dashboard with a token.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright

from gridwatch.api import ApiServer, OutageFeed
from gridwatch.store import Database
from tests.api_support import make_app

CHROMIUM = os.environ.get("GRIDWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
WAIT_MS = 10_000  # how long a test waits for the page to show something
_LOAD_FAILED = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


def require_chromium() -> None:
    if Path(CHROMIUM).is_file():
        return
    message = (
        f"no Chromium at {CHROMIUM}: install Debian's (apt-get install -y chromium) "
        "or point GRIDWATCH_CHROMIUM at one"
    )
    if os.environ.get("GRIDWATCH_BROWSER_TESTS") == "skip":
        pytest.skip(message)
    pytest.fail(message)


@dataclass
class PageWatch:
    problems: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        # The browser logs every 4xx a fetch gets; the ones a test provokes are expected.
        failed = _LOAD_FAILED.search(text)
        if failed and int(failed.group(1)) in self.allowed_statuses:
            return
        self.problems.append(f"console: {text}")

    def on_page_error(self, error: Exception) -> None:
        self.problems.append(f"page error: {error}")

    def on_response(self, response: Response) -> None:
        if response.status >= 500:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def watched_page(
    browser: Browser, *, width: int = 1280, height: int = 900
) -> AsyncIterator[tuple[Page, PageWatch]]:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN")
    page = await context.new_page()
    watch = PageWatch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    page.on("response", watch.on_response)
    try:
        yield page, watch
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class ServedDashboard:
    url: str  # the uvicorn server's base URL
    http: httpx.AsyncClient  # a client of that server, for what the page does not show
    page: Page
    watch: PageWatch


@asynccontextmanager
async def served_dashboard(db: Database) -> AsyncIterator[ServedDashboard]:
    """``make_app(db)`` under a real uvicorn, its outage feed listening (so every change
    reaches the page live), a client of it and a watched page at 1280x900."""
    app = make_app(db)
    async with (
        ApiServer(app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        chromium() as browser,
        watched_page(browser) as (page, watch),
    ):
        feed: OutageFeed = app.state.outage_feed
        await asyncio.wait_for(feed.listening.wait(), 10)
        yield ServedDashboard(server.url, http, page, watch)


async def submit_token(page: Page, token: str) -> None:
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def sign_in(page: Page, url: str, token: str) -> None:
    """Open the dashboard at ``url`` and sign in with ``token``, until the app shows."""
    await page.goto(f"{url}/dashboard/")
    await submit_token(page, token)
    await page.locator("#app").wait_for(state="visible", timeout=WAIT_MS)
