"""The dashboard's feeder map in headless Chromium against a real uvicorn and PostgreSQL:
hidden with a note while no device has a position; with positions, the map draws the
network, the outage device carries its state (marker, label, aria-label), the devices below
it are shown without supply, a marker opens the outage, and restoring the outage through
the API recolours the map live (no reload). No console error and no 5xx."""

from __future__ import annotations

import pytest

from gridwatch.store import Database
from tests.api_support import POSITIONS, place_devices, seed_all
from tests.browser_support import WAIT_MS, screenshot, served_dashboard, sign_in

pytestmark = pytest.mark.timeout(240)


async def test_feeder_map_live(db: Database) -> None:
    ids, tokens = await seed_all(db)
    async with served_dashboard(db) as ui:
        page, watch, http = ui.page, ui.watch, ui.http

        # No positions yet: no Map button, a short note instead; the tree is shown.
        await sign_in(page, ui.url, tokens.operator)
        await page.locator("#map-none").wait_for(state="visible", timeout=WAIT_MS)
        assert await page.locator("#view-map").is_hidden()
        assert await page.locator("#tree").is_visible()

        # With positions (S2's feeder has none), the Map button appears after a reload.
        await place_devices(db, POSITIONS)
        await page.reload()
        await page.locator("#view-map").wait_for(state="visible", timeout=WAIT_MS)
        assert await page.locator("#map-none").is_hidden()
        await page.locator("#live[data-state=live]").wait_for(timeout=WAIT_MS)
        await page.get_by_role("button", name="Map", exact=True).click()
        assert await page.locator("#view-map").get_attribute("aria-pressed") == "true"
        assert await page.locator("#tree").is_hidden()

        svg = page.locator("#map-svg")
        r1 = svg.locator(".mk[data-device-id='R1']")
        await r1.wait_for(timeout=WAIT_MS)
        assert await r1.get_attribute("data-state") == "confirmed"
        label = await r1.get_attribute("aria-label") or ""
        assert f"Open outage {ids['O-R1']}, confirmed" in label
        assert "Recloser Hai Bà Trưng" in label
        assert await r1.locator("text").text_content() == f"#{ids['O-R1']} confirmed"
        assert await svg.locator(".mk[data-device-id='T3']").get_attribute("data-state") == (
            "predicted"
        )

        async def dot_state(device_id: str) -> str | None:
            return await svg.locator(f".dot[data-device-id='{device_id}']").get_attribute(
                "data-state"
            )

        assert await dot_state("T1") == "dark"
        assert await dot_state("T2") == "dark"
        assert await dot_state("B1") == "below"
        assert await dot_state("S1") == "below"
        assert await svg.locator(".dot").count() == 7  # S2, B3, T4 have no position
        assert await svg.locator(".dot[data-device-id='S2']").count() == 0
        t1_line = svg.locator(".edge[data-child-id='T1']")
        assert "e-dark" in (await t1_line.get_attribute("class") or "")
        assert "no supply" in (await t1_line.locator("title").text_content() or "")
        assert "no supply" in (
            await svg.locator(".dot[data-device-id='T1'] title").text_content() or ""
        )
        assert "e-dark" not in (
            await svg.locator(".edge[data-child-id='R1']").get_attribute("class") or ""
        )
        summary = page.locator("#map-summary")
        assert "7 of 10 devices placed" in (await summary.text_content() or "")
        assert "2 outages on the map" in (await summary.text_content() or "")
        # The drawing fits its card: equirectangular with cos(lat), aspect kept.
        box = await svg.bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert box["height"] > 150
        await screenshot(page, "dashboard-1280-map.png")

        # A marker opens its outage, by keyboard too.
        await svg.locator(".mk[data-device-id='T3']").focus()
        await page.keyboard.press("Enter")
        detail = page.locator("#detail")
        await detail.locator("#detail-title", has_text=f"#{ids['O-T3']}").wait_for(timeout=WAIT_MS)
        await r1.click()
        await detail.locator("#detail-title", has_text=f"#{ids['O-R1']}").wait_for(timeout=WAIT_MS)

        # Restored through the API (another client): the map follows the live stream.
        await page.evaluate("window.__sameDocument = true")
        restored = await http.post(
            f"/api/v1/outages/{ids['O-R1']}/restore",
            json={"reason": "recloser closed, feeder back"},
            headers=tokens.headers("operator"),
        )
        assert restored.status_code == 200, restored.text
        await r1.wait_for(state="detached", timeout=WAIT_MS)
        await svg.locator(".dot[data-device-id='T1'][data-state='ok']").wait_for(timeout=WAIT_MS)
        assert await dot_state("R1") == "ok"
        assert await dot_state("B1") == "ok"
        assert await dot_state("B2") == "below"  # T3's predicted outage is still open
        assert "e-dark" not in (await t1_line.get_attribute("class") or "")
        assert await svg.locator(".mk").count() == 1
        assert "1 outage on the map" in (await summary.text_content() or "")
        assert await page.evaluate("window.__sameDocument") is True  # never reloaded
        await screenshot(page, "dashboard-1280-map-restored.png")

        # "Show in feeder view" from the detail, with the map open, rings the device there.
        await page.get_by_role("button", name="Show in feeder view").click()
        await svg.locator("circle.sel").wait_for(timeout=WAIT_MS)
        assert await page.locator("#map").is_visible()

        # A phone: the map shrinks with its card, nothing wider than the screen.
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.wait_for_timeout(200)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        box = await svg.bounding_box()
        assert box is not None
        assert box["width"] <= 390

        # Back to the tree: the toggle works both ways.
        await page.set_viewport_size({"width": 1280, "height": 900})
        await page.get_by_role("button", name="Tree", exact=True).click()
        await page.locator(".node[data-device-id='S1']").wait_for(timeout=WAIT_MS)
        assert await page.locator("#map").is_hidden()
        watch.assert_clean()
