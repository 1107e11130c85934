"""The customer status page in headless Chromium against a real uvicorn and PostgreSQL:
look-up by account and phone digits (a wrong guess is refused), the outage with its ETR
window, Vietnamese by default with an English toggle that sticks, the signed SMS link
with the customer's history, a forged link refused, and a phone-width layout."""

from __future__ import annotations

import pytest

from gridwatch.api import ApiServer, link_token
from gridwatch.store import Database
from gridwatch.store.etr import EtrRow, record_etrs
from tests.api_support import NOW_S, SECRET, make_app, seed_network, seed_outages
from tests.browser_support import chromium, screenshot, watched_page

pytestmark = pytest.mark.timeout(240)
WAIT_MS = 10_000


async def test_customer_looks_up_their_outage_in_both_languages(db: Database) -> None:
    await seed_network(db)
    ids = await seed_outages(db)
    # ETR window for O-R1: 17:00-18:30 local (+07), likely 17:30.
    p10_s, p50_s, p90_s = NOW_S + 1800, NOW_S + 3600, NOW_S + 7200
    await record_etrs(
        db, [EtrRow(ids["O-R1"], NOW_S, p10_s, p50_s, p90_s, "model", "etr-test-1", {})]
    )
    async with (
        ApiServer(make_app(db)) as server,
        chromium() as browser,
        watched_page(browser, width=390, height=844) as (page, watch),
    ):
        await page.goto(f"{server.url}/status")
        assert await page.evaluate("document.documentElement.lang") == "vi"
        await page.get_by_role("heading", name="Tình trạng điện", exact=True).wait_for(
            timeout=WAIT_MS
        )

        # A wrong guess: a message, no data.
        watch.allowed_statuses.add(401)
        await page.get_by_label("Mã khách hàng").fill("ACC-1")
        await page.get_by_label("4 số cuối điện thoại").fill("9999")
        await page.get_by_role("button", name="Xem tình trạng").click()
        await page.locator("#error", has_text="không khớp").wait_for(timeout=WAIT_MS)
        assert await page.locator("#status section").count() == 0
        watch.allowed_statuses.clear()

        # Malformed digits never leave the page.
        await page.get_by_label("4 số cuối điện thoại").fill("12a")
        await page.get_by_role("button", name="Xem tình trạng").click()
        await page.locator("#error", has_text="4 chữ số").wait_for(timeout=WAIT_MS)

        await page.get_by_label("4 số cuối điện thoại").fill("0001")
        await page.get_by_role("button", name="Xem tình trạng").click()
        card = page.locator(f"section[data-outage-id='{ids['O-R1']}']")
        await card.wait_for(timeout=WAIT_MS)
        window = await card.locator("[data-etr=window]").text_content()
        assert window is not None
        assert "16:00" in window
        assert "17:30" in window
        # No crew has reported on O-R1: the page claims no work (issue 15).
        assert "Đã xác nhận mất điện, đang bố trí tổ sửa chữa" in (await card.text_content() or "")
        await page.locator("#history", has_text="Không có lần mất điện").wait_for()
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await screenshot(page, "status-390-vi.png")

        # English, and it sticks across a reload.
        await page.get_by_role("button", name="English").click()
        assert await page.evaluate("document.documentElement.lang") == "en"
        await card.locator("h3", has_text="Expected back").wait_for()
        assert "Outage confirmed, crew being assigned" in (await card.text_content() or "")
        await screenshot(page, "status-390-en.png")
        await page.reload()
        await page.get_by_role("heading", name="Power status", exact=True).wait_for(timeout=WAIT_MS)
        await page.get_by_role("button", name="Tiếng Việt").wait_for()
        watch.assert_clean()


async def test_signed_link_shows_history_and_forged_link_is_refused(db: Database) -> None:
    await seed_network(db)
    ids = await seed_outages(db)
    good = link_token("C6", SECRET.encode())
    async with (
        ApiServer(make_app(db)) as server,
        chromium() as browser,
        watched_page(browser) as (page, watch),
    ):
        await page.goto(f"{server.url}/status?t={good}")
        await page.locator("#no-outage").wait_for(timeout=WAIT_MS)
        item = page.locator(f"#history li[data-outage-id='{ids['O-T4']}']")
        await item.wait_for()
        text = await item.text_content() or ""
        assert "Đã có điện" in text
        assert "kéo dài" in text
        assert await page.locator("#lookup").is_hidden()
        # Alerts are offered with the link; without the notifier mounted they say so.
        watch.allowed_statuses.add(404)
        await page.get_by_role("button", name="Nhận thông báo").click()
        await page.locator("#note", has_text="chưa sẵn sàng").wait_for(timeout=WAIT_MS)
        await screenshot(page, "status-1280-link-history.png")

        watch.allowed_statuses.add(401)
        forged = "C1." + "0" * 32
        await page.goto(f"{server.url}/status/?t={forged}")
        await page.locator("#error", has_text="Liên kết không hợp lệ").wait_for(timeout=WAIT_MS)
        assert await page.locator("#lookup").is_visible()
        assert await page.locator("#status section").count() == 0
        watch.assert_clean()
