"""The operator dashboard in headless Chromium against a real uvicorn and PostgreSQL:
sign-in, the outage list and headline figures, live updates through SSE (no reload),
the ETR override form, an operator action, the feeder view, and a phone-width layout.
No console error and no 5xx anywhere."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gridwatch.store import Database
from gridwatch.store.outages import OutageMeterRow, OutageRow, save_outages
from tests.api_support import NOW_S, seed_all
from tests.browser_support import WAIT_MS, screenshot, served_dashboard, sign_in, submit_token

pytestmark = pytest.mark.timeout(240)


def _new_outage(state: str, customers_restored: int = 0) -> OutageRow:
    return OutageRow(
        "O-NEW",
        "T2",
        "Z1",
        state,
        "meters",
        NOW_S - 120,
        None,
        None,
        0.7,
        2,
        2,
        customers_restored,
        customers_restored,
        None,
    )


async def test_dashboard_live_list_override_and_actions(db: Database) -> None:
    ids, tokens = await seed_all(db)
    async with served_dashboard(db) as ui:
        page, watch, http = ui.page, ui.watch, ui.http
        headers = tokens.headers("operator")

        # Sign-in: a wrong token is refused with a message, the right one opens the app.
        watch.allowed_statuses.add(401)
        await page.goto(f"{ui.url}/dashboard")
        await submit_token(page, "gw_not-a-real-token")
        await page.locator("#login-error").filter(has_text="not valid").wait_for(timeout=WAIT_MS)
        watch.allowed_statuses.clear()
        await submit_token(page, tokens.operator)
        await page.locator("#app").wait_for(state="visible", timeout=WAIT_MS)
        await page.locator("#live[data-state=live]").wait_for(timeout=WAIT_MS)

        # The active outages are listed (not the restored one); headline figures match the API.
        rows = page.locator("#outages tbody tr")
        await rows.first.wait_for(timeout=WAIT_MS)
        shown = {int(x) for x in await rows.evaluate_all("rs => rs.map(r => r.dataset.outageId)")}
        assert shown == {ids["O-R1"], ids["O-T3"]}
        summary = (await http.get("/api/v1/public/summary")).json()
        reliability = (
            await http.get(
                "/api/v1/reliability",
                params={"start": "2026-11-23", "end": "2026-11-24"},
                headers=headers,
            )
        ).json()
        assert summary["customers_out"] == 5
        assert summary["active_outages"] == 2
        await page.locator("#fig-customers-out", has_text="5").wait_for(timeout=WAIT_MS)
        assert await page.locator("#fig-active-outages").text_content() == "2"
        saidi = reliability["all_days"]["saidi_min"]
        assert saidi > 0
        assert await page.locator("#fig-saidi").text_content() == f"{saidi:.2f}"

        # Live: a new outage written by another writer (the detection engine's store call)
        # appears without a reload, and its later change shows too.
        await page.evaluate("window.__sameDocument = true")
        new_id = (
            await save_outages(
                db,
                [_new_outage("predicted")],
                [
                    OutageMeterRow("O-NEW", "M3", "C3", "out", None),
                    OutageMeterRow("O-NEW", "M4", "C4", "out", None),
                ],
            )
        )["O-NEW"]
        new_row = page.locator(f"#outages tbody tr[data-outage-id='{new_id}']")
        await new_row.wait_for(timeout=WAIT_MS)
        assert await new_row.get_attribute("data-state") == "predicted"
        await page.locator("#fig-active-outages", has_text="3").wait_for(timeout=WAIT_MS)
        await save_outages(db, [_new_outage("partially_restored", customers_restored=1)])
        await page.locator(
            f"#outages tbody tr[data-outage-id='{new_id}'][data-state='partially_restored']"
        ).wait_for(timeout=WAIT_MS)
        assert await new_row.locator("[data-field=customers-out]").text_content() == "1"
        assert await page.evaluate("window.__sameDocument") is True  # never reloaded
        await screenshot(page, "dashboard-1280-list.png")

        # Detail of O-R1: timeline and ETR block; the override form needs a reason.
        await page.get_by_role("button", name=f"Outage {ids['O-R1']} on R1").click()
        detail = page.locator("#detail")
        await detail.locator("#detail-title", has_text=f"#{ids['O-R1']}").wait_for(timeout=WAIT_MS)
        await detail.locator("#etr-model", has_text="Model version").wait_for()
        await page.locator("#override-etr").fill("2026-11-23T18:45")
        await page.get_by_role("button", name="Set ETR override").click()
        await page.locator("#action-error", has_text="reason is required").wait_for()
        detail_before = (await http.get(f"/api/v1/outages/{ids['O-R1']}", headers=headers)).json()
        assert detail_before["etr_override"] is None  # nothing was sent

        await page.get_by_label("Reason (required)").first.fill("crew on site: cable joint, 3 h")
        await page.get_by_role("button", name="Set ETR override").click()
        await page.locator("#etr-override-in-force", has_text="crew on site").wait_for(
            timeout=WAIT_MS
        )
        after = (await http.get(f"/api/v1/outages/{ids['O-R1']}", headers=headers)).json()
        # 18:45 in the utility's local time (UTC+7) is 11:45 UTC.
        assert after["etr_override"]["etr_at"] == "2026-11-23T11:45:00Z"
        assert after["etr_override"]["reason"] == "crew on site: cable joint, 3 h"
        assert after["etr"]["p50"] == "2026-11-23T11:45:00Z"
        assert after["etr_history"][0]["source"] == "override"
        await page.locator("[data-etr='likely (p50)']", has_text="2026-11-23 18:45").wait_for()
        # The list row's ETR follows through the live stream.
        await page.locator(
            f"#outages tbody tr[data-outage-id='{ids['O-R1']}'] [data-field=etr]", has_text="18:45"
        ).wait_for(timeout=WAIT_MS)
        await screenshot(page, "dashboard-1280-override.png")

        # An action: confirm the predicted outage on T3.
        await page.get_by_role("button", name=f"Outage {ids['O-T3']} on T3").click()
        await detail.locator("#detail-title", has_text=f"#{ids['O-T3']}").wait_for(timeout=WAIT_MS)
        await page.locator("#action-reason").fill("customer calls from TBA 3")
        await page.locator("button[data-action=confirm]").click()
        await page.locator(
            f"#outages tbody tr[data-outage-id='{ids['O-T3']}'][data-state='confirmed']"
        ).wait_for(timeout=WAIT_MS)
        confirmed = (await http.get(f"/api/v1/outages/{ids['O-T3']}", headers=headers)).json()
        assert confirmed["state"] == "confirmed"
        assert any(t["kind"] == "operator_confirm" for t in confirmed["timeline"])

        # Feeder view: the path to R1 opens; R1 is coloured by its outage, T1 has no supply.
        await page.get_by_role("button", name="Show in feeder view").click()
        await page.get_by_role("button", name=f"Outage {ids['O-R1']} on R1").click()
        await detail.locator("#detail-title", has_text=f"#{ids['O-R1']}").wait_for(timeout=WAIT_MS)
        await page.get_by_role("button", name="Show in feeder view").click()
        r1 = page.locator(".node[data-device-id='R1']")
        await r1.wait_for(timeout=WAIT_MS)
        assert "n-confirmed" in (await r1.get_attribute("class") or "")
        assert "n-below" in (
            await page.locator(".node[data-device-id='B1']").get_attribute("class") or ""
        )
        await page.locator(".node[data-device-id='R1'] .toggle").click()
        t1 = page.locator(".node[data-device-id='T1']")
        await t1.wait_for(timeout=WAIT_MS)
        assert "n-dark" in (await t1.get_attribute("class") or "")
        await screenshot(page, "dashboard-1280-feeders.png")

        # A phone: one column, nothing wider than the screen.
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.wait_for_timeout(200)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        await screenshot(page, "dashboard-390-phone.png")
        wide = await page.evaluate(
            "[...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > innerWidth + 1)"
            ".slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)"
        )
        assert overflow <= 0, wide
        watch.assert_clean()


async def test_dashboard_viewer_cannot_override(db: Database) -> None:
    ids, tokens = await seed_all(db)
    async with served_dashboard(db) as ui:
        page, watch = ui.page, ui.watch
        await sign_in(page, ui.url, tokens.viewer)
        await page.get_by_role("button", name=f"Outage {ids['O-R1']} on R1").click()
        await page.locator("#override-reason").fill("trying as a viewer")
        watch.allowed_statuses.add(403)
        await page.get_by_role("button", name="Set ETR override").click()
        await page.locator("#action-error", has_text="Not allowed for your role").wait_for(
            timeout=WAIT_MS
        )
        # Signing out forgets the token: a reload asks for it again.
        await page.get_by_role("button", name="Sign out").click()
        await page.reload()
        await page.locator("#login").wait_for(state="visible", timeout=WAIT_MS)
        assert await page.evaluate("sessionStorage.getItem('gridwatch.token')") is None
        watch.assert_clean()


def test_now_is_the_seeded_day() -> None:
    # The headline SAIDI asks for the local day of the service clock (2026-11-23 in +07).
    assert datetime.fromtimestamp(NOW_S, UTC).date().isoformat() == "2026-11-23"
