"""ETR errors: refusals an operator or importer can act on (all GridwatchError)."""

from __future__ import annotations

from gridwatch.core.errors import GridwatchError


class EtrError(GridwatchError):
    """Base of the ETR errors."""


class HistoryRejected(EtrError):
    """A history cannot produce a model (too few usable restorations, malformed file)."""


class OverrideRefused(EtrError):
    """An override ETR is in the past, absurdly far ahead, or otherwise unusable.

    ``reason`` is short and safe to return to the API caller.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"override refused: {reason}")
        self.reason = reason


class ModelUnavailable(EtrError):
    """No fitted model is stored yet (run a refit first)."""


class CrewStatusRefused(EtrError):
    """A crew status for an outage that is not open, or with an unusable cause or name.

    ``reason`` is short and safe to return to the API caller.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"crew status refused: {reason}")
        self.reason = reason
