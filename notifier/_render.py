"""Turning an outage change into template values: local times, ETR windows, fallbacks."""

from __future__ import annotations

import math
from datetime import datetime

from notifier._events import OutageChange
from notifier._plain_words import cause_words, looks_like_code
from notifier._policy import NotifyPolicy, zone
from notifier._sms_text import strip_diacritics
from notifier._templates import Rendered, Templates


def _floor(t: float, step: float) -> float:
    return math.floor(t / step) * step


def _ceil(t: float, step: float) -> float:
    return math.ceil(t / step) * step


def _round(t: float, step: float) -> float:
    return math.floor(t / step + 0.5) * step


def local_time(epoch_s: float, tz_name: str, *, with_date: bool = True) -> str:
    local = datetime.fromtimestamp(epoch_s, zone(tz_name))
    return local.strftime("%H:%M %d/%m" if with_date else "%H:%M")


def etr_window_text(
    templates: Templates,
    language: str,
    p10_s: float | None,
    p50_s: float | None,
    p90_s: float | None,
    *,
    tz_name: str,
    rounding_s: float,
) -> str:
    """``14:15 - 15:30 23/11``: p10 rounded down, p90 up (the window never narrows)."""
    low = p10_s if p10_s is not None else p50_s
    high = p90_s if p90_s is not None else p50_s
    if low is None or high is None:
        return templates.fragment(language, "etr_unknown")
    low, high = _floor(low, rounding_s), _ceil(high, rounding_s)
    if high <= low:
        high = low + rounding_s
    tz = zone(tz_name)
    same_day = datetime.fromtimestamp(low, tz).date() == datetime.fromtimestamp(high, tz).date()
    return templates.fragment(
        language,
        "etr_window",
        **{
            "from": local_time(low, tz_name, with_date=not same_day),
            "until": local_time(high, tz_name),
        },
    )


def notice_params(
    change: OutageChange, templates: Templates, language: str, policy: NotifyPolicy, tz_name: str
) -> dict[str, str]:
    step = policy.etr_rounding_s
    etr_p50 = (
        local_time(_round(change.etr_p50_s, step), tz_name)
        if change.etr_p50_s is not None
        else templates.fragment(language, "etr_unknown")
    )
    return {
        "where": change.where or templates.fragment(language, "where_unknown"),
        # A code (``scada_lockout``) is never shown: it becomes plain words; typed text stays.
        "why": cause_words(change.why, language)
        if change.why and looks_like_code(change.why)
        else change.why or templates.fragment(language, "why_unknown"),
        "since": local_time(
            change.started_at_s if change.started_at_s is not None else change.occurred_at_s,
            tz_name,
        ),
        "at": local_time(change.occurred_at_s, tz_name),
        "etr_window": etr_window_text(
            templates,
            language,
            change.etr_p10_s,
            change.etr_p50_s,
            change.etr_p90_s,
            tz_name=tz_name,
            rounding_s=step,
        ),
        "etr_p50": etr_p50,
        "from": local_time(change.starts_at_s, tz_name) if change.starts_at_s is not None else "",
        "until": local_time(change.ends_at_s, tz_name) if change.ends_at_s is not None else "",
    }


def sms_text(rendered: Rendered) -> str:
    """An SMS has no title: it opens with the heading, once, then the body and what only an
    SMS says (the reply keyword)."""
    text = f"{rendered.title}: {rendered.body}" if rendered.title else rendered.body
    return f"{text} {rendered.sms_tail}" if rendered.sms_tail else text


def render_notice(
    change: OutageChange,
    templates: Templates,
    language: str,
    policy: NotifyPolicy,
    *,
    channel: str = "sms",
    tz_name: str | None = None,
    ascii_only: bool = False,
) -> Rendered:
    """The notice as ``channel`` carries it: for ``sms`` the whole text is the body (the
    heading once, the reply keyword at the end); other channels show title and body apart
    and get no reply keyword."""
    params = notice_params(change, templates, language, policy, tz_name or policy.timezone)
    rendered = templates.render(change.kind, language, params)
    if channel == "sms":
        rendered = Rendered(rendered.title, sms_text(rendered))
    else:
        rendered = Rendered(rendered.title, rendered.body)
    if ascii_only:
        return Rendered(strip_diacritics(rendered.title), strip_diacritics(rendered.body))
    return rendered


def preview_change(
    change: OutageChange,
    templates: Templates,
    policy: NotifyPolicy | None = None,
    *,
    channel: str = "sms",
) -> dict[str, Rendered]:
    """The message in every language, as ``channel`` carries it (the demo prints SMS)."""
    pol = policy or NotifyPolicy()
    return {
        lang: render_notice(change, templates, lang, pol, channel=channel) for lang in ("vi", "en")
    }
