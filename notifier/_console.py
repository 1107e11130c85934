"""The console channel (demo): prints what would be sent, numbers masked."""

from __future__ import annotations

import sys
from typing import TextIO

from notifier._channel import Notice
from notifier._events import OutageChange
from notifier._phone import mask_phone
from notifier._policy import NotifyPolicy
from notifier._render import preview_change
from notifier._sms_text import sms_length
from notifier._templates import Templates


class ConsoleChannel:
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.printed = 0

    async def send(self, notice: Notice) -> str:
        out = self._stream or sys.stdout
        # An SMS body is the whole text sent (heading included); an alert shows both parts.
        text = notice.body if notice.channel == "sms" else f"{notice.title}: {notice.body}"
        print(
            f"[{notice.kind} v{notice.version} -> customer {notice.customer_id}"
            f" {mask_phone(notice.address) if notice.address else ''} ({notice.language})]"
            f" {text}",
            file=out,
            flush=True,
        )
        self.printed += 1
        return f"console-{notice.notification_id}"

    async def find_sent(self, notice: Notice) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


def print_preview(
    change: OutageChange,
    templates: Templates,
    *,
    policy: NotifyPolicy | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print a change's message in both languages: the SMS (with its encoding and segment
    count) and the app alert (title and body)."""
    out = stream or sys.stdout
    alerts = preview_change(change, templates, policy, channel="push")
    for language, sms in preview_change(change, templates, policy).items():
        length = sms_length(sms.body)
        alert = alerts[language]
        print(
            f"  [{change.kind} {language}] SMS: {sms.body}\n"
            f"    ({length.encoding}, {length.units} units, {length.segments} SMS segment(s))\n"
            f"    app alert: {alert.title} / {alert.body}",
            file=out,
            flush=True,
        )


def print_demo(
    templates: Templates | None = None, *, now_s: float, stream: TextIO | None = None
) -> None:
    """The demo hook: every kind of notice for one outage and one planned job, both languages."""
    from notifier._templates import load_templates

    tpl = templates or load_templates()
    where, why = "Phường Bến Nghé, Quận 1", "sự cố cáp ngầm 22 kV"
    p10, p50, p90 = now_s + 3600, now_s + 5400, now_s + 9000
    start, end = now_s + 6 * 86400, now_s + 6 * 86400 + 4 * 3600
    planned_where, planned_why = "Quận 3", "bảo trì trạm biến áp"
    changes = [
        OutageChange(
            1,
            "outage_detected",
            1,
            now_s,
            where=where,
            why=why,
            started_at_s=now_s,
            etr_p10_s=p10,
            etr_p50_s=p50,
            etr_p90_s=p90,
        ),
        OutageChange(
            1,
            "etr_updated",
            2,
            now_s + 1800,
            where=where,
            etr_p10_s=p10 + 3600,
            etr_p50_s=p50 + 3600,
            etr_p90_s=p90 + 3600,
        ),
        OutageChange(
            1,
            "still_out_nested",
            3,
            now_s + 7200,
            where="Hẻm 12 Lê Lợi",
            etr_p10_s=p10 + 3600,
            etr_p50_s=p50 + 3600,
            etr_p90_s=p90 + 3600,
        ),
        OutageChange(1, "restored", 4, now_s + 9000, where=where),
        OutageChange(
            2,
            "planned_notice",
            1,
            now_s,
            where=planned_where,
            why=planned_why,
            starts_at_s=start,
            ends_at_s=end,
        ),
        OutageChange(
            2,
            "planned_reminder",
            1,
            start - 86400,
            where=planned_where,
            why=planned_why,
            starts_at_s=start,
            ends_at_s=end,
        ),
        OutageChange(
            2,
            "planned_cancelled",
            2,
            now_s + 86400,
            where=planned_where,
            starts_at_s=start,
            ends_at_s=end,
        ),
    ]
    for change in changes:
        print_preview(change, tpl, stream=stream)
