"""The demo's embedded PostgreSQL, started for real (wheel binaries and system binaries),
migrated with gridwatch's own migrations, stopped, and reused."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gridwatch import StoreUnavailable, load_settings
from gridwatch.app.embedded import (
    EmbeddedPostgres,
    demo_services,
    system_bin_dir,
    wheel_bin_dir,
)
from gridwatch.store import Database, migrate, telemetry_storage

BACKENDS = [
    pytest.param(
        "wheel", marks=pytest.mark.skipif(wheel_bin_dir() is None, reason="no embedded wheel")
    ),
    pytest.param(
        "system", marks=pytest.mark.skipif(system_bin_dir() is None, reason="no system binaries")
    ),
]


@pytest.fixture
def data_root() -> Iterator[Path]:
    # Under root the server runs as an unprivileged user, who must be able to reach the
    # directory: pytest's tmp_path lives under a 0700 directory, so use /tmp directly.
    root = Path(tempfile.mkdtemp(prefix="gwtest-pg-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _port_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_start_migrate_stop_and_reuse(backend: str, data_root: Path) -> None:
    async with EmbeddedPostgres(data_root, backend=backend) as pg:  # type: ignore[arg-type]
        assert pg.backend_used == backend
        assert pg.url.startswith("postgresql://postgres@127.0.0.1:")
        if os.geteuid() == 0:
            assert pg.data_dir is not None
            assert pg.data_dir.stat().st_uid != 0  # PostgreSQL refuses root
        db = await Database.open(pg.url, "gridwatch", create_schema=True)
        try:
            applied = await migrate(db)
            assert applied, "gridwatch's migrations ran on the embedded server"
            assert await telemetry_storage(db) == "plain"
            async with db.connection() as conn:
                await conn.execute("CREATE TABLE demo_marker (n int)")
                await conn.execute("INSERT INTO demo_marker VALUES (42)")
        finally:
            await db.close()
        first_port = pg.port
    assert _port_closed(first_port)

    # A second run reuses the cluster: no initdb, the data is still there.
    assert pg.data_dir is not None
    pg_version_mtime = (pg.data_dir / "PG_VERSION").stat().st_mtime
    async with EmbeddedPostgres(data_root, backend=backend) as again:
        async with await psycopg.AsyncConnection.connect(again.url) as conn:
            cur = await conn.execute("SELECT n FROM gridwatch.demo_marker")
            assert await cur.fetchone() == (42,)
        db = await Database.open(again.url, "gridwatch")
        try:
            assert await migrate(db) == []  # already applied
        finally:
            await db.close()
    assert again.data_dir == pg.data_dir
    assert (again.data_dir / "PG_VERSION").stat().st_mtime == pg_version_mtime


async def test_a_running_cluster_is_adopted_and_left_running(data_root: Path) -> None:
    owner = EmbeddedPostgres(data_root)
    await owner.__aenter__()
    try:
        async with EmbeddedPostgres(data_root) as guest:
            assert guest.port == owner.port
        # The guest did not stop the owner's server.
        async with await psycopg.AsyncConnection.connect(owner.url) as conn:
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await owner.__aexit__(None, None, None)
    assert _port_closed(owner.port or guest.port)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another user")
def test_unreachable_data_dir_under_root_is_a_clear_error(data_root: Path) -> None:
    private = data_root / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(StoreUnavailable, match="not searchable by other users"):
        EmbeddedPostgres(private / "pg").start()


def test_missing_run_as_user_is_a_clear_error(data_root: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root needs a run-as user")
    with pytest.raises(StoreUnavailable, match="does not exist"):
        EmbeddedPostgres(data_root, run_as="no-such-user-gw").start()


async def test_demo_services_use_configured_urls_without_starting_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", "postgresql://u@db.example:5432/gw")
    monkeypatch.setenv("GRIDWATCH_MQTT_URL", "mqtt://broker.example:1883")
    settings = load_settings()
    async with demo_services(settings, pg_data_root=tmp_path / "never") as urls:
        db_url, mqtt_url = urls
        assert db_url == "postgresql://u@db.example:5432/gw"
        assert mqtt_url == "mqtt://broker.example:1883"
        assert urls.embedded == frozenset()
        assert urls.mqtt_protocol == settings.mqtt_protocol
    assert not (tmp_path / "never").exists()


async def test_demo_services_embed_what_is_not_configured(
    monkeypatch: pytest.MonkeyPatch, data_root: Path
) -> None:
    import aiomqtt

    monkeypatch.delenv("GRIDWATCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("GRIDWATCH_MQTT_URL", raising=False)
    monkeypatch.chdir(data_root)  # no .env here
    settings = load_settings()
    async with demo_services(settings, pg_data_root=data_root / "pg") as urls:
        assert urls.embedded == frozenset({"database", "broker"})
        async with await psycopg.AsyncConnection.connect(urls.database_url) as conn:
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
        port = int(urls.mqtt_url.rsplit(":", 1)[1])
        protocol = (
            aiomqtt.ProtocolVersion.V311
            if urls.mqtt_protocol == "3.1.1"
            else aiomqtt.ProtocolVersion.V5
        )
        async with aiomqtt.Client("127.0.0.1", port, protocol=protocol) as client:
            await client.subscribe("x", qos=1)
    assert _port_closed(port)
