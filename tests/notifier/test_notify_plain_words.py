"""No internal code in front of a customer: every cause (detection provenance included),
outage state and ETR provenance is rendered in Vietnamese and English, in the notices (SMS
text, ZNS template data) and on the status page (its words block run in node), and no
rendering is a raw identifier."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import get_args

import pytest

from detectors.etr._classes import CAUSES as ETR_CAUSES
from gridwatch.etr._service import _DETECTION_CAUSES
from gridwatch.outages._types import OutageState
from notifier import NotifyPolicy, OutageChange, load_templates, render_notice
from notifier._plain_words import (
    CAUSES,
    ETR_PROVENANCE,
    JS_BEGIN,
    JS_END,
    STATES,
    cause_words,
    provenance_words,
    state_words,
    web_words_js,
)
from notifier._render import notice_params

APP_JS = Path(__file__).resolve().parents[2] / "notifier" / "web" / "app.js"
# Codes that may appear on a customer's outage (cause column, free-form): every known one,
# plus ones nobody has put into words yet.
UNKNOWN_CODES = ("scada_breaker_fail_v2", "relay_87T", "cause_tbd", "SCADA_LOCKOUT")
ALL_CAUSES = sorted(set(CAUSES) | set(ETR_CAUSES) | _DETECTION_CAUSES | set(UNKNOWN_CODES))
ALL_STATES = sorted(set(get_args(OutageState)) | {"on_hold_x"})
ALL_PROVENANCE = sorted(set(ETR_PROVENANCE) | {"model_v3"})
_IDENTIFIER = re.compile(r"\b[A-Za-z0-9]+_[A-Za-z0-9_]+\b")


def assert_plain(code: str, text: str) -> None:
    assert text.strip(), code
    assert text.strip().lower() != code.lower(), f"{code!r} shown raw"
    assert not _IDENTIFIER.search(text), f"identifier in {text!r}"


def test_every_code_the_system_knows_has_words() -> None:
    # A new cause, state or provenance code must be put into words before it ships.
    assert set(ETR_CAUSES) <= set(CAUSES)
    assert set(CAUSES) >= _DETECTION_CAUSES
    assert set(get_args(OutageState)) <= set(STATES)
    assert {"local", "prior", "foreign"} <= set(ETR_PROVENANCE)
    for table in (CAUSES, STATES, ETR_PROVENANCE):
        for code, words in table.items():
            assert set(words) == {"vi", "en"}, code
            assert words["vi"] != words["en"], code


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize("code", ALL_CAUSES)
def test_sms_and_zns_say_the_cause_in_words(code: str, language: str) -> None:
    change = OutageChange(
        outage_id=1,
        kind="outage_detected",
        version=1,
        occurred_at_s=1_800_000_000,
        customer_ids=("C1",),
        where="Quận 1",
        why=code,
    )
    templates, policy = load_templates(), NotifyPolicy()
    sms = render_notice(change, templates, language, policy)
    assert_plain(code, sms.body)
    why = notice_params(change, templates, language, policy, policy.timezone)["why"]
    assert_plain(code, why)  # the ZNS template's {why} is this value


def test_operator_free_text_is_kept() -> None:
    assert cause_words("Thay cáp ngầm đường Lê Lợi", "vi") == "Thay cáp ngầm đường Lê Lợi"
    assert cause_words("scada_lockout", "vi").startswith("Sự cố lưới điện")
    assert cause_words("maintenance", "en") == "maintenance"  # a word, not a code


@pytest.mark.parametrize("language", ["vi", "en"])
def test_python_words_for_every_state_and_provenance(language: str) -> None:
    for code in ALL_STATES:
        assert_plain(code, state_words(code, language))
    for code in ALL_PROVENANCE:
        assert_plain(code, provenance_words(code, language))


def test_status_page_carries_the_generated_words() -> None:
    text = APP_JS.read_text(encoding="utf-8")
    start, end = text.index(JS_BEGIN), text.index(JS_END) + len(JS_END)
    assert text[start:end] == web_words_js(), "run: python -m notifier words --js"
    # Nothing on the page reads the raw code any more.
    assert not re.search(r"\|\| [cs]\b", text)


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_status_page_renders_every_code_in_both_languages() -> None:
    """Run the page's own words functions (node, no browser) over every code."""
    script = (
        web_words_js()
        + f"\nconst codes = {json.dumps({'c': ALL_CAUSES, 's': ALL_STATES, 'p': ALL_PROVENANCE})};"
        + "\nconst out = [];"
        + "\nfor (const lang of ['vi', 'en']) {"
        + "\n  for (const c of codes.c) out.push([c, causeWords(c, lang)]);"
        + "\n  for (const s of codes.s) out.push([s, stateWords(s, lang)]);"
        + "\n  for (const p of codes.p) out.push([p, provenanceWords(p, lang)]);"
        + "\n}"
        + "\nconsole.log(JSON.stringify(out));"
    )
    done = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=60, check=True
    )
    rendered = json.loads(done.stdout)
    assert len(rendered) == 2 * (len(ALL_CAUSES) + len(ALL_STATES) + len(ALL_PROVENANCE))
    for code, text in rendered:
        assert_plain(code, text)
    # The example: the page's cause line for a SCADA lockout, in Vietnamese.
    assert ["scada_lockout", CAUSES["scada_lockout"]["vi"]] in rendered
    # Python and the page agree word for word.
    for code, text in rendered[: len(ALL_CAUSES)]:
        assert text == cause_words(code, "vi")
