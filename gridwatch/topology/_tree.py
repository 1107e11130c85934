"""Vectorised tree arithmetic on a parent array: O(n) numpy, one step per tree level.

A real feeder is a few dozen levels deep, so level-synchronous numpy beats a per-device
Python loop by far and needs no JIT compile at start-up.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
Bool = npt.NDArray[np.bool_]
BREAKER_CODE = 1  # KIND_CODE["breaker"]; duplicated to keep this module free of imports


def children_csr(parent: I32) -> tuple[I32, I32]:
    """Children of ``d`` are ``idx[ptr[d]:ptr[d + 1]]`` (ascending). Negative parent = root."""
    n = parent.shape[0]
    has_parent = parent >= 0
    counts = np.bincount(parent[has_parent], minlength=n)
    ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=ptr[1:])
    # A counting sort would be O(n); a stable argsort is O(n log n) but runs in C and is
    # faster than a Python-level counting sort at every size that fits in memory.
    idx = np.argsort(parent, kind="stable")[n - int(has_parent.sum()) :]
    return ptr, np.ascontiguousarray(idx, dtype=np.int32)


def bfs_levels(parent: I32, child_ptr: I32, child_idx: I32) -> tuple[I32, I32]:
    """Breadth-first order from the roots and the level boundaries in it.

    Each device has one parent, so each reachable device is visited exactly once: O(n).
    Devices on (or below) a cycle are unreachable and absent from the order.
    """
    frontier = np.flatnonzero(parent < 0).astype(np.int32)
    parts = [frontier]
    bounds = [0, int(frontier.shape[0])]
    while frontier.shape[0]:
        starts = child_ptr[frontier]
        counts = child_ptr[frontier + 1] - starts
        total = int(counts.sum())
        if total == 0:
            break
        # Positions of every child of the frontier in child_idx, without a Python loop.
        shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
        frontier = child_idx[shift + np.arange(total, dtype=np.int32)]
        parts.append(frontier)
        bounds.append(bounds[-1] + total)
    order = np.ascontiguousarray(np.concatenate(parts), dtype=np.int32)
    return order, np.asarray(bounds, dtype=np.int32)


def depths(order: I32, level_ptr: I32, n: int) -> I32:
    depth = np.full(n, -1, dtype=np.int32)
    for k in range(level_ptr.shape[0] - 1):
        depth[order[level_ptr[k] : level_ptr[k + 1]]] = k
    return depth


def meters_csr(meter_device: I32, n_devices: int) -> tuple[I32, I32]:
    counts = np.bincount(meter_device, minlength=n_devices)
    ptr = np.zeros(n_devices + 1, dtype=np.int32)
    np.cumsum(counts, out=ptr[1:])
    idx = np.argsort(meter_device, kind="stable").astype(np.int32)
    return ptr, idx


def downstream_counts(parent: I32, order: I32, level_ptr: I32, own: npt.NDArray[np.int_]) -> I32:
    """Per device: ``own`` summed over the device and everything below it."""
    total = own.astype(np.int64)
    for k in range(level_ptr.shape[0] - 2, 0, -1):  # deepest level first; roots add nowhere
        nodes = order[level_ptr[k] : level_ptr[k + 1]]
        np.add.at(total, parent[nodes], total[nodes])
    return total.astype(np.int32)


def feeder_heads(parent: I32, kind: I8, order: I32, level_ptr: I32) -> I32:
    is_breaker = kind == BREAKER_CODE
    head = np.full(parent.shape[0], -1, dtype=np.int32)
    for k in range(level_ptr.shape[0] - 1):
        nodes = order[level_ptr[k] : level_ptr[k + 1]]
        above = head[parent[nodes]] if k else np.full(nodes.shape[0], -1, dtype=np.int32)
        head[nodes] = np.where(is_breaker[nodes], nodes, above)
    return head


def energised_devices(parent: I32, gate: I32, is_open: Bool, order: I32, level_ptr: I32) -> Bool:
    """Supplied = the root is closed and no link on the way down is cut by an open gate."""
    closed = ~is_open
    supplied = np.zeros(parent.shape[0], dtype=np.bool_)
    for k in range(level_ptr.shape[0] - 1):
        nodes = order[level_ptr[k] : level_ptr[k + 1]]
        link = closed[gate[nodes]]
        supplied[nodes] = (supplied[parent[nodes]] & link) if k else link
    return supplied
