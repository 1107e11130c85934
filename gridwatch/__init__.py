"""gridwatch: outage detection, restoration-time estimation and customer notification."""

from gridwatch._clock import Clock, ManualClock, ReplayClock, SystemClock
from gridwatch._errors import (
    BrokerUnavailable,
    ConfigError,
    ContractError,
    GridwatchError,
    StoreError,
    StoreUnavailable,
    TopologyError,
)
from gridwatch._settings import Settings, load_settings

__all__ = [
    "BrokerUnavailable",
    "Clock",
    "ConfigError",
    "ContractError",
    "GridwatchError",
    "ManualClock",
    "ReplayClock",
    "Settings",
    "StoreError",
    "StoreUnavailable",
    "SystemClock",
    "TopologyError",
    "load_settings",
]
