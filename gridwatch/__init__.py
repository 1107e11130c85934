"""gridwatch: outage detection, restoration-time estimation and customer notification."""

from gridwatch.core.clock import Clock, ManualClock, ReplayClock, SystemClock
from gridwatch.core.errors import (
    BrokerUnavailable,
    ConfigError,
    ContractError,
    GridwatchError,
    StoreError,
    StoreUnavailable,
    TopologyError,
)
from gridwatch.core.settings import Settings, load_settings

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
