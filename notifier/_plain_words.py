"""Plain Vietnamese and English for every internal code that can reach a customer: outage
causes (including detection's provenance, e.g. ``scada_lockout``), outage states and ETR
provenance. Used by the notices (SMS, ZNS template data) and generated into the customer
page (``notifier/web/app.js``, between the GENERATED WORDS markers: ``python -m notifier
words --js`` prints the block; a test keeps the two in step).

A code nobody has put into words yet is never shown raw: it reads as "cause being
determined" / "being updated". Free text an operator typed (it has spaces) is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final

Words = Mapping[str, Mapping[str, str]]  # code -> language -> words

CAUSES: Final[Words] = {
    # How detection found the outage (its provenance), not yet why it happened.
    "inferred": {
        "vi": "Đang xác định nguyên nhân (phát hiện qua công tơ điện)",
        "en": "Cause being determined (found from electricity meters)",
    },
    "confirmed": {"vi": "Đang xác định nguyên nhân", "en": "Cause being determined"},
    "unknown": {"vi": "Đang xác định nguyên nhân", "en": "Cause being determined"},
    "nested": {
        "vi": "Một phần lưới điện chưa có điện lại sau sự cố trước",
        "en": "Part of the network is still off after an earlier fault",
    },
    "nested_linked": {
        "vi": "Một phần lưới điện chưa có điện lại sau sự cố trước",
        "en": "Part of the network is still off after an earlier fault",
    },
    "scada_lockout": {
        "vi": "Sự cố lưới điện: máy cắt tự động ngắt điện để bảo vệ lưới",
        "en": "Grid fault: a circuit breaker switched off to protect the network",
    },
    "scada_reclose": {
        "vi": "Sự cố thoáng qua trên lưới điện, máy cắt đang đóng lại",
        "en": "A brief grid fault; the breaker is switching back on",
    },
    # Codes the status page has shown.
    "lockout": {
        "vi": "Sự cố lưới điện: máy cắt tự động ngắt điện để bảo vệ lưới",
        "en": "Grid fault: a circuit breaker switched off to protect the network",
    },
    "fuse": {"vi": "Đứt cầu chì trên lưới điện", "en": "A fuse on the network blew"},
    "meters": {
        "vi": "Đang xác định nguyên nhân (phát hiện qua công tơ điện)",
        "en": "Cause being determined (found from electricity meters)",
    },
    # Repair causes crews report (the ETR model's classes).
    "weather": {"vi": "Thời tiết xấu", "en": "Bad weather"},
    "vegetation": {
        "vi": "Cây hoặc cành cây chạm vào đường dây",
        "en": "Trees or branches on the power lines",
    },
    "equipment": {"vi": "Hỏng thiết bị điện", "en": "Electrical equipment failed"},
    "animal": {"vi": "Động vật chạm vào thiết bị điện", "en": "An animal touched the equipment"},
    "vehicle": {"vi": "Xe va chạm cột điện hoặc đường dây", "en": "A vehicle hit a pole or line"},
    "overload": {"vi": "Lưới điện bị quá tải", "en": "The network was overloaded"},
    "planned": {"vi": "Cắt điện theo kế hoạch", "en": "Planned work"},
    "other": {"vi": "Nguyên nhân khác", "en": "Another cause"},
}
# Any other SCADA-found cause: words for the family rather than the raw code.
SCADA_FAMILY: Final = {
    "vi": "Sự cố lưới điện do hệ thống điều khiển phát hiện",
    "en": "Grid fault found by the control system",
}
CAUSE_UNKNOWN: Final = CAUSES["unknown"]

STATES: Final[Words] = {
    "predicted": {"vi": "Đang kiểm tra", "en": "Being checked"},
    # Whether a crew is at work is the crew's report to say (``status_words``), not the state's.
    "confirmed": {"vi": "Đã xác nhận mất điện", "en": "Outage confirmed"},
    "partially_restored": {"vi": "Đã có điện một phần", "en": "Partly restored"},
    "restored": {"vi": "Đã có điện lại", "en": "Power restored"},
    "cancelled": {"vi": "Đã hủy (không mất điện)", "en": "Cancelled (no outage)"},
}
STATE_UNKNOWN: Final = {"vi": "Đang cập nhật", "en": "Being updated"}

# What an open outage's crew last reported (etr_crew_status.status), said after the state.
CREW_STATUSES: Final[Words] = {
    "dispatched": {"vi": "tổ sửa chữa đang đến", "en": "crew on the way"},
    "on_site": {"vi": "tổ sửa chữa đang khắc phục", "en": "crew at work"},
    "released": {"vi": "", "en": ""},  # the crew has left: claim nothing about crews
}
# A confirmed outage no crew has reported on (or an unknown report): nothing is claimed
# about work being done.
CREW_UNASSIGNED: Final = {"vi": "đang bố trí tổ sửa chữa", "en": "crew being assigned"}
_CREW_STATES: Final = frozenset({"confirmed", "partially_restored"})

ETR_PROVENANCE: Final[Words] = {
    "local": {
        "vi": "Ước tính từ các lần mất điện trước tại khu vực",
        "en": "Estimated from past outages in your area",
    },
    "prior": {
        "vi": "Ước tính ban đầu từ số liệu chung",
        "en": "A first estimate from general figures",
    },
    "foreign": {
        "vi": "Ước tính từ số liệu của khu vực khác",
        "en": "Estimated from other areas' figures",
    },
}
PROVENANCE_UNKNOWN: Final = {"vi": "Ước tính", "en": "Estimate"}

# A machine code: one token of letters, digits and _ - . (no spaces).
_CODE = re.compile(r"^[A-Za-z0-9]+(?:[_.\-][A-Za-z0-9]+)*$")


def looks_like_code(text: str) -> bool:
    """An internal identifier rather than words a person typed."""
    # A lone plain word ("maintenance") could be either; only a known code is taken as one.
    return bool(_CODE.match(text.strip())) and ("_" in text or text.strip().lower() in _ALL_CODES)


def _language(language: str) -> str:
    return language if language in ("vi", "en") else "vi"


def cause_words(cause: str | None, language: str) -> str:
    """The cause in plain words; operator free text is kept as written."""
    lang = _language(language)
    if not cause or not cause.strip():
        return CAUSE_UNKNOWN[lang]
    key = cause.strip().lower()
    if key in CAUSES:
        return CAUSES[key][lang]
    if key.startswith("scada_"):
        return SCADA_FAMILY[lang]
    if looks_like_code(cause):
        return CAUSE_UNKNOWN[lang]
    return cause.strip()


def state_words(state: str | None, language: str) -> str:
    lang = _language(language)
    return STATES.get((state or "").strip().lower(), STATE_UNKNOWN)[lang]


def status_words(state: str | None, crew_status: str | None, language: str) -> str:
    """The outage's state, and for an open outage what its crew reported: crews are said to
    be at work only when a crew has said so."""
    lang = _language(language)
    words = state_words(state, lang)
    key = (state or "").strip().lower()
    if key not in _CREW_STATES:
        return words
    crew = CREW_STATUSES.get((crew_status or "").strip().lower())
    if crew is not None:
        return f"{words}, {crew[lang]}" if crew[lang] else words
    return f"{words}, {CREW_UNASSIGNED[lang]}" if key == "confirmed" else words


def provenance_words(provenance: str | None, language: str) -> str:
    lang = _language(language)
    return ETR_PROVENANCE.get((provenance or "").strip().lower(), PROVENANCE_UNKNOWN)[lang]


_ALL_CODES: Final = frozenset(CAUSES) | frozenset(STATES) | frozenset(ETR_PROVENANCE)

JS_BEGIN: Final = "// BEGIN GENERATED WORDS"
JS_END: Final = "// END GENERATED WORDS"


def web_words_js() -> str:
    """The customer page's copy of these words and the two functions that use them (no DOM:
    the test runs this block in node)."""
    data = {
        "causes": CAUSES,
        "scada": SCADA_FAMILY,
        "states": STATES,
        "stateUnknown": STATE_UNKNOWN,
        "crew": CREW_STATUSES,
        "crewUnassigned": CREW_UNASSIGNED,
        "provenance": ETR_PROVENANCE,
        "provenanceUnknown": PROVENANCE_UNKNOWN,
    }
    body = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)
    return "\n".join(
        [
            f"{JS_BEGIN} (python -m notifier words --js; from notifier/_plain_words.py)",
            f"const WORDS = {body};",
            "const CODE_RE = /^[A-Za-z0-9]+(?:[_.\\-][A-Za-z0-9]+)*$/;",
            "function causeWords(cause, lang) {",
            "  const key = (cause || '').trim().toLowerCase();",
            "  if (!key) return WORDS.causes.unknown[lang];",
            "  if (WORDS.causes[key]) return WORDS.causes[key][lang];",
            "  if (key.startsWith('scada_')) return WORDS.scada[lang];",
            "  const code = CODE_RE.test(cause.trim()) && cause.includes('_');",
            "  return code ? WORDS.causes.unknown[lang] : cause.trim();",
            "}",
            "function stateWords(state, lang) {",
            "  const key = (state || '').trim().toLowerCase();",
            "  return (WORDS.states[key] || WORDS.stateUnknown)[lang];",
            "}",
            "function statusWords(state, crew, lang) {",
            "  const words = stateWords(state, lang);",
            "  const key = (state || '').trim().toLowerCase();",
            "  if (key !== 'confirmed' && key !== 'partially_restored') return words;",
            "  const report = WORDS.crew[(crew || '').trim().toLowerCase()];",
            "  if (report) return report[lang] ? `${words}, ${report[lang]}` : words;",
            "  return key === 'confirmed' ? `${words}, ${WORDS.crewUnassigned[lang]}` : words;",
            "}",
            "function provenanceWords(p, lang) {",
            "  const key = (p || '').trim().toLowerCase();",
            "  return (WORDS.provenance[key] || WORDS.provenanceUnknown)[lang];",
            "}",
            JS_END,
        ]
    )
