"""Switching that is checked in memory first and then recorded in the store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gridwatch.topology._model import Topology

if TYPE_CHECKING:
    from gridwatch.store import Database


async def apply_switching(
    db: Database, topology: Topology, close: Iterable[str] = (), open: Iterable[str] = ()
) -> Topology:
    """Validate the switching (radial, no loop, nothing fed twice), store the new
    open/closed state, and return the re-parented topology. Nothing is stored if invalid."""
    from gridwatch.store.topology import set_devices_open

    close, open = list(close), list(open)
    switched = topology.with_switching(close=close, open=open)
    await set_devices_open(db, {**{d: False for d in close}, **{d: True for d in open}})
    return switched
