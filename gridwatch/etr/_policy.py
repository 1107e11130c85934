"""What customers are told about an ETR, and when it is worth telling them again.

The top complaint about outage alerts is ETR churn, so an update is sent only when the
new P50 moves by more than max(15 min, 20% of the remaining time last announced), or now
runs past the latest time customers were promised; and never more than ``max_updates``
times after the first notice. Times are rounded to 15 minutes; a wide P10–P90 interval is
shown as a window ("between 14:30 and 15:15").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Language = Literal["vi", "en"]


@dataclass(frozen=True)
class UpdatePolicy:
    min_shift_s: float = 900.0
    rel_shift: float = 0.2
    max_updates: int = 2  # after the first notice: at most 3 ETR messages per outage
    round_to_s: int = 900
    narrow_s: float = 1800.0  # P90 - P10 at or below this: one time, not a window
    timezone: str = "Asia/Ho_Chi_Minh"

    def __post_init__(self) -> None:
        if self.min_shift_s < 0 or not 0 <= self.rel_shift <= 10 or self.max_updates < 0:
            raise ValueError("min_shift_s >= 0, rel_shift in [0, 10], max_updates >= 0")
        if self.round_to_s <= 0 or 86400 % self.round_to_s:
            raise ValueError("round_to_s must divide a day")
        ZoneInfo(self.timezone)  # raises for an unknown zone


@dataclass(frozen=True)
class CustomerWindow:
    start_s: float
    end_s: float

    @property
    def single(self) -> bool:
        return self.start_s == self.end_s


@dataclass(frozen=True)
class LastNotice:
    """What customers were last told about one outage."""

    notified_at_s: float
    p50_s: float
    window_end_s: float
    updates_sent: int


@dataclass(frozen=True)
class UpdateDecision:
    notify: bool
    reason: str  # first_notice | moved | past_promise | small_change | update_limit
    window: CustomerWindow


def _floor(t: float, step: int) -> float:
    return math.floor(t / step) * step


def _ceil(t: float, step: int) -> float:
    return math.ceil(t / step) * step


def customer_window(
    p10_s: float, p50_s: float, p90_s: float, now_s: float, policy: UpdatePolicy
) -> CustomerWindow:
    """Rounded times for customers; never before now."""
    step = policy.round_to_s
    earliest = _ceil(now_s, step)
    if p90_s - p10_s <= policy.narrow_s:
        at = max(round(p50_s / step) * step, earliest)
        return CustomerWindow(float(at), float(at))
    start = max(_floor(p10_s, step), earliest)
    end = max(_ceil(p90_s, step), start + step)
    return CustomerWindow(float(start), float(end))


def decide_update(
    last: LastNotice | None,
    p10_s: float,
    p50_s: float,
    p90_s: float,
    now_s: float,
    policy: UpdatePolicy,
) -> UpdateDecision:
    window = customer_window(p10_s, p50_s, p90_s, now_s, policy)
    if last is None:
        return UpdateDecision(True, "first_notice", window)
    announced_remaining = max(last.p50_s - last.notified_at_s, 0.0)
    threshold = max(policy.min_shift_s, policy.rel_shift * announced_remaining)
    moved = abs(p50_s - last.p50_s) > threshold
    past_promise = p50_s > last.window_end_s
    if not (moved or past_promise):
        return UpdateDecision(False, "small_change", window)
    if last.updates_sent >= policy.max_updates:
        return UpdateDecision(False, "update_limit", window)
    return UpdateDecision(True, "past_promise" if past_promise else "moved", window)


_WORDS = {
    "en": {
        "around": "around {a}",
        "between": "between {a} and {b}",
        "tomorrow": "tomorrow",
        "on": "on {d}",
    },
    "vi": {
        "around": "khoảng {a}",
        "between": "trong khoảng từ {a} đến {b}",
        "tomorrow": "ngày mai",
        "on": "ngày {d}",
    },
}


def _clock_text(t_s: float, now_s: float, tz: ZoneInfo, lang: Language) -> str:
    words = _WORDS[lang]
    local = datetime.fromtimestamp(t_s, tz)
    today = datetime.fromtimestamp(now_s, tz).date()
    text = local.strftime("%H:%M")
    if local.date() == today:
        return text
    if local.date() == today + timedelta(days=1):
        return f"{text} {words['tomorrow']}"
    return f"{text} {words['on'].format(d=local.strftime('%d/%m'))}"


def format_window(window: CustomerWindow, language: str, now_s: float, policy: UpdatePolicy) -> str:
    """ "between 14:30 and 15:15" / "trong khoảng từ 14:30 đến 15:15" (local time of the
    utility; a time on another day says so). Unknown languages fall back to Vietnamese."""
    lang: Language = "en" if language == "en" else "vi"
    tz = ZoneInfo(policy.timezone)
    a = _clock_text(window.start_s, now_s, tz, lang)
    if window.single:
        return _WORDS[lang]["around"].format(a=a)
    b = _clock_text(window.end_s, now_s, tz, lang)
    return _WORDS[lang]["between"].format(a=a, b=b)
