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
        print(
            f"[{notice.kind} v{notice.version} -> customer {notice.customer_id}"
            f" {mask_phone(notice.address) if notice.address else ''} ({notice.language})]"
            f" {notice.title}: {notice.body}",
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
    """Print a change's message in both languages, with SMS encoding and segment count."""
    out = stream or sys.stdout
    for language, rendered in preview_change(change, templates, policy).items():
        length = sms_length(rendered.body)
        print(
            f"  [{change.kind} {language}] {rendered.title}\n    {rendered.body}\n"
            f"    ({length.encoding}, {length.units} units, {length.segments} SMS segment(s))",
            file=out,
            flush=True,
        )
