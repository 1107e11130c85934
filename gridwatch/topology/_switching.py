"""The as-operated tree: the as-built tree with closed ties spliced in.

The tree is a pure function of (as-built parents, ties, open/closed state), so the same
state always gives the same tree whether it was reached by switching in memory or by
loading the stored state. Closed ties are spliced in one at a time, by id: closing tie T
(other side A) cuts the first open link on the path from T towards A's side of the tree
(else the first open link from A towards T's side) and reverses the path up to that cut,
so the section between the open device and T is fed through T. No open link on the path
means the closed tie would make a loop or join two sources: refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from gridwatch.core.errors import TopologyError
from gridwatch.topology._tree import I32, Bool

if TYPE_CHECKING:
    from gridwatch.topology._model import Topology


def operated_tree(
    normal_parent: I32, alt_parent: I32, is_open: Bool, ids: list[str]
) -> tuple[I32, I32, list[str]]:
    """(parent, gate, problems) for the given state. ``normal_parent`` must be a valid forest."""
    n = normal_parent.shape[0]
    closed_ties = np.flatnonzero((alt_parent >= 0) & ~is_open)
    if closed_ties.shape[0] == 0:
        return normal_parent.copy(), np.arange(n, dtype=np.int32), []
    par: list[int] = normal_parent.tolist()
    gate: list[int] = list(range(n))
    opened: list[bool] = is_open.tolist()
    problems: list[str] = []
    for tie in sorted(closed_ties.tolist(), key=lambda i: ids[i]):
        other = int(alt_parent[tie])
        if not _splice(par, gate, opened, tie, other):
            problems.append(_why_refused(par, tie, other, ids))
    return np.asarray(par, dtype=np.int32), np.asarray(gate, dtype=np.int32), problems


def _path_up(par: list[int], start: int) -> list[int]:
    path = [start]
    while par[path[-1]] >= 0:
        path.append(par[path[-1]])
    return path


def _splice(par: list[int], gate: list[int], opened: list[bool], tie: int, other: int) -> bool:
    up_tie, up_other = _path_up(par, tie), _path_up(par, other)
    on_other = set(up_other)
    # Trim both paths at their lowest common ancestor (if they share a root).
    meet = next((i for i, node in enumerate(up_tie) if node in on_other), None)
    if meet is not None:
        lca = up_tie[meet]
        up_tie = up_tie[: meet + 1]
        up_other = up_other[: up_other.index(lca) + 1]
    for path, head, tail in ((up_tie, tie, other), (up_other, other, tie)):
        # Link path[i] -> path[i + 1] is cut by gate[path[i]].
        cut = next((i for i in range(len(path) - 1) if opened[gate[path[i]]]), None)
        if cut is None:
            continue
        old_gate = [gate[path[i]] for i in range(cut + 1)]
        for i in range(cut, 0, -1):
            par[path[i]] = path[i - 1]
            gate[path[i]] = old_gate[i - 1]
        par[head] = tail
        gate[head] = tie
        return True
    return False


def _why_refused(par: list[int], tie: int, other: int, ids: list[str]) -> str:
    root_tie, root_other = _path_up(par, tie)[-1], _path_up(par, other)[-1]
    if root_tie == root_other:
        return (
            f"closing tie {ids[tie]} (alternate parent {ids[other]}) would make a loop:"
            f" both sides are already fed from {ids[root_tie]} with no open device between"
        )
    return (
        f"closing tie {ids[tie]} (alternate parent {ids[other]}) would feed one section from"
        f" two sources ({ids[root_tie]} and {ids[root_other]}): open a device on either side"
    )


def switched(topology: Topology, close: list[str], open_: list[str]) -> Topology:
    devices = topology.devices
    problems: list[str] = []
    wanted: dict[int, bool] = {}
    for device_id, state in [(d, False) for d in close] + [(d, True) for d in open_]:
        index = topology.device_index.get(device_id) if isinstance(device_id, str) else None
        if index is None:
            problems.append(f"switching: unknown device {device_id!r}")
        elif wanted.get(index, state) != state:
            problems.append(f"switching: device {device_id} is both closed and opened")
        else:
            wanted[index] = state
    if problems:
        raise TopologyError(problems)
    is_open = devices.is_open.copy()
    for index, state in wanted.items():
        is_open[index] = state
    ids: list[str] = devices.ids.tolist()
    parent, gate, refused = operated_tree(devices.normal_parent, devices.alt_parent, is_open, ids)
    if refused:
        raise TopologyError(refused)
    new_devices = replace(devices, parent=parent, gate=gate, is_open=is_open)
    result = replace(topology, devices=new_devices, warnings=list(topology.warnings))
    # Meters did not move: share their per-device index instead of recomputing it.
    if "_meters_by_device" in topology.__dict__:
        result.__dict__["_meters_by_device"] = topology.__dict__["_meters_by_device"]
    return result
