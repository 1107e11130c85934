"""Personal data by role: viewer sees masked names and phones, operator full names and
masked phones, admin everything. Masks match the notifier's (``+84******789``,
``N*** V*** A***``)."""

from __future__ import annotations

import re

from gridwatch.api._auth import Principal

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def mask_phone(value: str | None) -> str | None:
    if not value:
        return None
    if not _E164.match(value):
        return "***"
    return value[:3] + "*" * (len(value) - 6) + value[-3:]


def mask_name(value: str | None) -> str | None:
    if not value:
        return value
    return " ".join(part[0] + "***" for part in value.split() if part)


def mask_address(value: str | None) -> str | None:
    """A notification address: a phone number, or a push endpoint / webhook URL (whose
    path identifies a device): masked alike for anyone below admin."""
    if not value:
        return None
    if _E164.match(value):
        return mask_phone(value)
    return value.split("/", 3)[2] + "/…" if value.startswith("http") and "/" in value[8:] else "***"


def phone_for(principal: Principal, value: str | None) -> str | None:
    return value if principal.at_least("admin") else mask_phone(value)


def name_for(principal: Principal, value: str | None) -> str | None:
    return value if principal.at_least("operator") else mask_name(value)


def address_for(principal: Principal, value: str | None) -> str | None:
    return value if principal.at_least("admin") else mask_address(value)
