"""Shared helpers for the ZNS tests: a stand-in fixture and a channel wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from zns_standin import APP_ID, APP_SECRET, OA_ID, ZnsStandin

from notifier import ZnsChannel, ZnsConfig, ZnsTokenStore

# Template ids for every kind in both languages (ids as Zalo issues them: digits).
TEMPLATES = {
    (kind, lang): str(200000 + i * 10 + j)
    for i, kind in enumerate(
        (
            "outage_detected",
            "etr_updated",
            "restored",
            "still_out_nested",
            "planned_notice",
            "planned_reminder",
            "planned_cancelled",
        )
    )
    for j, lang in enumerate(("vi", "en"))
}

_CHANNELS: dict[int, list[ZnsChannel]] = {}


@pytest.fixture
async def zns() -> AsyncIterator[ZnsStandin]:
    server = ZnsStandin()
    await server.start()
    try:
        yield server
    finally:
        for channel in _CHANNELS.pop(id(server), []):
            await channel.aclose()
        await server.stop()


def zns_config(server: ZnsStandin, **overrides: Any) -> ZnsConfig:
    fields: dict[str, Any] = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "oa_id": OA_ID,
        "templates": TEMPLATES,
        "access_token": "initial-access-token",
        "refresh_token": "initial-refresh-token",
        "access_expires_at_s": 4_000_000_000.0,
        "base_url": server.base_url,
        "oauth_url": server.base_url,
        "messages_per_s": 10_000.0,
        "timeout_s": 5.0,
    }
    fields.update(overrides)
    return ZnsConfig(**fields)


def zns_channel(
    server: ZnsStandin, *, store: ZnsTokenStore | None = None, **overrides: Any
) -> ZnsChannel:
    channel = ZnsChannel(zns_config(server, **overrides), store)
    _CHANNELS.setdefault(id(server), []).append(channel)  # closed by the fixture
    return channel
