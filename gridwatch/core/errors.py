"""gridwatch's own error types.

Library errors (psycopg, aiomqtt/paho, twilio, ...) are translated into these at the
boundary module that talks to the library, so the core never sees a library exception.
"""

from __future__ import annotations


class GridwatchError(Exception):
    """Base of every error gridwatch raises on purpose."""


class ConfigError(GridwatchError):
    """Settings are missing, malformed or unsafe for the chosen profile."""


class StoreError(GridwatchError):
    """The database refused an operation (constraint, bad SQL, bad data)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now; the operation may be retried."""


class BrokerUnavailable(GridwatchError):
    """The MQTT broker cannot be reached right now; the operation may be retried."""


class ContractError(GridwatchError):
    """A telemetry message breaks ../shared/telemetry-contract.md.

    ``reason`` is short, names the field, and is safe to publish in a dead letter.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TopologyError(GridwatchError):
    """A topology file or change is invalid. ``problems`` lists every finding, not the first."""

    def __init__(self, problems: list[str]) -> None:
        shown = "; ".join(problems[:20])
        more = f" (+{len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"invalid topology: {shown}{more}")
        self.problems = problems
