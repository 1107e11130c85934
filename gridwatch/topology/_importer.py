"""What ``gridwatch topology import FILE`` runs: read, validate, store."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gridwatch.topology._files import MAX_FILE_BYTES, read_topology_file

if TYPE_CHECKING:
    from gridwatch.store import Database


@dataclass(frozen=True)
class ImportSummary:
    devices: int
    ties: int
    meters: int
    customers: int
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"imported {self.devices} devices ({self.ties} ties), {self.meters} meters,"
            f" {self.customers} customers"
        )
        return "\n".join([text, *(f"warning: {w}" for w in self.warnings)])


async def import_topology_file(
    db: Database, path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES
) -> ImportSummary:
    """Validate the file (raising ``TopologyError`` with every problem) and replace the
    stored topology with it in one transaction."""
    from gridwatch.topology._stored import save_topology

    # Parsing a million rows is CPU work: keep it off the event loop.
    topology = await asyncio.to_thread(read_topology_file, path, max_bytes=max_bytes)
    await save_topology(db, topology)
    return ImportSummary(
        devices=len(topology.devices),
        ties=int((topology.devices.alt_parent >= 0).sum()),
        meters=len(topology.meters),
        customers=len(topology.customers),
        warnings=list(topology.warnings),
    )
