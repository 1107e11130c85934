"""The transactional outbox: an outage change becomes notification rows in the caller's
transaction, so the change and what customers are told commit (or roll back) together."""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass, replace
from functools import lru_cache

from notifier._channel_order import expand_targets, order_rows
from notifier._errors import EventError
from notifier._events import LANGUAGES, NoticeKind, OutageChange
from notifier._phone import is_e164
from notifier._policy import NotifyPolicy, quiet_release_s
from notifier._ports import NewNotification, NotifyTarget, OutageNoticeState, OutboxWriter
from notifier._render import render_notice
from notifier._sms_text import sms_length
from notifier._templates import Rendered, Templates, load_templates

log = logging.getLogger(__name__)

CHANNELS = ("sms", "zns", "push", "webhook", "console")
_REF_LEN = 6


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    outage_id: int
    kind: str
    customers: int = 0
    inserted: int = 0
    duplicates: int = 0
    opted_out: int = 0
    rejected: int = 0
    superseded: int = 0
    skipped_reason: str | None = None


def idempotency_key(customer_id: str, outage_id: int, kind: str, version: int, channel: str) -> str:
    return f"{customer_id}:{outage_id}:{kind}:{version}:{channel}"


def message_ref(key: str) -> str:
    """Short code carried in every message, so an unknown outcome can be matched in the
    provider's log (and customers can quote it)."""
    digest = hashlib.blake2b(key.encode(), digest_size=6).digest()
    # Letters, digits, '-' and '_': all GSM-7, so the ref never changes the SMS encoding.
    return base64.urlsafe_b64encode(digest).decode()[:_REF_LEN]


def with_ref(body: str, ref: str) -> str:
    return f"{body} #{ref}"


@lru_cache(maxsize=1)
def _default_templates() -> Templates:
    return load_templates()


def _etr_changed(
    state: OutageNoticeState | None, change: OutageChange, policy: NotifyPolicy
) -> bool:
    if state is None or state.etr_p50_s is None or change.etr_p50_s is None:
        return True
    pairs = (
        (state.etr_p10_s, change.etr_p10_s),
        (state.etr_p50_s, change.etr_p50_s),
        (state.etr_p90_s, change.etr_p90_s),
    )
    for old, new in pairs:
        if (old is None) != (new is None):
            return True
        if old is not None and new is not None and abs(new - old) >= policy.etr_min_change_s:
            return True
    return False


class _Renderer:
    """Renders once per (kind, language, SMS or not, ascii, timezone): 100k customers, a
    handful of texts."""

    def __init__(self, templates: Templates, policy: NotifyPolicy) -> None:
        self._templates = templates
        self._policy = policy
        self._cache: dict[tuple[str, str, bool, bool, str], tuple[Rendered, int]] = {}

    def get(
        self, change: OutageChange, language: str, channel: str, ascii_only: bool, tz: str
    ) -> tuple[Rendered, int]:
        form = "sms" if channel == "sms" else "alert"  # every other channel reads the same
        key = (change.kind, language, form == "sms", ascii_only, tz)
        hit = self._cache.get(key)
        if hit is None:
            rendered = render_notice(
                change,
                self._templates,
                language,
                self._policy,
                channel=form,
                tz_name=tz,
                ascii_only=ascii_only,
            )
            # The ref is fixed-length base32 (GSM-7), so the segment count holds for every row.
            segments = sms_length(with_ref(rendered.body, "A" * _REF_LEN)).segments
            hit = self._cache[key] = (rendered, segments)
        return hit


def _rows_for(
    change: OutageChange,
    targets: list[NotifyTarget],
    renderer: _Renderer,
    policy: NotifyPolicy,
) -> tuple[list[NewNotification], int, int]:
    rows: list[NewNotification] = []
    opted_out = rejected = 0
    urgent = change.kind in policy.urgent_kinds or (
        change.kind == "planned_notice" and change.emergency
    )
    hold_quiet = change.kind in policy.quiet_kinds and not urgent
    base_s = change.occurred_at_s
    if change.kind == "planned_reminder" and change.starts_at_s is not None:
        base_s = max(base_s, change.starts_at_s - policy.reminder_before_s)
    for target in targets:
        language = target.language if target.language in LANGUAGES else "vi"
        tz = target.timezone or policy.timezone
        not_before = base_s
        if hold_quiet:
            not_before = quiet_release_s(
                base_s,
                tz,
                target.quiet_start or policy.quiet_start,
                target.quiet_end or policy.quiet_end,
            )
        for channel in target.channels:
            if channel not in CHANNELS:
                continue
            key = idempotency_key(
                target.customer_id, change.outage_id, change.kind, change.version, channel
            )
            address: str | None = None
            status, error = "pending", None
            ascii_only = False
            if channel == "sms":
                if target.sms_opted_out:
                    opted_out += 1
                    continue
                address = target.phone_e164
                ascii_only = (
                    target.ascii_sms
                    if target.ascii_sms is not None
                    else policy.ascii_sms.get(language, False)
                )
                if not is_e164(address):
                    # Kept as a row so operators see who could not be told, and why.
                    status, error = "rejected", "phone number missing or not E.164"
                    rejected += 1
            rendered, segments = renderer.get(change, language, channel, ascii_only, tz)
            rows.append(
                NewNotification(
                    idempotency_key=key,
                    customer_id=target.customer_id,
                    outage_id=change.outage_id,
                    kind=change.kind,
                    version=change.version,
                    channel=channel,
                    language=language,
                    address=address,
                    title=rendered.title,
                    body=with_ref(rendered.body, message_ref(key)),
                    urgent=urgent,
                    segments=segments if channel == "sms" else None,
                    not_before_s=not_before,
                    created_s=change.occurred_at_s,
                    status=status,
                    last_error=error,
                )
            )
    return rows, opted_out, rejected


async def enqueue_for_outage_change(
    outbox: OutboxWriter,
    change: OutageChange,
    *,
    templates: Templates | None = None,
    policy: NotifyPolicy | None = None,
) -> EnqueueResult:
    """Write the notifications ``change`` causes, in the caller's open transaction
    (``outbox``: the store's operations bound to that transaction).

    Idempotent: the same change (same version) enqueued twice inserts nothing the second
    time. A planned notice also schedules its day-before reminder. Raises EventError for
    a malformed change or a planned notice given less than the legal notice period.
    """
    change.validate()
    tpl = templates or _default_templates()
    pol = policy or NotifyPolicy()
    if change.kind == "planned_notice" and not change.emergency:
        assert change.starts_at_s is not None
        lead_s = change.starts_at_s - change.occurred_at_s
        if lead_s < pol.planned_min_notice_s:
            raise EventError(
                f"planned outage {change.outage_id} announced {lead_s / 86400:.1f} days ahead;"
                f" Circular 22/2020/TT-BCT requires {pol.planned_min_notice_s / 86400:.0f}"
                " (mark it emergency if it is one)"
            )
    state = await outbox.get_outage_notice_state(change.outage_id)
    if change.kind == "etr_updated" and not _etr_changed(state, change, pol):
        return EnqueueResult(
            change.outage_id, change.kind, skipped_reason="ETR change below threshold"
        )

    targets = await outbox.fetch_notify_targets(change.customer_ids, change.meter_ids)
    # Channel order: "zns>sms" renders both, sends ZNS, holds SMS as its fallback.
    targets, chains = expand_targets(targets, CHANNELS)
    renderer = _Renderer(tpl, pol)
    rows, opted_out, rejected = _rows_for(change, targets, renderer, pol)
    if change.kind == "planned_notice" and change.starts_at_s is not None:
        reminder_at = change.starts_at_s - pol.reminder_before_s
        if reminder_at > change.occurred_at_s:
            reminder = _replace_kind(change, "planned_reminder")
            more, _, _ = _rows_for(reminder, targets, renderer, pol)
            rows.extend(more)

    customer_ids = [t.customer_id for t in targets]
    superseded = 0
    if change.kind == "restored":
        superseded = await outbox.supersede_pending(
            change.outage_id,
            ("outage_detected", "etr_updated", "still_out_nested"),
            customer_ids=customer_ids,
            below_version=change.version + 1,
        )
    elif change.kind == "etr_updated":
        superseded = await outbox.supersede_pending(
            change.outage_id,
            ("etr_updated",),
            customer_ids=None,
            below_version=change.version,
        )
    elif change.kind == "planned_notice":
        # Planned work moved: unsent notices and reminders of the old window must not go out
        # (the new version's reminder is inserted below, after this).
        superseded = await outbox.supersede_pending(
            change.outage_id,
            ("planned_notice", "planned_reminder"),
            customer_ids=None,
            below_version=change.version,
        )
    elif change.kind == "planned_cancelled":
        superseded = await outbox.supersede_pending(
            change.outage_id,
            ("planned_notice", "planned_reminder"),
            customer_ids=None,
            below_version=change.version + 1,
        )
    rows, held = order_rows(rows, chains, targets, change, tpl, pol)
    inserted = await outbox.insert_notifications(rows)
    await outbox.insert_held(held, now_s=change.occurred_at_s)
    if change.kind not in ("planned_notice", "planned_reminder", "planned_cancelled"):
        await outbox.put_outage_notice_state(
            OutageNoticeState(
                outage_id=change.outage_id,
                where_text=change.where or (state.where_text if state else ""),
                why_text=change.why or (state.why_text if state else ""),
                started_at_s=change.started_at_s
                if change.started_at_s is not None
                else (state.started_at_s if state else change.occurred_at_s),
                etr_p10_s=change.etr_p10_s,
                etr_p50_s=change.etr_p50_s,
                etr_p90_s=change.etr_p90_s,
                version=change.version,
                open=True,
            ),
            now_s=change.occurred_at_s,
        )
    result = EnqueueResult(
        outage_id=change.outage_id,
        kind=change.kind,
        customers=len(targets),
        inserted=inserted,
        duplicates=len(rows) - inserted,
        opted_out=opted_out,
        rejected=rejected,
        superseded=superseded,
    )
    log.info(
        "enqueued notices",
        extra={
            "outage_id": change.outage_id,
            "kind": change.kind,
            "inserted": inserted,
            "customers": len(targets),
            "opted_out": opted_out,
            "rejected": rejected,
        },
    )
    return result


def _replace_kind(change: OutageChange, kind: NoticeKind) -> OutageChange:
    return replace(change, kind=kind)
