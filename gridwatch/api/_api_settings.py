"""Settings of the control API (``GRIDWATCH_`` prefix, ``.env``), kept beside the API so
the service settings stay small: planned-work rules, reliability day boundary, auth limits."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NoWorkPeriod(BaseModel):
    """Local dates [start, end] (inclusive) in which no planned work may be scheduled."""

    name: str = Field(min_length=1, max_length=100)
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> NoWorkPeriod:
        if self.end < self.start:
            raise ValueError(f"no-work period {self.name!r} ends before it starts")
        return self


def _vietnam_no_work_periods() -> list[NoWorkPeriod]:
    # Public holidays of Vietnam for 2026-2027 (Labour Code art. 112), widened around Tết,
    # when utilities avoid planned cuts. Lunar dates converted by hand: each year's official
    # schedule (announced by the government) should be checked and set by the utility.
    periods = [
        ("Tết Dương lịch 2026", "2026-01-01", "2026-01-01"),
        ("Tết Nguyên đán 2026 (Bính Ngọ)", "2026-02-12", "2026-02-24"),
        ("Giỗ Tổ Hùng Vương 2026", "2026-04-26", "2026-04-26"),
        ("Ngày Giải phóng miền Nam / Quốc tế Lao động 2026", "2026-04-30", "2026-05-01"),
        ("Quốc khánh 2026", "2026-09-01", "2026-09-02"),
        ("Tết Dương lịch 2027", "2027-01-01", "2027-01-01"),
        ("Tết Nguyên đán 2027 (Đinh Mùi)", "2027-02-03", "2027-02-13"),
        ("Giỗ Tổ Hùng Vương 2027", "2027-04-16", "2027-04-16"),
        ("Ngày Giải phóng miền Nam / Quốc tế Lao động 2027", "2027-04-30", "2027-05-01"),
        ("Quốc khánh 2027", "2027-09-02", "2027-09-03"),
    ]
    return [
        NoWorkPeriod(name=n, start=date.fromisoformat(s), end=date.fromisoformat(e))
        for n, s, e in periods
    ]


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRIDWATCH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Circular 22/2020/TT-BCT: customers are told of planned cuts at least 5 days ahead.
    planned_notice_days: float = Field(default=5.0, ge=0, le=60)
    no_planned_work_periods: list[NoWorkPeriod] = Field(default_factory=_vietnam_no_work_periods)
    # The utility's local time: reliability days and no-work dates are local (Vietnam UTC+7).
    local_utc_offset_h: float = Field(default=7.0, ge=-12, le=14)
    # Failed authentication (bad token, wrong account/phone digits) per client IP.
    auth_failures_max: int = Field(default=10, ge=1, le=10_000)
    auth_failure_window_s: float = Field(default=300.0, gt=0, le=86_400)
    # A verified token is trusted this long without asking the database again
    # (revocation takes effect within it).
    token_cache_s: float = Field(default=30.0, ge=0, le=600)
    # Live stream: events a subscriber may fall behind by before it is dropped.
    stream_queue_max: int = Field(default=256, ge=1, le=100_000)
    stream_subscribers_max: int = Field(default=5000, ge=1, le=1_000_000)
    stream_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    # Outage list responses are cached until the next outage change (the live feed's
    # NOTIFY invalidates them); this is only the safety net.
    outage_list_cache_s: float = Field(default=10.0, ge=0, le=60)
