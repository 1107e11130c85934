"""The simulators' own errors (all are gridwatch errors, so the CLI prints them as one line)."""

from __future__ import annotations

from gridwatch.core.errors import GridwatchError


class SimulatorError(GridwatchError):
    """A simulator was asked for something impossible (bad parameter, bad scenario file)."""


class UnknownScenario(SimulatorError):
    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown scenario {name!r}; valid names: {', '.join(valid)}")
        self.name = name
        self.valid = valid


class RecordingError(SimulatorError):
    """A recording file is corrupt; the message names the file and line."""


def check_probability(name: str, value: float) -> float:
    if not (0.0 <= float(value) <= 1.0):
        raise SimulatorError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    if not (float(value) >= 0.0):  # also refuses NaN
        raise SimulatorError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def check_positive(name: str, value: float) -> float:
    if not (float(value) > 0.0):
        raise SimulatorError(f"{name} must be > 0, got {value!r}")
    return float(value)


def check_count(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SimulatorError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
