"""The notifier plugged into the PostgreSQL store.

``notifier`` knows its store only through ports (``notifier._ports``); these build its parts
with ``gridwatch.store``'s implementations filled in, for the service, the dispatcher
process, the demo, the tests and the benchmarks: each takes the ``Database`` (or, to
enqueue, a connection inside the caller's open transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter
from psycopg import AsyncConnection

import notifier
from gridwatch.core.clock import Clock
from gridwatch.core.settings import Settings
from gridwatch.store.database import Database
from gridwatch.store.notifications import PostgresOutbox, PostgresOutboxStore
from gridwatch.store.zns_tokens import PostgresZnsTokenStore


def store_dispatcher(
    db: Database,
    channels: Mapping[str, notifier.Channel],
    *,
    config: notifier.DispatcherConfig | None = None,
    policy: notifier.NotifyPolicy | None = None,
    clock: Clock | None = None,
) -> notifier.Dispatcher:
    """A ``notifier.Dispatcher`` on the database's outbox."""
    return notifier.Dispatcher(
        PostgresOutboxStore(db), channels, config=config, policy=policy, clock=clock
    )


def store_web_push_channel(
    db: Database,
    vapid_private_key_path: Path | str,
    *,
    subject: str,
    ttl_s: int = 24 * 3600,
    timeout_s: float = 10.0,
    clock: Clock | None = None,
) -> notifier.WebPushChannel:
    """A ``notifier.WebPushChannel`` with the database's push subscriptions."""
    return notifier.WebPushChannel(
        PostgresOutboxStore(db),
        vapid_private_key_path,
        subject=subject,
        ttl_s=ttl_s,
        timeout_s=timeout_s,
        clock=clock,
    )


async def enqueue_in(
    conn: AsyncConnection,
    change: notifier.OutageChange,
    *,
    templates: notifier.Templates | None = None,
    policy: notifier.NotifyPolicy | None = None,
) -> notifier.EnqueueResult:
    """``notifier.enqueue_for_outage_change`` in ``conn``'s open transaction."""
    return await notifier.enqueue_for_outage_change(
        PostgresOutbox(conn), change, templates=templates, policy=policy
    )


def store_webhooks_router(
    db: Database, config: notifier.WebhooksConfig, *, clock: Clock | None = None
) -> APIRouter:
    return notifier.create_webhooks_router(PostgresOutboxStore(db), config, clock=clock)


def store_zns_webhook_router(
    db: Database, config: notifier.ZnsWebhookConfig, *, clock: Clock | None = None
) -> APIRouter:
    return notifier.create_zns_webhook_router(PostgresOutboxStore(db), config, clock=clock)


def store_zns_channel(
    settings: Settings, db: Database, *, timeout_s: float = 10.0, **given: str | float | None
) -> notifier.ZnsChannel | None:
    """``notifier.zns_channel_from_settings`` with the OA's token pair in the database
    (shared by every dispatcher, see ``PostgresZnsTokenStore``)."""
    return notifier.zns_channel_from_settings(
        settings, lambda oa_id: PostgresZnsTokenStore(db, oa_id), timeout_s=timeout_s, **given
    )


__all__ = [
    "enqueue_in",
    "store_dispatcher",
    "store_web_push_channel",
    "store_webhooks_router",
    "store_zns_channel",
    "store_zns_webhook_router",
]
