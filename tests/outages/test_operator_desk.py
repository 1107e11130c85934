"""The operator desk on the real PostgreSQL: each command's check and write are one
transaction on the locked outage row, and an ETR override commits with its ETR row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gridwatch.core.clock import ManualClock
from gridwatch.core.errors import StoreError, StoreUnavailable
from gridwatch.etr import CrewStatusRefused, OverrideRefused
from gridwatch.outages import (
    ConfirmOutage,
    OperatorAction,
    OperatorDesk,
    SetCrewStatus,
    SetEtrOverride,
)
from gridwatch.store import Database
from gridwatch.store.audit import Actor
from tests.api_support import NOW_S, seed_network, seed_outages
from tests.polling import wait_until

ACTOR = Actor(None, "op", "operator")


def ts(s: float) -> datetime:
    return datetime.fromtimestamp(s, UTC)


async def _count(db: Database, query: str, outage_id: int) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(query, [outage_id])
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_an_override_and_its_etr_row_commit_together(db: Database) -> None:
    await seed_network(db)
    oid = (await seed_outages(db))["O-R1"]
    async with db.connection() as conn:
        # The ETR row is refused by the database (a real constraint, a real failure).
        await conn.execute(
            "ALTER TABLE etr_history ADD CONSTRAINT no_override_etrs CHECK (source <> 'override')"
        )
    desk = OperatorDesk(db, ManualClock(NOW_S))
    command = SetEtrOverride(oid, ts(NOW_S + 7200.0), "crew on site: pole", "crew-7")
    with pytest.raises(StoreError, match="no_override_etrs"):
        await desk.set_etr_override(command, ACTOR)
    # Nothing of it stays: no override, no timeline entry, no audit row, no current ETR.
    for query in (
        "SELECT count(*) FROM etr_overrides WHERE outage_id = %s",
        "SELECT count(*) FROM outage_timeline WHERE outage_id = %s AND kind = 'etr_override_set'",
        "SELECT count(*) FROM audit_log WHERE target_id = %s::text",
        "SELECT count(*) FROM outages WHERE outage_id = %s AND etr_p50 IS NOT NULL",
    ):
        assert await _count(db, query, oid) == 0, query

    # With the constraint gone the same command stores all of it at once.
    async with db.connection() as conn:
        await conn.execute("ALTER TABLE etr_history DROP CONSTRAINT no_override_etrs")
    override_id = await desk.set_etr_override(command, ACTOR)
    assert await _count(db, "SELECT count(*) FROM etr_overrides WHERE outage_id = %s", oid) == 1
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT source, p50, inputs -> 'override' ->> 'override_id' FROM etr_history"
            " WHERE outage_id = %s",
            [oid],
        )
        assert await cur.fetchall() == [("override", ts(NOW_S + 7200.0), str(override_id))]


async def _lock_waits(db: Database) -> int:
    """Backends of this database waiting for a lock."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = await cur.fetchone()
    return 0 if row is None else int(row[0])


@pytest.mark.parametrize("command", ["crew", "override"])
async def test_a_command_racing_a_cancel_sees_the_cancel(db: Database, command: str) -> None:
    """A crew report or an override that arrives while a cancel of the same outage is
    being committed is checked against the cancelled outage, not the state read before."""
    await seed_network(db)
    oid = (await seed_outages(db))["O-R1"]  # confirmed
    desk = OperatorDesk(db, ManualClock(NOW_S))
    crew = SetCrewStatus(oid, "dispatched", "crew-7", reason="sent")
    override = SetEtrOverride(oid, ts(NOW_S + 7200.0), "crew on site", "crew-7")
    refused: type[Exception] = CrewStatusRefused if command == "crew" else OverrideRefused
    async with db.connection() as conn:
        # The cancel, as the desk writes it: the row locked, the state changed, not committed.
        await conn.execute("SELECT 1 FROM outages WHERE outage_id = %s FOR UPDATE", [oid])
        await conn.execute("UPDATE outages SET state = 'cancelled' WHERE outage_id = %s", [oid])
        racing = asyncio.create_task(
            desk.set_crew_status(crew, ACTOR)
            if command == "crew"
            else desk.set_etr_override(override, ACTOR)
        )

        async def waiting() -> bool:
            return racing.done() or await _lock_waits(db) > 0

        await wait_until(waiting, what="the racing command to wait for the outage row")
    # The cancel commits here.
    with pytest.raises(refused, match=f"outage {oid} is cancelled"):
        await racing
    assert await _count(db, "SELECT count(*) FROM etr_crew_status WHERE outage_id = %s", oid) == 0
    assert await _count(db, "SELECT count(*) FROM etr_overrides WHERE outage_id = %s", oid) == 0
    assert await _count(db, "SELECT count(*) FROM audit_log WHERE target_id = %s::text", oid) == 0


class _BusyStep:
    """An engine inbox whose step holds its lock (as a runner waiting out a database
    outage does): the desk's real hold, with a lock the test owns."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.handed: list[OperatorAction] = []

    def held(self) -> asyncio.Lock:
        return self.lock

    def put(self, action: OperatorAction) -> None:
        self.handed.append(action)


async def test_a_busy_detection_step_refuses_an_action_rather_than_hanging(db: Database) -> None:
    await seed_network(db)
    oid = (await seed_outages(db))["O-T3"]  # predicted
    inbox = _BusyStep()
    desk = OperatorDesk(db, ManualClock(NOW_S), inbox=inbox, hold_wait_s=0.2)
    confirm = ConfirmOutage(oid, "seen from the road")
    async with inbox.lock:
        with pytest.raises(StoreUnavailable, match="nothing was changed"):
            await desk.change_state(confirm, ACTOR)
    # Refused whole: the outage as it was, no audit row, nothing handed to detection.
    assert await _count(db, "SELECT count(*) FROM audit_log WHERE target_id = %s::text", oid) == 0
    q = "SELECT count(*) FROM outages WHERE outage_id = %s AND state = 'predicted'"
    assert await _count(db, q, oid) == 1
    assert inbox.handed == []
    # The step done, the same command goes through and reaches detection once.
    assert await desk.change_state(confirm, ACTOR) == "confirmed"
    assert [a.outage_id for a in inbox.handed] == [oid]
