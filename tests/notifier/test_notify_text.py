"""Templates (start-up checks), SMS segment counting, diacritics, phone numbers, ETR wording."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier import (
    NOTICE_KINDS,
    NotifyPolicy,
    OutageChange,
    PhoneNumberError,
    TemplateError,
    etr_window_text,
    is_gsm7,
    load_templates,
    mask_name,
    mask_phone,
    preview_change,
    quiet_release_s,
    sms_length,
    strip_diacritics,
    validate_phone_e164,
)
from notifier._templates import default_template_dir

DAY_S = datetime(2026, 11, 23, 3, 0, tzinfo=UTC).timestamp()


# --- SMS segments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count 2
        ("€" * 81, "GSM-7", 162, 2),
        ("a" * 159 + "€", "GSM-7", 161, 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # an escape pair never splits
        ("ă" * 70, "UCS-2", 70, 1),
        ("ă" * 71, "UCS-2", 71, 2),
        ("ă" * 134, "UCS-2", 134, 2),
        ("ă" * 135, "UCS-2", 135, 3),
        ("🙂" * 35, "UCS-2", 70, 1),  # surrogate pairs count 2
        ("a" * 66 + "🙂" + "a", "UCS-2", 69, 1),
        ("Điện", "UCS-2", 4, 1),
    ],
)
def test_segment_counting(text: str, encoding: str, units: int, segments: int) -> None:
    assert sms_length(text) == (sms_length(text).__class__(encoding, units, segments))  # type: ignore[arg-type]


def test_vietnamese_diacritics_force_ucs2_and_stripping_restores_gsm7() -> None:
    text = "Mất điện tại Phường Bến Nghé, Quận 1 từ 10:00. Dự kiến có điện lại: 11:00 - 12:00."
    assert sms_length(text).encoding == "UCS-2"
    plain = strip_diacritics(text)
    assert (
        plain
        == "Mat dien tai Phuong Ben Nghe, Quan 1 tu 10:00. Du kien co dien lai: 11:00 - 12:00."
    )
    assert is_gsm7(plain)
    assert sms_length(plain).segments == 1
    assert sms_length(text).segments == 2
    assert strip_diacritics("ĐƯỜNG đường “x” – y") == 'DUONG duong "x" - y'


@given(st.text(alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậ ĐĂÂÊÔƠƯ", max_size=400))
def test_stripped_vietnamese_is_always_gsm7_and_never_costs_more(text: str) -> None:
    plain = strip_diacritics(text)
    assert is_gsm7(plain)
    assert len(plain) == len(text)
    assert sms_length(plain).segments <= sms_length(text).segments


@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_every_default_template_fits_in_few_segments(kind: str) -> None:
    templates = load_templates()
    change = OutageChange(
        outage_id=1,
        kind=kind,  # type: ignore[arg-type]
        version=1,
        occurred_at_s=DAY_S,
        where="Phường Bến Nghé, Quận 1",
        why="bảo trì đường dây 22kV",
        etr_p10_s=DAY_S + 3600,
        etr_p50_s=DAY_S + 5400,
        etr_p90_s=DAY_S + 9000,
        starts_at_s=DAY_S + 6 * 86400,
        ends_at_s=DAY_S + 6 * 86400 + 14400,
    )
    for language, rendered in preview_change(change, templates).items():
        body = rendered.body + " #ABCDEF"
        vi_plain = sms_length(strip_diacritics(body))
        assert vi_plain.encoding == "GSM-7"
        assert vi_plain.segments <= 2, (language, body)
        assert sms_length(body).segments <= 4, (language, body)


# --- templates ------------------------------------------------------------------------------


@pytest.fixture
def template_copy(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(default_template_dir(), target)
    return target


def test_default_templates_load() -> None:
    templates = load_templates()
    for kind in NOTICE_KINDS:
        for language in ("vi", "en"):
            assert templates.template(kind, language).body


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def test_unknown_placeholder_is_caught_at_start_up(template_copy: Path) -> None:
    _edit(template_copy / "vi" / "restored.txt", "{at}", "{restored_time}")
    with pytest.raises(
        TemplateError, match=r"vi/restored.txt: unknown placeholder \{restored_time\}"
    ):
        load_templates(template_copy)


def test_missing_kind_and_language_are_caught(template_copy: Path) -> None:
    (template_copy / "en" / "etr_updated.txt").unlink()
    with pytest.raises(
        TemplateError, match="missing template for kind 'etr_updated' in language 'en'"
    ):
        load_templates(template_copy)
    shutil.rmtree(template_copy / "en")
    with pytest.raises(TemplateError, match="missing language directory"):
        load_templates(template_copy)


def test_circular_22_fields_are_required(template_copy: Path) -> None:
    _edit(template_copy / "en" / "planned_notice.txt", "to {until}", "")
    with pytest.raises(TemplateError, match=r"planned_notice.txt: must mention \{until\}"):
        load_templates(template_copy)


def test_all_problems_reported_at_once(template_copy: Path) -> None:
    _edit(template_copy / "vi" / "restored.txt", "{where}", "{wher}")
    _edit(template_copy / "en" / "restored.txt", "{at}", "{at!r}")
    (template_copy / "vi" / "outage_detcted.txt").write_text("title: x\nbody", encoding="utf-8")
    (template_copy / "en" / "help_me.txt").write_bytes(b"title: \xff\xfe\n")
    with pytest.raises(TemplateError) as info:
        load_templates(template_copy)
    problems = "\n".join(info.value.problems)
    assert "{wher}" in problems
    assert "format or conversion" in problems
    assert "unknown kind 'outage_detcted'" in problems
    assert "unknown kind 'help_me'" in problems


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"title: x\n{where", "malformed braces"),
        (b"no title line\n{where}", "first line must be"),
        (b"title: x\n\n", "empty body"),
        (b"\xff\xfe", "not UTF-8"),
        (b"title: x\n" + b"a" * 5000, "more than"),
    ],
)
def test_malformed_template_files(template_copy: Path, content: bytes, message: str) -> None:
    (template_copy / "vi" / "reply_help.txt").write_bytes(content)
    with pytest.raises(TemplateError, match=message):
        load_templates(template_copy)


def test_fragment_errors(template_copy: Path) -> None:
    _edit(template_copy / "en" / "_fragments.txt", "etr_unknown =", "etr_unknwn =")
    with pytest.raises(TemplateError, match="missing etr_unknown"):
        load_templates(template_copy)


def test_edited_template_is_used(template_copy: Path) -> None:
    _edit(template_copy / "en" / "restored.txt", "Power is back", "Electricity is back")
    templates = load_templates(template_copy)
    change = OutageChange(outage_id=1, kind="restored", version=1, occurred_at_s=DAY_S, where="Q1")
    assert preview_change(change, templates)["en"].body.startswith(
        "Electricity is back: At Q1 since"
    )


# --- ETR wording and quiet hours ----------------------------------------------------------------


def test_etr_window_rounds_outward_to_15_minutes() -> None:
    t = load_templates()
    text = etr_window_text(
        t,
        "en",
        DAY_S + 3600 + 420,
        DAY_S + 5000,
        DAY_S + 7200 + 60,
        tz_name="Asia/Ho_Chi_Minh",
        rounding_s=900,
    )
    assert text == "11:00 - 12:15 23/11"
    across_midnight = etr_window_text(
        t,
        "vi",
        DAY_S + 13 * 3600,
        None,
        DAY_S + 15 * 3600,
        tz_name="Asia/Ho_Chi_Minh",
        rounding_s=900,
    )
    assert across_midnight == "23:00 23/11 - 01:00 24/11"
    assert (
        etr_window_text(t, "vi", None, None, None, tz_name="Asia/Ho_Chi_Minh", rounding_s=900)
        == "chưa xác định, sẽ báo sau"
    )


def test_quiet_release() -> None:
    night = datetime(2026, 11, 23, 16, 30, tzinfo=UTC).timestamp()  # 23:30 local
    early = datetime(2026, 11, 23, 22, 0, tzinfo=UTC).timestamp()  # 05:00 local next day
    morning = datetime(2026, 11, 24, 0, 0, tzinfo=UTC).timestamp()  # 07:00 local
    pol = NotifyPolicy()
    assert quiet_release_s(night, pol.timezone, pol.quiet_start, pol.quiet_end) == morning
    assert quiet_release_s(early, pol.timezone, pol.quiet_start, pol.quiet_end) == morning
    assert quiet_release_s(DAY_S, pol.timezone, pol.quiet_start, pol.quiet_end) == DAY_S
    assert quiet_release_s(night, pol.timezone, time(0), time(0)) == night


# --- phone numbers ------------------------------------------------------------------------------


def test_masking() -> None:
    assert mask_phone("+84912345789") == "+84******789"
    assert mask_phone("0912345789") == "<invalid:10 chars>"
    assert mask_phone(None) == "<none>"
    assert mask_name("Nguyễn Văn An") == "N*** V*** A***"


@pytest.mark.parametrize(
    "bad",
    [
        "0912345678",
        "+0912345678",
        "+84 912 345 678",
        "+84",
        "84912345678",
        "+84912345678901234",
        "",
        "+84912345678\n",
        "١٢٣٤٥٦٧٨",
    ],
)
def test_malformed_numbers_are_rejected_naming_the_row_not_the_number(bad: str) -> None:
    with pytest.raises(PhoneNumberError, match=r"customers\.csv line 7") as info:
        validate_phone_e164(bad, row="customers.csv line 7")
    if len(bad) > 6:
        assert bad.strip() not in str(info.value)


def test_valid_numbers_pass() -> None:
    assert validate_phone_e164("+84912345678", row="r") == "+84912345678"
    with pytest.raises(PhoneNumberError, match="too long"):
        validate_phone_e164("+8" * 100, row="r")
    with pytest.raises(PhoneNumberError, match="missing"):
        validate_phone_e164(None, row="r")
