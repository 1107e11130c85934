"""Phone numbers: E.164 validation and masking (numbers never reach a log in clear)."""

from __future__ import annotations

import re

from notifier._errors import PhoneNumberError

_E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")


def is_e164(value: object) -> bool:
    return isinstance(value, str) and _E164_RE.fullmatch(value) is not None


def mask_phone(value: str | None) -> str:
    """``+84912345789`` -> ``+84******789``: country code and last three digits only."""
    if not value:
        return "<none>"
    if not is_e164(value):
        return f"<invalid:{len(value)} chars>"
    return value[:3] + "*" * (len(value) - 6) + value[-3:]


def mask_name(value: str | None) -> str:
    """``Nguyễn Văn An`` -> ``N*** V*** A***``."""
    if not value:
        return "<none>"
    return " ".join(part[0] + "***" for part in value.split() if part)


def validate_phone_e164(value: object, *, row: str) -> str:
    """Return the number, or raise naming ``row`` (e.g. ``"customers.csv line 12"``)."""
    if not isinstance(value, str):
        raise PhoneNumberError(f"{row}: phone number missing or not text")
    if len(value) > 32:
        raise PhoneNumberError(f"{row}: phone number too long ({len(value)} chars)")
    if not _E164_RE.fullmatch(value):
        raise PhoneNumberError(
            f"{row}: phone number {mask_phone(value)} is not E.164 (+, country code, digits)"
        )
    return value
