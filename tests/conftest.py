"""Shared fixtures: the real PostgreSQL and the real Mosquitto, isolated per test.

Each test gets its own database schema and its own MQTT topic prefix, so tests never
see each other (and can run against the same servers a developer uses).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest

from gridwatch.store import Database, drop_schema, migrate

TEST_DATABASE_URL = os.environ.get(
    "GRIDWATCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TEST_MQTT_URL = os.environ.get("GRIDWATCH_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def database_url() -> str:
    if not _reachable(TEST_DATABASE_URL, 5432):
        pytest.fail(
            f"PostgreSQL is not reachable at {TEST_DATABASE_URL}: start it (./dev services)"
        )
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    if not _reachable(TEST_MQTT_URL, 1883):
        pytest.fail(f"Mosquitto is not reachable at {TEST_MQTT_URL}: start it (./dev services)")
    return TEST_MQTT_URL


@pytest.fixture
def schema_name() -> str:
    return unique_name("gwtest")


@pytest.fixture
async def db(database_url: str, schema_name: str) -> AsyncIterator[Database]:
    """A migrated schema of its own, dropped afterwards."""
    database = await Database.open(database_url, schema_name, create_schema=True, max_size=4)
    try:
        await migrate(database)
        yield database
    finally:
        await drop_schema(database)
        await database.close()


@pytest.fixture
def topic_prefix() -> str:
    return f"gwtest/{uuid.uuid4().hex[:12]}/v1"
