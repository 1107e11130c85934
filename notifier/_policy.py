"""Notification policy: quiet hours, urgency, rate limits, SMS options, legal notice periods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    timezone: str = DEFAULT_TIMEZONE
    quiet_start: time = time(21, 0)
    quiet_end: time = time(7, 0)
    # Kinds held during quiet hours (configurable per kind). Unplanned outages and
    # restorations go out at once: people need them at night.
    quiet_kinds: frozenset[str] = frozenset(
        {"etr_updated", "planned_notice", "planned_reminder", "planned_cancelled"}
    )
    # Urgent kinds bypass the per-customer rate limit.
    urgent_kinds: frozenset[str] = frozenset({"outage_detected", "restored", "still_out_nested"})
    rate_limit_per_window: int = 4
    rate_limit_window_s: float = 3600.0
    # Send diacritic-free text (GSM-7, 160 chars/segment instead of 70) per language. English
    # notices are only UCS-2 because of Vietnamese place names, so they go plain by default.
    ascii_sms: Mapping[str, bool] = field(default_factory=lambda: {"vi": False, "en": True})
    etr_rounding_s: float = 900.0
    # An ETR update goes out only if p50 moves at least this much (or the window text changes).
    etr_min_change_s: float = 1800.0
    # Circular 22/2020/TT-BCT: non-emergency planned outages announced >= 5 days ahead;
    # emergency ones within 24 h (sent at once).
    planned_min_notice_s: float = 5 * DAY_S
    emergency_notice_within_s: float = DAY_S
    reminder_before_s: float = DAY_S


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def _in_window(t: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= t < end
    return t >= start or t < end  # the window wraps midnight


def quiet_release_s(at_s: float, tz_name: str, start: time, end: time) -> float:
    """``at_s`` if outside quiet hours, else the next end of the quiet window (local time)."""
    tz = zone(tz_name)
    local = datetime.fromtimestamp(at_s, tz)
    if not _in_window(local.time(), start, end):
        return at_s
    release = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if release <= local:
        release += timedelta(days=1)
    # Re-localise: crossing a DST change keeps the wall-clock hour.
    return release.replace(tzinfo=None).replace(tzinfo=tz).timestamp()
