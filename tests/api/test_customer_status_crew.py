"""The customer status page says crews are working only when a crew has reported so
(issue 15): the API carries the outage's crew status, the words follow it, in Python and in
the page's own generated words (run in node)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from api_support import NOW_S, client_for, make_app, seed_network, seed_outages

from gridwatch.core.clock import ManualClock
from gridwatch.outages import OperatorDesk, SetCrewStatus
from gridwatch.store import Database
from notifier._plain_words import CREW_STATUSES, status_words, web_words_js

V1 = "/api/v1"
CASES = [
    # state, crew status, vi, en
    (
        "confirmed",
        None,
        "Đã xác nhận mất điện, đang bố trí tổ sửa chữa",
        "Outage confirmed, crew being assigned",
    ),
    (
        "confirmed",
        "dispatched",
        "Đã xác nhận mất điện, tổ sửa chữa đang đến",
        "Outage confirmed, crew on the way",
    ),
    (
        "confirmed",
        "on_site",
        "Đã xác nhận mất điện, tổ sửa chữa đang khắc phục",
        "Outage confirmed, crew at work",
    ),
    ("confirmed", "released", "Đã xác nhận mất điện", "Outage confirmed"),
    ("partially_restored", None, "Đã có điện một phần", "Partly restored"),
    (
        "partially_restored",
        "on_site",
        "Đã có điện một phần, tổ sửa chữa đang khắc phục",
        "Partly restored, crew at work",
    ),
    ("predicted", "on_site", "Đang kiểm tra", "Being checked"),
    ("restored", "on_site", "Đã có điện lại", "Power restored"),
]


@pytest.mark.parametrize(("state", "crew", "vi", "en"), CASES)
def test_crews_are_said_to_work_only_when_they_report(
    state: str, crew: str | None, vi: str, en: str
) -> None:
    assert (status_words(state, crew, "vi"), status_words(state, crew, "en")) == (vi, en)


def test_no_crew_words_without_a_crew_report() -> None:
    for lang in ("vi", "en"):
        for state in ("confirmed", "partially_restored", "predicted"):
            text = status_words(state, None, lang).lower()
            assert "work" not in text, text
            assert "đang khắc phục" not in text, text
    assert set(CREW_STATUSES) == {"dispatched", "on_site", "released"}


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_the_page_says_the_same_words() -> None:
    cases = [[s, c] for s, c, _, _ in CASES] + [["confirmed", "new_status_x"]]
    script = (
        web_words_js()
        + f"\nconst cases = {json.dumps(cases)};"
        + "\nconsole.log(JSON.stringify(cases.flatMap(([s, c]) =>"
        + " ['vi', 'en'].map((l) => statusWords(s, c, l)))));"
    )
    done = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=60, check=True
    )
    got = json.loads(done.stdout)
    want = [w for s, c in cases for w in (status_words(s, c, "vi"), status_words(s, c, "en"))]
    assert got == want
    assert got[-1] == "Outage confirmed, crew being assigned"  # an unknown report claims nothing


async def test_the_status_api_carries_the_crew_status(db: Database) -> None:
    await seed_network(db)
    ids = await seed_outages(db)
    async with client_for(make_app(db)) as http:
        login = {"account_no": "ACC-1", "phone_last4": "0001"}
        before = (await http.post(f"{V1}/customer/status", json=login)).json()
        assert [o["crew_status"] for o in before["current"]] == [None]
        desk = OperatorDesk(db, ManualClock(NOW_S - 60))
        await desk.set_crew_status(SetCrewStatus(ids["O-R1"], "on_site", "crew-7"))
        after = (await http.post(f"{V1}/customer/status", json=login)).json()
        assert [o["crew_status"] for o in after["current"]] == ["on_site"]
        assert "crew-7" not in json.dumps(after)  # who reported is not the customer's business
