"""What ``/readyz`` asks the running service (the database it pings itself)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Readiness(Protocol):
    def broker_connected(self) -> bool:
        """True while the service holds a live MQTT connection."""
        ...


class FlagReadiness:
    """A ``Readiness`` the owner flips; the ingest loop (or a test) sets it."""

    def __init__(self, *, broker_connected: bool = False) -> None:
        self._broker_connected = broker_connected

    def set_broker_connected(self, connected: bool) -> None:
        self._broker_connected = connected

    def broker_connected(self) -> bool:
        return self._broker_connected
