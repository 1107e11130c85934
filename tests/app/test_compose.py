"""docker-compose.yml and the Mosquitto config it mounts.

There is no Docker engine here: the compose file is parsed and checked for what it promises
(services, pinned images, ports, healthchecks, start order, environment that Settings
understands), and deploy/mosquitto/mosquitto.conf is run for real by the local mosquitto.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from gridwatch import ConfigError, Settings, load_settings
from gridwatch.app.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MOSQUITTO = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
MOSQUITTO_SUB = shutil.which("mosquitto_sub")

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _interpolate(value: str, values: dict[str, str]) -> str:
    return _INTERPOLATION.sub(lambda m: values[m[1]], value)


def test_the_three_services_exist(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == {"timescaledb", "mosquitto", "gridwatch"}


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    services = _services(compose)
    timescale = services["timescaledb"]["image"]
    assert re.fullmatch(r"timescale/timescaledb:\d+\.\d+\.\d+-pg17", timescale), timescale
    mosquitto = services["mosquitto"]["image"]
    assert re.fullmatch(r"eclipse-mosquitto:2\.\d+\.\d+", mosquitto), mosquitto
    assert services["gridwatch"]["build"]["dockerfile"] == "Dockerfile"
    assert (ROOT / "Dockerfile").exists()
    base = re.search(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base[1]), base[1]


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name} healthcheck lacks {key}"
    gridwatch_check = " ".join(_services(compose)["gridwatch"]["healthcheck"]["test"])
    assert "/readyz" in gridwatch_check


def test_gridwatch_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    depends = _services(compose)["gridwatch"]["depends_on"]
    assert depends == {
        "timescaledb": {"condition": "service_healthy"},
        "mosquitto": {"condition": "service_healthy"},
    }


def test_ports(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert services["mosquitto"]["ports"] == ["1883:1883"]
    assert services["gridwatch"]["ports"] == ["127.0.0.1:8080:8080"]
    assert "ports" not in services["timescaledb"]  # the database stays internal
    env = _env(services["gridwatch"])
    assert env["GRIDWATCH_API_PORT"] == "8080"
    assert env["GRIDWATCH_API_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container


def test_gridwatch_runs_migrate_then_serve(compose: dict[str, Any]) -> None:
    command = " ".join(_services(compose)["gridwatch"]["command"])
    assert re.search(r"gridwatch migrate && exec gridwatch serve", command)


def test_mosquitto_mounts_config_and_password_file(compose: dict[str, Any]) -> None:
    volumes = _services(compose)["mosquitto"]["volumes"]
    assert "./deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in volumes
    assert "./deploy/mosquitto/passwd:/mosquitto/config/passwd:ro" in volumes
    assert any(v.endswith(":/mosquitto/data") for v in volumes)
    assert "password_file /mosquitto/config/passwd" in MOSQUITTO_CONF.read_text()


def test_gridwatch_environment_is_real_settings(compose: dict[str, Any]) -> None:
    env = _env(_services(compose)["gridwatch"])
    fields = {f"GRIDWATCH_{name.upper()}" for name in Settings.model_fields}
    unknown = {key for key in env if key.startswith("GRIDWATCH_")} - fields
    assert not unknown, f"compose sets variables Settings does not know: {unknown}"
    assert env["GRIDWATCH_PROFILE"] == "production"
    for needed in ("GRIDWATCH_DATABASE_URL", "GRIDWATCH_MQTT_URL", "GRIDWATCH_API_SECRET"):
        assert needed in env


def test_secrets_come_from_the_environment_and_are_required(compose: dict[str, Any]) -> None:
    env = _env(_services(compose)["gridwatch"])
    for key in ("GRIDWATCH_API_SECRET", "GRIDWATCH_TWILIO_AUTH_TOKEN"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[key]), f"{key} must be ${{VAR:?msg}}"
    assert ":?" in env["GRIDWATCH_DATABASE_URL"]
    assert ":?" in env["GRIDWATCH_MQTT_URL"]
    # Every variable compose needs is listed in the example .env.
    example = (ROOT / "deploy" / "env.example").read_text()
    needed = set(_INTERPOLATION.findall(COMPOSE.read_text()))
    listed = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert needed <= listed, needed - listed


def test_production_settings_load_from_the_compose_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "POSTGRES_PASSWORD": "pg-secret",
        "MQTT_PASSWORD": "mqtt-secret",
        "GRIDWATCH_API_SECRET": "api-secret",
        "GRIDWATCH_TWILIO_ACCOUNT_SID": "AC123",
        "GRIDWATCH_TWILIO_AUTH_TOKEN": "twilio-secret",
        "GRIDWATCH_TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
        "GRIDWATCH_NOTIFY_LINK_SECRET": "link-secret",
        "GRIDWATCH_PUBLIC_BASE_URL": "https://outages.example.vn",
    }
    for key, value in _env(_services(compose)["gridwatch"]).items():
        monkeypatch.setenv(key, _interpolate(value, secrets))
    monkeypatch.chdir(ROOT / "deploy")  # no .env here
    settings = load_settings()
    assert settings.profile == "production"
    assert settings.database_url.get_secret_value() == (
        "postgresql://postgres:pg-secret@timescaledb:5432/gridwatch"
    )
    assert settings.mqtt_url.get_secret_value() == "mqtt://gridwatch:mqtt-secret@mosquitto:1883"
    assert settings.api_port == 8080
    # ... and the production profile still refuses a default secret.
    monkeypatch.setenv("GRIDWATCH_API_SECRET", "dev-only-change-me")
    with pytest.raises(ConfigError, match="api_secret"):
        load_settings()


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".venv", "var/", "deploy/mosquitto/passwd", ".git"):
        assert entry in ignored


# -- the mosquitto config, run for real ----------------------------------------------------


def _broker_owned(path: Path) -> None:
    """Started as root, mosquitto drops to the ``mosquitto`` user (as it does in the image),
    which must read the password file and write the data directory."""
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    os.chown(path, user.pw_uid, user.pw_gid)


@pytest.fixture
def mosquitto_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: it sits under a 0700 directory the broker user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="gwtest-mosquitto-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mosquitto_with_repo_config(mosquitto_dir: Path) -> Iterator[tuple[int, str]]:
    if not (MOSQUITTO and MOSQUITTO_PASSWD):
        pytest.skip("mosquitto and mosquitto_passwd are needed to check the config")
    tmp_path = mosquitto_dir
    password = f"pw-{uuid.uuid4().hex[:10]}"
    passwd = tmp_path / "passwd"
    subprocess.run(
        [MOSQUITTO_PASSWD, "-b", "-c", str(passwd), "gridwatch", password],
        check=True,
        capture_output=True,
    )
    passwd.chmod(0o600)
    _broker_owned(passwd)
    (tmp_path / "data").mkdir()
    _broker_owned(tmp_path / "data")
    port = free_port()
    text = MOSQUITTO_CONF.read_text(encoding="utf-8")
    # Only the environment-specific lines change: port, password file path, data dir.
    text, n_listener = re.subn(
        r"^listener 1883 0\.0\.0\.0$", f"listener {port} 127.0.0.1", text, flags=re.MULTILINE
    )
    text, n_passwd = re.subn(
        r"^password_file .*$", f"password_file {passwd}", text, flags=re.MULTILINE
    )
    text, n_data = re.subn(
        r"^persistence_location .*$",
        f"persistence_location {tmp_path}/data/",
        text,
        flags=re.MULTILINE,
    )
    assert (n_listener, n_passwd, n_data) == (1, 1, 1)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text, encoding="utf-8")
    process = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"mosquitto refused deploy/mosquitto/mosquitto.conf:\n{output}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail("mosquitto did not start listening")
            time.sleep(0.05)
        yield port, password
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()


async def test_mosquitto_config_accepts_the_password_and_carries_qos1(
    mosquitto_with_repo_config: tuple[int, str],
) -> None:
    port, password = mosquitto_with_repo_config
    async with aiomqtt.Client(
        "127.0.0.1", port, username="gridwatch", password=password, identifier="gw-test-sub"
    ) as sub:
        await sub.subscribe("gridwatch/v1/+/batch", qos=1)
        async with aiomqtt.Client(
            "127.0.0.1", port, username="gridwatch", password=password
        ) as pub:
            await pub.publish("gridwatch/v1/Z1/batch", b'{"readings": []}', qos=1)
        async for message in sub.messages:
            assert message.payload == b'{"readings": []}'
            assert message.qos == 1
            break


@pytest.mark.parametrize(
    ("username", "password"),
    [("gridwatch", "wrong-password"), (None, None), ("intruder", "x")],
)
async def test_mosquitto_config_refuses_bad_or_missing_credentials(
    mosquitto_with_repo_config: tuple[int, str], username: str | None, password: str | None
) -> None:
    port, _ = mosquitto_with_repo_config
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            "127.0.0.1", port, username=username, password=password, timeout=5
        ):
            pass


def test_mosquitto_healthcheck_command_works(
    compose: dict[str, Any], mosquitto_with_repo_config: tuple[int, str]
) -> None:
    if not MOSQUITTO_SUB:
        pytest.skip("mosquitto_sub is needed")
    port, password = mosquitto_with_repo_config
    shell = _services(compose)["mosquitto"]["healthcheck"]["test"][1]
    # Compose turns $$ into $; the container's shell then expands $MQTT_PASSWORD.
    command = shell.replace("$$", "$").replace("-p 1883", f"-p {port}")
    result = subprocess.run(
        ["sh", "-c", command],
        env={"MQTT_PASSWORD": password, "PATH": "/usr/bin:/bin:/usr/sbin"},
        capture_output=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    bad = subprocess.run(
        ["sh", "-c", command],
        env={"MQTT_PASSWORD": "wrong", "PATH": "/usr/bin:/bin:/usr/sbin"},
        capture_output=True,
        timeout=20,
    )
    assert bad.returncode != 0
