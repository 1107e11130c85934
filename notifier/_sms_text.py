"""SMS length and cost: GSM-7 vs UCS-2 encoding, segment counting, diacritic-free Vietnamese."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

# GSM 03.38 basic character set (the escape 0x1B excluded) and its extension table,
# whose characters take two septets (escape + char).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE_SEPTETS = 160
GSM7_MULTI_SEPTETS = 153  # 7 septets go to the concatenation header
UCS2_SINGLE_UNITS = 70
UCS2_MULTI_UNITS = 67

Encoding = Literal["GSM-7", "UCS-2"]

# Typographic characters that have a GSM-7 look-alike (applied with diacritic stripping).
_ASCII_FOLDS = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "–": "-",
        "—": "-",
        "…": "...",
        "\u00a0": " ",
        "đ": "d",
        "Đ": "D",
    }
)


@dataclass(frozen=True, slots=True)
class SmsLength:
    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _segments(unit_sizes: list[int], single: int, multi: int) -> int:
    total = sum(unit_sizes)
    if total <= single:
        return 1 if total else 0
    # Greedy fill: a two-unit character (GSM escape pair, UTF-16 surrogate pair) never splits.
    segments, used = 1, 0
    for size in unit_sizes:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


def sms_length(text: str) -> SmsLength:
    """Encoding, units and segment count of ``text`` as a carrier bills it."""
    if is_gsm7(text):
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SmsLength(
            "GSM-7", sum(sizes), _segments(sizes, GSM7_SINGLE_SEPTETS, GSM7_MULTI_SEPTETS)
        )
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsLength("UCS-2", sum(sizes), _segments(sizes, UCS2_SINGLE_UNITS, UCS2_MULTI_UNITS))


def strip_diacritics(text: str) -> str:
    """Vietnamese without diacritics (``Điện mất`` -> ``Dien mat``), for a cheaper GSM-7 SMS."""
    folded = text.translate(_ASCII_FOLDS)
    decomposed = unicodedata.normalize("NFD", folded)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)
