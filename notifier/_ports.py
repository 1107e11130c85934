"""What the notifier needs from a store, and the records it reads and writes there.

The notifier never opens a database itself: each operation below runs inside one
transaction of a store the application plugs in (``gridwatch.store.notifications``'
``PostgresOutboxStore`` in production and in the tests). ``Transactions.transaction()``
opens one; the enqueue path instead runs on the caller's transaction (the outbox pattern:
an outage change and its notifications commit together), handed in as an ``OutboxWriter``.
The protocols are split by the notifier part that uses them, so each part reads alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, time
from typing import Protocol, TypeVar

# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    customer_id: str
    phone_e164: str | None
    language: str
    channels: tuple[str, ...]
    ascii_sms: bool | None
    quiet_start: time | None
    quiet_end: time | None
    timezone: str | None
    sms_opted_out: bool


@dataclass(frozen=True, slots=True)
class NewNotification:
    idempotency_key: str
    customer_id: str
    outage_id: int
    kind: str
    version: int
    channel: str
    language: str
    address: str | None
    title: str
    body: str
    urgent: bool
    segments: int | None
    not_before_s: float
    created_s: float  # service clock: the change's time, so created_at <= sent_at on a replay
    status: str = "pending"
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedNotification:
    notification_id: int
    idempotency_key: str
    customer_id: str
    outage_id: int | None
    kind: str
    version: int
    channel: str
    language: str
    address: str | None
    title: str
    body: str
    urgent: bool
    attempts: int
    attempt_started_s: float | None


@dataclass(frozen=True, slots=True)
class OutageNoticeState:
    outage_id: int
    where_text: str
    why_text: str
    started_at_s: float | None
    etr_p10_s: float | None
    etr_p50_s: float | None
    etr_p90_s: float | None
    version: int
    open: bool


@dataclass(frozen=True, slots=True)
class HeldNotification:
    """A later link of a customer's channel chain: sent only if ``after_key`` cannot deliver."""

    row: NewNotification
    after_key: str


@dataclass(frozen=True, slots=True)
class FallbackStats:
    promoted: int = 0
    not_needed: int = 0


@dataclass(frozen=True, slots=True)
class ChannelDay:
    outage_id: int | None
    day: date  # local day of the send (of the enqueue while not sent)
    channel: str
    sent: int
    failed: int  # failed or rejected: never reached the customer on this channel
    waiting: int  # pending or in flight
    delivered: int  # with a delivery receipt
    sms_segments: int  # billed segments of the sent SMS


@dataclass(frozen=True, slots=True)
class SmsKind:
    """The SMS of one kind of notice (outage_detected, etr_updated, restored, ...)."""

    kind: str
    sent: int
    customers: int  # distinct customers sent at least one SMS of this kind
    segments: int  # billed segments of the sent SMS
    waiting: int  # pending or in flight: not billed yet


@dataclass(frozen=True, slots=True)
class OutageReach:
    outage_id: int | None
    customers: int  # customers with any notice for the outage
    reached: int  # customers with at least one notice sent
    fallbacks: int  # notices sent on a later channel because the first could not deliver
    fallbacks_not_needed: int


# --- ports -----------------------------------------------------------------------------------

T_co = TypeVar("T_co", covariant=True)


class Transactions(Protocol[T_co]):
    """Opens one store transaction (committed when the block ends without an error) and
    gives the operations ``T_co`` on it."""

    def transaction(self) -> AbstractAsyncContextManager[T_co]: ...


class OutboxWriter(Protocol):
    """Enqueue: the caller's transaction (see ``enqueue_for_outage_change``)."""

    async def fetch_notify_targets(
        self, customer_ids: Sequence[str], meter_ids: Sequence[str]
    ) -> list[NotifyTarget]:
        """Customers to tell: the given ones plus the owners of the given meters, each once."""
        ...

    async def get_outage_notice_state(self, outage_id: int) -> OutageNoticeState | None: ...

    async def put_outage_notice_state(self, state: OutageNoticeState, *, now_s: float) -> None:
        """``now_s``: the service clock (the change's time), stamped as ``updated_at``."""
        ...

    async def supersede_pending(
        self,
        outage_id: int,
        kinds: Sequence[str],
        *,
        customer_ids: Sequence[str] | None,
        below_version: int,
    ) -> int:
        """Mark not-yet-sent notices of ``kinds`` as superseded; returns how many."""
        ...

    async def insert_notifications(self, rows: Sequence[NewNotification]) -> int:
        """Insert into the outbox; rows already there (same key) are left alone."""
        ...

    async def insert_held(self, held: Sequence[HeldNotification], *, now_s: float) -> int:
        """Store later chain links; rows already held are left alone."""
        ...


class DispatchQueue(Protocol):
    """The dispatcher's claims, results and fallback decisions."""

    async def claim_due(
        self,
        *,
        worker: str,
        limit: int,
        lease_s: float,
        now_s: float,
        channels: Sequence[str],
    ) -> tuple[list[ClaimedNotification], int]:
        """Claim due pending notices with a lease; returns (claimed, skipped as opted out)."""
        ...

    async def claim_unknown(
        self, *, worker: str, limit: int, lease_s: float, channels: Sequence[str]
    ) -> list[ClaimedNotification]:
        """Claim in-flight notices whose lease expired: their outcome is unknown."""
        ...

    async def apply_rate_limits(
        self,
        claimed: Sequence[ClaimedNotification],
        *,
        max_per_window: int,
        window_s: float,
        now_s: float,
    ) -> list[ClaimedNotification]:
        """Put over-limit non-urgent notices back until their window ends; returns the rest."""
        ...

    async def record_sent(
        self, results: Sequence[tuple[int, str]], *, now_s: float, reconciled: bool = False
    ) -> int: ...

    async def record_retry(
        self, notification_id: int, *, not_before_s: float, error: str
    ) -> None: ...

    async def record_failed(self, notification_id: int, *, code: str, error: str) -> None: ...

    async def record_unknown(
        self, notification_id: int, *, reconcile_after_s: float, error: str
    ) -> None: ...

    async def promote_fallbacks(
        self,
        *,
        now_s: float,
        receipt_timeout_s: float | None,
        receipt_channels: Sequence[str],
        limit: int = 5000,
        after_keys: Sequence[str] | None = None,
    ) -> FallbackStats:
        """Decide held chain links from the state of the link before each (idempotent)."""
        ...


class CustomerReplies(Protocol):
    """The webhooks router: delivery callbacks, inbound SMS, the customer app."""

    async def record_delivery_event(
        self,
        *,
        provider_id: str,
        status: str,
        error_code: str | None,
        notification_id: int | None,
        now_s: float,
    ) -> int: ...

    async def customer_by_phone(self, phone_e164: str) -> tuple[str, str] | None:
        """(customer_id, language) of the customer with this number, if exactly one."""
        ...

    async def set_opt_out(
        self, *, channel: str, address: str, source: str, now_s: float
    ) -> None: ...

    async def clear_opt_out(self, *, channel: str, address: str) -> None: ...

    async def insert_customer_report(
        self,
        *,
        customer_id: str,
        phone_e164: str,
        body: str,
        provider_id: str | None,
        received_at_s: float,
    ) -> bool:
        """Store an outage report; False if already stored (a provider retry)."""
        ...

    async def open_outage_for_customer(self, customer_id: str) -> OutageNoticeState | None: ...

    async def upsert_push_subscription(
        self, *, customer_id: str, endpoint: str, p256dh: str, auth: str, now_s: float
    ) -> int: ...


class PushSubscriptions(Protocol):
    """The Web Push channel's subscriptions."""

    async def push_subscriptions_for(self, customer_id: str) -> list[tuple[int, str, str, str]]:
        """(subscription_id, endpoint, p256dh, auth) of the customer's app subscriptions."""
        ...

    async def delete_push_subscription(self, subscription_id: int) -> None: ...

    async def mark_push_ok(self, subscription_id: int, *, now_s: float) -> None: ...


class ZnsReceipts(Protocol):
    """The ZNS event webhook."""

    async def record_zns_receipt(
        self, *, msg_id: str, tracking_id: str | None, status: str, now_s: float
    ) -> int:
        """Store a delivery event; returns notices updated."""
        ...
