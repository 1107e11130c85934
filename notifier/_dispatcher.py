"""Dispatchers: claim due notices (several processes, SKIP LOCKED), send, record.

Never lost, never twice: a claim marks a notice ``sending`` with a lease and commits before
the provider is called; the result is recorded after. A notice whose lease lapses while
``sending`` (the process died, or the call timed out) has an unknown outcome: it is looked
up in the provider's log and only resent if it is not there.

Leases run on the database's wall clock (process liveness); due times, backoff and rate
windows run on the service clock (event time), so a replay keeps its quiet hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gridwatch.core.clock import Clock, SystemClock
from gridwatch.core.errors import StoreError
from notifier._channel import Channel, Notice
from notifier._errors import OutcomeUnknownError, PermanentSendError, TransientSendError
from notifier._metrics import NOTICES_DISPATCHED
from notifier._phone import mask_phone
from notifier._policy import NotifyPolicy
from notifier._ports import DispatchQueue, Transactions

log = logging.getLogger(__name__)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    worker_id: str = field(default_factory=_default_worker_id)
    batch_size: int = 100
    concurrency: int = 64
    lanes: int = 4  # claim -> send -> record loops running side by side
    # Wall seconds (the database's clock, not the event clock: leases are about process
    # liveness). Must exceed the longest provider call (the channel's timeout), or a slow
    # send would be reconciled while still in flight.
    lease_s: float = 60.0
    poll_interval_s: float = 0.5
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 900.0
    # Channel fallback ("zns>sms"): the next link goes when the one before cannot deliver, or
    # was sent on a channel in ``receipt_channels`` and no receipt came within this many
    # service-clock seconds (None: wait for a receipt or a failure, never time out). A
    # channel not in ``receipt_channels`` counts as delivered once sent.
    fallback_receipt_timeout_s: float | None = 300.0
    receipt_channels: tuple[str, ...] = ("zns",)
    # A failure this dispatcher records promotes the next link in the same transaction. The
    # sweep in ``run``, every this many wall seconds, decides the rest (receipts, receipt
    # timeouts, opt-outs skipped at claim); it reads every held link, so not every poll.
    fallback_sweep_interval_s: float = 10.0


@dataclass(slots=True)
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    reconciled_sent: int = 0
    reconciled_resend: int = 0
    fallback_promoted: int = 0
    fallback_not_needed: int = 0

    def add(self, other: DispatchStats) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def backoff_s(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: between half and all of base * 2^(attempts-1)."""
    ceiling = min(cap_s, base_s * 2 ** max(0, attempts - 1))
    return rng.uniform(ceiling / 2, ceiling)


class Dispatcher:
    def __init__(
        self,
        store: Transactions[DispatchQueue],
        channels: Mapping[str, Channel],
        *,
        config: DispatcherConfig | None = None,
        policy: NotifyPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._channels = dict(channels)
        self._config = config or DispatcherConfig()
        self._policy = policy or NotifyPolicy()
        self._clock = clock or SystemClock()
        self._rng = random.Random()
        self._semaphore = asyncio.Semaphore(self._config.concurrency)

    async def reconcile_once(self) -> DispatchStats:
        """Settle notices whose outcome is unknown, before anything is retried."""
        stats = DispatchStats()
        cfg = self._config
        async with self._store.transaction() as queue:
            lost = await queue.claim_unknown(
                worker=cfg.worker_id,
                limit=cfg.batch_size,
                lease_s=cfg.lease_s,
                channels=list(self._channels),
            )
        if not lost:
            return stats
        results = await asyncio.gather(*(self._find(n) for n in lost))
        async with self._store.transaction() as queue:
            found = [
                (n.notification_id, pid)
                for n, pid in zip(lost, results, strict=True)
                if isinstance(pid, str)
            ]
            stats.reconciled_sent = await queue.record_sent(
                found, now_s=self._clock.now_s(), reconciled=True
            )
            for notice, result in zip(lost, results, strict=True):
                if result is None:
                    stats.reconciled_resend += 1
                    await self._retry_or_fail(
                        queue,
                        notice,
                        "not in the provider's log; resending",
                        delay_s=0.0,
                        stats=stats,
                    )
                elif isinstance(result, TransientSendError):
                    await queue.record_unknown(
                        notice.notification_id,
                        reconcile_after_s=cfg.backoff_base_s,
                        error=result.reason,
                    )
        NOTICES_DISPATCHED.labels("any", "reconciled").inc(stats.reconciled_sent)
        log.info(
            "reconciled unknown outcomes",
            extra={"found_sent": stats.reconciled_sent, "resend": stats.reconciled_resend},
        )
        return stats

    async def fallback_once(self) -> DispatchStats:
        """Decide held fallback links (idempotent; safe after any crash, from any process)."""
        stats = DispatchStats()
        cfg = self._config
        async with self._store.transaction() as queue:
            result = await queue.promote_fallbacks(
                now_s=self._clock.now_s(),
                receipt_timeout_s=cfg.fallback_receipt_timeout_s,
                receipt_channels=cfg.receipt_channels,
                limit=max(cfg.batch_size * 10, 1000),
            )
        stats.fallback_promoted, stats.fallback_not_needed = result.promoted, result.not_needed
        if result.promoted:
            NOTICES_DISPATCHED.labels("any", "fallback").inc(result.promoted)
            log.info("fallback links promoted", extra={"promoted": result.promoted})
        return stats

    async def _find(self, notice: Notice) -> str | TransientSendError | None:
        try:
            return await self._channels[notice.channel].find_sent(notice)
        except TransientSendError as exc:
            return exc
        except Exception as exc:
            log.exception(
                "channel lookup failed", extra={"notification_id": notice.notification_id}
            )
            return TransientSendError(f"unexpected {type(exc).__name__} in lookup")

    async def dispatch_once(self) -> DispatchStats:
        """Claim one batch of due notices, send them, record the outcomes."""
        stats = DispatchStats()
        cfg = self._config
        now_s = self._clock.now_s()
        async with self._store.transaction() as queue:
            claimed, skipped = await queue.claim_due(
                worker=cfg.worker_id,
                limit=cfg.batch_size,
                lease_s=cfg.lease_s,
                now_s=now_s,
                channels=list(self._channels),
            )
            allowed = await queue.apply_rate_limits(
                claimed,
                max_per_window=self._policy.rate_limit_per_window,
                window_s=self._policy.rate_limit_window_s,
                now_s=now_s,
            )
        stats.claimed, stats.skipped = len(allowed), skipped
        if not allowed:
            return stats
        outcomes = await asyncio.gather(*(self._send(n) for n in allowed))
        sent = [
            (n.notification_id, o)
            for n, o in zip(allowed, outcomes, strict=True)
            if isinstance(o, str)
        ]
        failed_keys: list[str] = []
        async with self._store.transaction() as queue:
            stats.sent = await queue.record_sent(sent, now_s=self._clock.now_s())
            for notice, outcome in zip(allowed, outcomes, strict=True):
                if isinstance(outcome, str):
                    continue
                if isinstance(outcome, PermanentSendError):
                    stats.failed += 1
                    failed_keys.append(notice.idempotency_key)
                    await queue.record_failed(
                        notice.notification_id, code=outcome.code, error=outcome.reason
                    )
                    log.warning(
                        "notice failed permanently",
                        extra={
                            "notification_id": notice.notification_id,
                            "code": outcome.code,
                            "to": mask_phone(notice.address)
                            if notice.channel == "sms"
                            else notice.channel,
                        },
                    )
                elif isinstance(outcome, OutcomeUnknownError):
                    stats.unknown += 1
                    await queue.record_unknown(
                        notice.notification_id,
                        reconcile_after_s=cfg.backoff_base_s,
                        error=str(outcome),
                    )
                elif await self._retry_or_fail(
                    queue, notice, outcome.reason, delay_s=outcome.retry_after_s, stats=stats
                ):
                    failed_keys.append(notice.idempotency_key)
            if failed_keys:
                # The next link of each chain, in the transaction that records the failure.
                await self._promote_after(queue, failed_keys, stats)
        for name in ("sent", "failed", "unknown", "retried", "skipped"):
            NOTICES_DISPATCHED.labels("any", name).inc(getattr(stats, name))
        return stats

    async def _promote_after(
        self, queue: DispatchQueue, keys: list[str], stats: DispatchStats
    ) -> None:
        result = await queue.promote_fallbacks(
            now_s=self._clock.now_s(),
            receipt_timeout_s=None,
            receipt_channels=self._config.receipt_channels,
            limit=len(keys),
            after_keys=keys,
        )
        stats.fallback_promoted += result.promoted
        stats.fallback_not_needed += result.not_needed
        NOTICES_DISPATCHED.labels("any", "fallback").inc(result.promoted)

    async def _retry_or_fail(
        self,
        queue: DispatchQueue,
        notice: Notice,
        reason: str,
        *,
        delay_s: float | None,
        stats: DispatchStats,
    ) -> bool:
        """Schedule a retry, or fail the notice for good (returns True) after max_attempts."""
        cfg = self._config
        if notice.attempts >= cfg.max_attempts:
            stats.failed += 1
            await queue.record_failed(
                notice.notification_id,
                code="max_attempts",
                error=f"gave up after {notice.attempts} attempts: {reason}",
            )
            return True
        stats.retried += 1
        wait_s = backoff_s(notice.attempts, cfg.backoff_base_s, cfg.backoff_cap_s, self._rng)
        if delay_s is not None:
            wait_s = max(wait_s, delay_s) if delay_s > 0 else 0.0
        await queue.record_retry(
            notice.notification_id, not_before_s=self._clock.now_s() + wait_s, error=reason
        )
        return False

    async def _send(
        self, notice: Notice
    ) -> str | TransientSendError | PermanentSendError | OutcomeUnknownError:
        async with self._semaphore:
            try:
                return await self._channels[notice.channel].send(notice)
            except (TransientSendError, PermanentSendError, OutcomeUnknownError) as exc:
                return exc
            except Exception as exc:
                # A channel bug must not stop the lane; whether it sent is unknown, so the
                # notice is reconciled (not blindly resent) like any other unknown outcome.
                log.exception(
                    "channel raised an unexpected error",
                    extra={"notification_id": notice.notification_id, "channel": notice.channel},
                )
                return OutcomeUnknownError(f"unexpected {type(exc).__name__} in channel")

    async def drain(self, *, max_rounds: int = 1000) -> DispatchStats:
        """Reconcile, then dispatch until nothing is due (tests, benchmarks, demo)."""
        total = DispatchStats()
        for _ in range(max_rounds):
            total.add(await self.reconcile_once())
            stats = await self.dispatch_once()
            fallback = await self.fallback_once()
            total.add(stats)
            total.add(fallback)
            if stats.claimed == 0 and stats.skipped == 0 and fallback.fallback_promoted == 0:
                break
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set: several claim/send/record lanes and a reconciler."""

        async def lane() -> None:
            while not stop.is_set():
                try:
                    stats = await self.dispatch_once()
                except StoreError as exc:
                    log.warning("dispatch round failed; retrying", extra={"error": str(exc)})
                    stats = DispatchStats()
                if stats.claimed == 0 and stats.skipped == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self._config.poll_interval_s)

        async def reconciler() -> None:
            last_sweep = -math.inf
            while not stop.is_set():
                try:
                    await self.reconcile_once()
                    # Fallback decisions need no lane of their own: one sweep per process at
                    # most every fallback_sweep_interval_s, again at once while it promotes.
                    if time.monotonic() - last_sweep >= self._config.fallback_sweep_interval_s:
                        last_sweep = time.monotonic()
                        if (await self.fallback_once()).fallback_promoted:
                            last_sweep = -math.inf
                            continue
                except StoreError as exc:
                    log.warning("reconcile round failed; retrying", extra={"error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._config.poll_interval_s)

        await asyncio.gather(reconciler(), *(lane() for _ in range(self._config.lanes)))
