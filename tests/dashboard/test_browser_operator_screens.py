"""Operator screens in headless Chromium against a real uvicorn and PostgreSQL (issue 15):
a device without a name is labelled by its id with its kind as a tag, the timeline shows
times as local times, durations in minutes and plain labels (never raw ``key=value``),
the crew/dispatch view lists every active outage with its crew status and lets an operator
set it (a viewer is told it needs the operator role), and the map zooms (wheel, +/-),
pans (drag) and resets, markers keeping their size and opening their outage.
No console error and no 5xx."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page

from gridwatch.store import Database
from gridwatch.store.outages import OutageRow, TimelineRow, save_outages
from tests.api_support import NOW_S, POSITIONS, place_devices, seed_all
from tests.browser_support import WAIT_MS, screenshot, served_dashboard, sign_in

pytestmark = pytest.mark.timeout(240)
UNNAMED = "Z01-S01-F01-BRK"


async def _seed_unnamed_breaker(db: Database) -> int:
    """A breaker with no name under S1, with an outage whose timeline has epoch seconds,
    a duration, a confidence and a list of meters."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, parent_id, kind, zone, name)"
            " VALUES (%s, 'S1', 'breaker', 'Z1', '')",
            [UNNAMED],
        )
    row = OutageRow(
        "O-BRK", UNNAMED, "Z1", "confirmed", "scada", NOW_S - 1800, NOW_S - 1700, None,
        0.9, 0, 0, 0, 0, None,
    )  # fmt: skip
    first_trip: dict[str, object] = {"shots": 3, "first_trip_s": NOW_S - 1800}
    predicted: dict[str, object] = {
        "why": "scada lockout",
        "confidence": 0.912345,
        "meters": ["M1", "M2"],
    }
    lockout: dict[str, object] = {"operation": "lockout", "dead_duration_s": 720}
    timeline = [
        TimelineRow("O-BRK", NOW_S - 1800, "reclose_shots", first_trip),
        TimelineRow("O-BRK", NOW_S - 1790, "predicted", predicted),
        TimelineRow("O-BRK", NOW_S - 1700, "scada", lockout),
    ]
    return (await save_outages(db, [row], [], timeline))["O-BRK"]


async def test_device_label_and_readable_timeline(db: Database) -> None:
    ids, tokens = await seed_all(db)
    brk = await _seed_unnamed_breaker(db)
    async with served_dashboard(db) as ui:
        page, watch = ui.page, ui.watch
        await sign_in(page, ui.url, tokens.operator)
        await page.get_by_role("button", name=f"Outage {brk} on {UNNAMED}").click()
        detail = page.locator("#detail")
        await detail.locator("#detail-title", has_text=f"#{brk}").wait_for(timeout=WAIT_MS)

        device = detail.locator("[data-field=device]")
        assert (await device.text_content() or "").strip() == f"{UNNAMED} · breaker"
        assert "(breaker" not in (await detail.text_content() or "")

        timeline = detail.locator("#timeline")
        text = await timeline.text_content() or ""
        assert not re.search(r"\w=\S", text), text  # no raw key=value
        assert str(int(NOW_S - 1800)) not in text  # no epoch seconds
        # 08:00 UTC is 15:00 in the utility's zone (UTC+7), shown as the other times are.
        first_trip = timeline.locator("[data-key=first_trip_s]")
        assert (await first_trip.text_content() or "").strip() == "first trip 2026-11-23 15:00"
        assert await first_trip.locator("time").get_attribute("datetime") == (
            "2026-11-23T08:00:00.000Z"
        )
        dead = timeline.locator("[data-key=dead_duration_s]")
        assert (await dead.text_content() or "").strip() == "dead duration 12 min"
        confidence = timeline.locator("[data-key=confidence]")
        assert (await confidence.text_content() or "").strip() == "confidence 91 %"
        meters = timeline.locator("[data-key=meters]")
        assert (await meters.text_content() or "").strip() == "meters 2"
        kinds = await timeline.locator(".kind").all_text_contents()
        assert kinds == ["Reclose shots", "Predicted", "SCADA operation"]
        await screenshot(page, "dashboard-1280-timeline.png")

        # A named device keeps its name, with kind and id beside it.
        await page.get_by_role("button", name=f"Outage {ids['O-R1']} on R1").click()
        await detail.locator("#detail-title", has_text=f"#{ids['O-R1']}").wait_for(timeout=WAIT_MS)
        assert (await device.text_content() or "").strip() == (
            "Recloser Hai Bà Trưng · recloser · R1"
        )
        watch.assert_clean()


async def test_crew_view_sets_and_shows_crew_status(db: Database) -> None:
    ids, tokens = await seed_all(db)
    async with served_dashboard(db) as ui:
        page, watch = ui.page, ui.watch
        await sign_in(page, ui.url, tokens.operator)
        board = page.locator("#crews")
        rows = board.locator("tbody tr")
        await rows.first.wait_for(timeout=WAIT_MS)
        # Every active outage, most customers out first; nobody sent yet.
        shown = await rows.evaluate_all("rs => rs.map(r => Number(r.dataset.outageId))")
        assert shown == [ids["O-R1"], ids["O-T3"]]
        r1 = board.locator(f"tbody tr[data-outage-id='{ids['O-R1']}']")
        assert (await r1.locator("[data-field=crew]").text_content() or "").strip() == "no crew"
        assert "2 without a crew" in (await page.locator("#crew-counts").text_content() or "")

        # Dispatch a crew: the reason is required, then the row and the API agree.
        await r1.get_by_role("button", name=f"Set crew for outage {ids['O-R1']}").click()
        form = page.locator("#crew-form")
        await form.wait_for(state="visible", timeout=WAIT_MS)
        assert f"#{ids['O-R1']}" in (await form.locator("legend").text_content() or "")
        await page.get_by_label("Crew status").select_option("dispatched")
        await form.get_by_role("button", name="Save crew status").click()
        await page.locator("#crew-error", has_text="reason is required").wait_for()
        await page.get_by_label("Reason for the crew change").fill("crew 3 sent from depot")
        await form.get_by_role("button", name="Save crew status").click()
        await r1.locator("[data-field=crew]", has_text="dispatched").wait_for(timeout=WAIT_MS)
        assert (await r1.locator("[data-field=crew-since]").text_content() or "").startswith(
            "15:30"
        )
        assert "operator one" in (await r1.locator("[data-field=crew-since]").text_content() or "")
        detail = (
            await ui.http.get(f"/api/v1/outages/{ids['O-R1']}", headers=tokens.headers("viewer"))
        ).json()
        assert detail["crew"]["status"] == "dispatched"

        # On site with a cause; the outage detail shows the crew and its timeline entries.
        await r1.get_by_role("button", name=f"Set crew for outage {ids['O-R1']}").click()
        await page.get_by_label("Crew status").select_option("on_site")
        await page.get_by_label("Cause found (optional)").fill("tree on line")
        await page.get_by_label("Reason for the crew change").fill("crew 3 arrived")
        await form.get_by_role("button", name="Save crew status").click()
        await r1.locator("[data-field=crew]", has_text="on site · tree on line").wait_for(
            timeout=WAIT_MS
        )
        assert "1 on site" in (await page.locator("#crew-counts").text_content() or "")
        await r1.get_by_role("button", name=f"Outage {ids['O-R1']}", exact=True).click()
        detail_card = page.locator("#detail")
        await detail_card.locator("#detail-title", has_text=f"#{ids['O-R1']}").wait_for(
            timeout=WAIT_MS
        )
        assert "on site" in (await detail_card.locator("[data-field=crew]").text_content() or "")
        crew_entries = detail_card.locator("#timeline li[data-kind=crew_status]")
        assert await crew_entries.count() == 2
        assert "status on site" in (await crew_entries.nth(1).text_content() or "")
        await screenshot(page, "dashboard-1280-crews.png")
        watch.assert_clean()


async def test_crew_view_for_a_viewer_offers_no_action(db: Database) -> None:
    ids, tokens = await seed_all(db)
    async with served_dashboard(db) as ui:
        page, watch = ui.page, ui.watch
        await sign_in(page, ui.url, tokens.viewer)
        board = page.locator("#crews")
        await board.locator(f"tbody tr[data-outage-id='{ids['O-R1']}']").wait_for(timeout=WAIT_MS)
        assert await board.get_by_role("button", name=re.compile("^Set crew")).count() == 0
        await page.locator("#crew-role-note", has_text="operator role").wait_for(timeout=WAIT_MS)
        watch.assert_clean()


async def _view_box(page: Page) -> list[float]:
    text = await page.locator("#map-svg").get_attribute("viewBox") or ""
    return [float(x) for x in text.split()]


async def _drawing_point(page: Page, x: float, y: float) -> list[float]:
    """The map's drawing coordinates under the screen point (x, y)."""
    point: list[float] = await page.evaluate(
        """([x, y]) => {
            const svg = document.querySelector('#map-svg');
            const p = new DOMPoint(x, y).matrixTransform(svg.getScreenCTM().inverse());
            return [p.x, p.y];
        }""",
        [x, y],
    )
    return point


async def test_map_zoom_pan_and_reset(db: Database) -> None:
    ids, tokens = await seed_all(db)
    await place_devices(db, POSITIONS)
    async with served_dashboard(db) as ui:
        page, watch = ui.page, ui.watch
        await sign_in(page, ui.url, tokens.operator)
        await page.get_by_role("button", name="Map", exact=True).click()
        svg = page.locator("#map-svg")
        r1 = svg.locator(".mk[data-device-id='R1']")
        await r1.wait_for(timeout=WAIT_MS)
        whole = await _view_box(page)
        marker_before = await r1.locator(".disc").bounding_box()
        assert marker_before is not None

        # + zooms in about the centre, - back out; never further out than the whole network.
        await page.get_by_role("button", name="Zoom in").click()
        zoomed = await _view_box(page)
        assert zoomed[2] < whole[2] * 0.8
        assert zoomed[2] / zoomed[3] == pytest.approx(whole[2] / whole[3], rel=1e-3)
        centre = (whole[0] + whole[2] / 2, whole[1] + whole[3] / 2)
        assert zoomed[0] + zoomed[2] / 2 == pytest.approx(centre[0], abs=1)
        await page.get_by_role("button", name="Zoom out").click()
        assert await _view_box(page) == pytest.approx(whole, abs=0.5)
        assert await page.get_by_role("button", name="Zoom out").is_disabled()

        # The wheel zooms about the pointer: the drawing point under it stays put.
        await svg.scroll_into_view_if_needed()
        box = await svg.bounding_box()
        assert box is not None
        px, py = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
        under_before = await _drawing_point(page, px, py)
        await page.mouse.move(px, py)
        await page.mouse.wheel(0, -300)
        await page.wait_for_function(
            "w => Number(document.querySelector('#map-svg').getAttribute('viewBox')"
            ".split(' ')[2]) < w",
            arg=whole[2] * 0.9,
        )
        await page.wait_for_timeout(100)  # the wheel may arrive in more than one event
        assert await _drawing_point(page, px, py) == pytest.approx(under_before, abs=2)
        # Markers keep their size on screen when zoomed.
        marker_after = await r1.locator(".disc").bounding_box()
        assert marker_after is not None
        assert marker_after["width"] == pytest.approx(marker_before["width"], rel=0.25)

        # A drag pans (the drawing follows the pointer) and is not a click on a marker.
        before = await _view_box(page)
        mx, my = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        grabbed = await _drawing_point(page, mx, my)
        await page.mouse.move(mx, my)
        await page.mouse.down()
        await page.mouse.move(mx + 60, my + 30, steps=6)
        await page.mouse.up()
        panned = await _view_box(page)
        assert panned[0] < before[0]
        assert panned[1] < before[1]
        assert panned[2] == pytest.approx(before[2])
        assert await _drawing_point(page, mx + 60, my + 30) == pytest.approx(grabbed, abs=2)
        await screenshot(page, "dashboard-1280-map-zoomed.png")

        # A marker still opens its outage after zooming and panning.
        await page.get_by_role("button", name="Reset map view").click()
        assert await _view_box(page) == pytest.approx(whole, abs=0.5)
        await page.get_by_role("button", name="Zoom in").click()
        await r1.click()
        await page.locator("#detail #detail-title", has_text=f"#{ids['O-R1']}").wait_for(
            timeout=WAIT_MS
        )
        # Keyboard: + and - on the focused map zoom too.
        await page.get_by_role("button", name="Reset map view").click()
        await svg.focus()
        await page.keyboard.press("+")
        assert (await _view_box(page))[2] < whole[2]
        await page.keyboard.press("0")
        assert await _view_box(page) == pytest.approx(whole, abs=0.5)
        watch.assert_clean()
