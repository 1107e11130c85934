"""Service settings: environment (``GRIDWATCH_`` prefix) and ``.env``.

The production profile refuses unsafe defaults at start-up rather than at 3 a.m.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridwatch.core.errors import ConfigError

DEV_SECRET = "dev-only-change-me"  # noqa: S105 - the well-known value production refuses
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8080"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRIDWATCH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    profile: Literal["dev", "test", "production"] = "dev"

    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    database_schema: str = Field(default="gridwatch", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    database_pool_max: int = Field(default=8, ge=1, le=200)

    mqtt_url: SecretStr = SecretStr(DEFAULT_MQTT_URL)
    mqtt_prefix: str = Field(default="gridwatch/v1", pattern=r"^[A-Za-z0-9_\-/]{1,128}$")
    # Zones this worker consumes; "+" means all. Several workers split the load by zone.
    mqtt_zones: list[str] = Field(default_factory=lambda: ["+"])
    mqtt_client_id: str = Field(default="gridwatch-ingest", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # MQTT 5 by default; "3.1.1" for brokers that speak only that (the demo's embedded amqtt).
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    # Session expiry the broker keeps our queue for while we are down.
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)

    # Telemetry rules (event time).
    max_future_skew_s: float = Field(default=300.0, ge=0)
    max_age_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    telemetry_retention_days: int = Field(default=90, ge=1)
    ingest_batch_max: int = Field(default=5000, ge=1, le=100_000)
    ingest_flush_interval_s: float = Field(default=0.2, gt=0, le=10)
    ingest_queue_max: int = Field(default=50_000, ge=100)

    # Secrets. Dev defaults are refused by the production profile.
    api_secret: SecretStr = SecretStr(DEV_SECRET)
    twilio_account_sid: str = "ACdev"
    twilio_auth_token: SecretStr = SecretStr(DEV_SECRET)

    # Notifications. SMS is sent when a From number or a Messaging Service SID is set.
    twilio_from_number: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    twilio_messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    twilio_messages_per_s: float = Field(default=100.0, gt=0, le=10_000)
    # Replaces https://api.twilio.com (a loopback stand-in in tests); unset in production.
    twilio_api_base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,200}$")
    # scheme://host[:port] as Twilio and browsers reach the service: Twilio's signatures
    # cover it, status callbacks and customer links point at it.
    public_base_url: str = Field(
        default=DEFAULT_PUBLIC_BASE_URL, pattern=r"^https?://[A-Za-z0-9.\-]{1,200}(:[0-9]{1,5})?$"
    )
    notify_link_secret: SecretStr = SecretStr(DEV_SECRET)
    vapid_private_key_path: Path | None = None
    vapid_subject: str = Field(
        default="mailto:ops@example.invalid", pattern=r"^(mailto:|https://)\S{3,200}$"
    )
    utility_webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,500}$")
    utility_webhook_secret: SecretStr = SecretStr(DEV_SECRET)
    # Run the outbox dispatcher inside ``gridwatch serve`` (else: ``gridwatch notify dispatch``).
    notify_dispatch: bool = True

    # Zalo ZNS through the utility's Official Account (docs/notifications.md). ZNS is sent
    # when ``zns_app_id`` is set; then the secret, the OA, a refresh token and template ids
    # ("outage_detected.vi=123456,restored.vi=234567,...") are required.
    zns_app_id: str | None = Field(default=None, pattern=r"^[0-9]{1,32}$")
    zns_app_secret: SecretStr = SecretStr("")
    zns_oa_id: str | None = Field(default=None, pattern=r"^[0-9]{1,32}$")
    # Verifies the OA's event webhook (delivery receipts).
    zns_oa_secret_key: SecretStr = SecretStr("")
    # The first refresh token; Zalo rotates it on each refresh and later ones live in the
    # database (notify_zns_token), shared by every dispatcher.
    zns_refresh_token: SecretStr = SecretStr("")
    zns_templates: str = Field(default="", max_length=10_000)
    # Replace https://business.openapi.zalo.me and https://oauth.zaloapp.com (loopback
    # stand-ins in tests); unset in production.
    zns_api_base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,200}$")
    zns_oauth_base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,200}$")
    zns_messages_per_s: float = Field(default=50.0, gt=0, le=10_000)
    # A "zns>sms" customer gets the SMS when ZNS has not confirmed delivery within this many
    # seconds (0: only on a refusal or an "undelivered" receipt, never on silence).
    notify_fallback_receipt_timeout_s: float = Field(default=300.0, ge=0, le=7 * 86400)
    # Prices for ``gridwatch notify costs`` (VND, from the utility's contracts): per SMS
    # segment (a Vietnamese-diacritic SMS is UCS-2, 70 characters a segment) and per ZNS.
    notify_price_sms_segment_vnd: float = Field(default=850.0, ge=0, le=1_000_000)
    notify_price_zns_vnd: float = Field(default=300.0, ge=0, le=1_000_000)

    # Restoration-time estimation: the crews who repair outages (docs/etr-model.md). Crews
    # per zone, or ``etr_shared_crews`` when one pool of crews serves every zone.
    etr_default_crews: int = Field(default=4, ge=1, le=10_000)
    etr_crews_per_zone: dict[str, int] = Field(default_factory=dict)
    etr_shared_crews: int | None = Field(default=None, ge=1, le=10_000)

    # Periodic loops that shape a decision or a notice, in service-clock (event) seconds, so
    # a replay at 600x looks as often per minute of grid time as the live service does.
    # The ETR task's look for new outages without an ETR and for a due refresh:
    etr_poll_event_s: float = Field(default=1.0, ge=0.001, le=60)
    # The notify bridge's round judging refreshed ETRs for an ``etr_updated`` notice:
    etr_notice_poll_event_s: float = Field(default=1.0, ge=0.001, le=60)
    # The planned-work consumer (API events -> notices) and its window start/end:
    planned_notice_poll_event_s: float = Field(default=1.0, ge=0.001, le=60)
    # How far behind the service clock (event seconds) such a loop may fall before the
    # service says the machine is not keeping up (gridwatch_falling_behind_total, a warning).
    loop_lag_budget_event_s: float = Field(default=30.0, gt=0, le=3600)

    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _zns_complete(self) -> Settings:
        if self.zns_app_id is None:
            return self
        missing = [
            name
            for name in ("zns_app_secret", "zns_refresh_token")
            if not getattr(self, name).get_secret_value()
        ]
        if self.zns_oa_id is None:
            missing.append("zns_oa_id")
        if not self.zns_templates.strip():
            missing.append("zns_templates")
        if missing:
            raise ValueError("ZNS is on (zns_app_id set) but missing: " + ", ".join(missing))
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.profile != "production":
            return self
        unsafe = [
            name
            for name in ("api_secret", "twilio_auth_token", "notify_link_secret")
            if getattr(self, name).get_secret_value() in ("", DEV_SECRET)
        ]
        if self.utility_webhook_url and self.utility_webhook_secret.get_secret_value() in (
            "",
            DEV_SECRET,
        ):
            unsafe.append("utility_webhook_secret")
        if self.database_url.get_secret_value() == DEFAULT_DATABASE_URL:
            unsafe.append("database_url")
        if self.public_base_url == DEFAULT_PUBLIC_BASE_URL:
            unsafe.append("public_base_url")
        if unsafe:
            raise ValueError(
                "production profile refuses default values for: " + ", ".join(sorted(unsafe))
            )
        return self


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's errors into one readable ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"GRIDWATCH_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
