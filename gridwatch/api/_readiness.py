"""What ``/readyz`` asks the running service (the database it pings itself).

Ready means every task that shapes a decision or a notice is running, not merely that the
process listens: detection started (kernels compiled, open outages taken back), the ETR
task holding a model, the notify bridge and the planned-work loop started, ingest on the
broker. A replay at 600x runs 80 grid minutes in the 8 s an ETR model takes to load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

TaskState = Literal["running", "starting", "stopped"]


@runtime_checkable
class Readiness(Protocol):
    def broker_connected(self) -> bool:
        """True while the service holds a live MQTT connection."""
        ...

    def tasks(self) -> dict[str, TaskState]:
        """Each task that shapes a notice, by name: ``running`` once it has started (and
        not ended), ``starting`` before, ``stopped`` if it ended. Ready needs all running."""
        ...


class FlagReadiness:
    """A ``Readiness`` the owner flips (tests, benchmarks); it runs no tasks."""

    def __init__(self, *, broker_connected: bool = False) -> None:
        self._broker_connected = broker_connected

    def set_broker_connected(self, connected: bool) -> None:
        self._broker_connected = connected

    def broker_connected(self) -> bool:
        return self._broker_connected

    def tasks(self) -> dict[str, TaskState]:
        return {}


class ServiceReadiness:
    """The running service's ``Readiness``: ``expect`` each task with its "has started"
    check before the API answers (so a task not yet created counts as starting), then
    ``watch`` its asyncio task, whose end makes it ``stopped``."""

    def __init__(self, broker_connected: Callable[[], bool]) -> None:
        self._broker_connected = broker_connected
        self._started: dict[str, Callable[[], bool]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def expect(self, name: str, started: Callable[[], bool]) -> None:
        self._started[name] = started

    @property
    def expected(self) -> frozenset[str]:
        return frozenset(self._started)

    def watch(self, name: str, task: asyncio.Task[None]) -> None:
        if name not in self._started:
            raise KeyError(f"task {name!r} was not expected")
        self._tasks[name] = task

    def broker_connected(self) -> bool:
        return self._broker_connected()

    def ready(self) -> bool:
        """The broker connected and every expected task running (what /readyz adds to the
        database's ping): a replay started before this decides without a model."""
        return self.broker_connected() and all(s == "running" for s in self.tasks().values())

    def tasks(self) -> dict[str, TaskState]:
        states: dict[str, TaskState] = {}
        for name, started in self._started.items():
            task = self._tasks.get(name)
            if task is not None and task.done():
                states[name] = "stopped"
            elif task is not None and started():
                states[name] = "running"
            else:
                states[name] = "starting"
        return states
