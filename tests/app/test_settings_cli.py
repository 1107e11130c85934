from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from gridwatch import ConfigError, load_settings
from gridwatch.app.cli import main


def test_dev_profile_accepts_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDWATCH_PROFILE", raising=False)
    assert load_settings().profile == "dev"


def test_production_refuses_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_PROFILE", "production")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "api_secret" in message
    assert "twilio_auth_token" in message
    assert "database_url" in message


def test_production_with_real_secrets_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_PROFILE", "production")
    monkeypatch.setenv("GRIDWATCH_API_SECRET", "s3cret-from-vault")
    monkeypatch.setenv("GRIDWATCH_TWILIO_AUTH_TOKEN", "tw-token-from-vault")
    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", "postgresql://gw:pw@db:5432/gridwatch")
    monkeypatch.setenv("GRIDWATCH_NOTIFY_LINK_SECRET", "link-secret-from-vault")
    monkeypatch.setenv("GRIDWATCH_PUBLIC_BASE_URL", "https://gridwatch.example.vn")
    settings = load_settings()
    assert settings.api_secret.get_secret_value() == "s3cret-from-vault"
    assert "s3cret" not in repr(settings)  # secrets never printed


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("GRIDWATCH_API_PORT", "99999", "API_PORT"),
        ("GRIDWATCH_DATABASE_SCHEMA", "Robert'); DROP TABLE", "DATABASE_SCHEMA"),
        ("GRIDWATCH_MQTT_PREFIX", "a/#", "MQTT_PREFIX"),
        ("GRIDWATCH_MAX_FUTURE_SKEW_S", "-1", "MAX_FUTURE_SKEW_S"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"GRIDWATCH_{field}"):
        load_settings()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["demo", "--speed", "-3"],
        ["demo", "--speed", "nan"],
        ["demo", "--duration", "x" * 10_000],
        ["topology", "import", "/nonexistent/topology.json"],
        ["migrate", "--storage", "mysql"],
    ],
)
def test_bad_arguments_exit_2_with_a_reason(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert len(err) < 4000  # an oversized argument is not echoed back whole


def test_config_error_is_one_clear_line_not_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gridwatch", "migrate"],
        capture_output=True,
        text=True,
        env={"GRIDWATCH_API_PORT": "nope", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert proc.returncode == 1
    assert "GRIDWATCH_API_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr


async def _run_cli(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridwatch",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_migrate_command_against_real_postgres(
    database_url: str, schema_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridwatch.store import Database, drop_schema

    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("GRIDWATCH_DATABASE_SCHEMA", schema_name)
    try:
        code, out, err = await _run_cli("migrate")
        assert code == 0, err
        assert "applied 0001_core" in out
        assert "telemetry storage: plain" in out
        code, out, err = await _run_cli("migrate")
        assert code == 0, err
        assert "up to date" in out
    finally:
        db = await Database.open(database_url, schema_name)
        await drop_schema(db)
        await db.close()
