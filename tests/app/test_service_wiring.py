"""The service's notifier wiring from settings: channels, refused configuration, templates
checked at start-up, and the Twilio webhooks mounted (public, signature-checked) under /notify."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gridwatch import load_settings
from gridwatch.app.service import NotifyOptions, channels_from_settings, running_service
from gridwatch.core.errors import ConfigError
from gridwatch.store import Database
from gridwatch.topology import save_topology
from simulators import Simulation
from simulators._scenario import scenario_from_dict
from tests.service_support import STORY


def test_channels_follow_the_settings(tmp_path: Path, db: Database) -> None:
    assert channels_from_settings(load_settings(), db) == {}
    settings = load_settings(
        twilio_from_number="+15005550006",
        utility_webhook_url="https://app.example.vn/hook",
        utility_webhook_secret="0123456789abcdef0123",
    )
    assert set(channels_from_settings(settings, db)) == {"sms", "webhook"}


def test_bad_notifier_settings_are_refused_with_the_variable_named(
    tmp_path: Path, db: Database
) -> None:
    with pytest.raises(ConfigError, match="VAPID_PRIVATE_KEY_PATH"):
        channels_from_settings(load_settings(vapid_private_key_path=tmp_path / "none.pem"), db)
    short = load_settings(utility_webhook_url="https://x.example/h", utility_webhook_secret="short")
    with pytest.raises(ConfigError, match="UTILITY_WEBHOOK_SECRET"):
        channels_from_settings(short, db)
    for name, value in (
        ("twilio_from_number", "0903 123 456"),
        ("twilio_messaging_service_sid", "MG-not-a-sid"),
        ("public_base_url", "javascript:alert(1)"),
        ("twilio_messages_per_s", "0"),
    ):
        with pytest.raises(ConfigError, match=name.upper()):
            load_settings(**{name: value})


def test_production_refuses_default_notifier_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_PROFILE", "production")
    monkeypatch.setenv("GRIDWATCH_UTILITY_WEBHOOK_URL", "https://app.example.vn/hook")
    with pytest.raises(ConfigError) as info:
        load_settings()
    for name in ("notify_link_secret", "utility_webhook_secret", "public_base_url"):
        assert name in str(info.value)


async def test_broken_templates_stop_the_service_at_start(tmp_path: Path, db: Database) -> None:
    (tmp_path / "vi").mkdir()
    (tmp_path / "vi" / "restored.txt").write_text("title: x\n{nonsense}\n", encoding="utf-8")
    settings = load_settings(api_port=0, database_schema=db.schema)
    with pytest.raises(ConfigError, match="templates"):
        async with running_service(
            settings,
            db,
            detection=False,
            etr=False,
            notify=NotifyOptions(templates_dir=str(tmp_path)),
        ):
            pass


async def test_twilio_webhooks_are_mounted_and_refuse_unsigned_posts(db: Database) -> None:
    await save_topology(db, Simulation(scenario_from_dict(STORY)).grid.topology)
    settings = load_settings(api_port=0, database_schema=db.schema)
    async with running_service(
        settings, db, detection=False, etr=False, notify=NotifyOptions()
    ) as service:
        assert service.dispatcher is None  # no channel configured: nothing to dispatch
        async with httpx.AsyncClient(base_url=service.api_url) as client:
            unsigned = await client.post("/notify/twilio/inbound", data={"Body": "STOP"})
            app = await client.get("/notify/app/")
    assert unsigned.status_code == 403
    assert app.status_code == 200


ZNS_SETTINGS: dict[str, str] = {
    "zns_app_id": "1234567890",
    "zns_app_secret": "app-secret",
    "zns_oa_id": "987654321",
    "zns_oa_secret_key": "oa-secret-key",
    "zns_refresh_token": "refresh-token",
    "zns_templates": "outage_detected.vi=200001,outage_detected.en=200002",
}


async def test_the_service_sends_by_zns_and_takes_its_receipts_when_configured(
    db: Database,
) -> None:
    """GRIDWATCH_ZNS_* configure the ZNS channel in `gridwatch serve` (customers' channel
    order picks it) and mount its signature-checked delivery callback; a broken ZNS
    setting is refused at start-up with the variable named."""
    assert "zns" in channels_from_settings(load_settings(**ZNS_SETTINGS), db)
    with pytest.raises(ConfigError, match="ZNS"):
        channels_from_settings(load_settings(**{**ZNS_SETTINGS, "zns_templates": "nope"}), db)
    await save_topology(db, Simulation(scenario_from_dict(STORY)).grid.topology)
    settings = load_settings(api_port=0, database_schema=db.schema, **ZNS_SETTINGS)
    async with running_service(
        settings, db, detection=False, etr=False, notify=NotifyOptions()
    ) as service:
        assert service.dispatcher is not None
        assert "zns" in service.channels
        async with httpx.AsyncClient(base_url=service.api_url) as client:
            unsigned = await client.post("/notify/zns/events", json={"event_name": "x"})
    assert unsigned.status_code in (401, 403), unsigned.text
