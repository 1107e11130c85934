"""Tree order for a radial network given as a parent array (-1 for a root)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

I32 = npt.NDArray[np.int32]


@njit(cache=True, nogil=True)
def _depth_kernel(parent: I32) -> I32:  # pragma: no cover - compiled
    """Depth of each node (a root is 0); -1 on a node in or under a cycle."""
    n = parent.shape[0]
    unknown = -2
    on_path = -3
    depth = np.full(n, unknown, dtype=np.int32)
    stack = np.empty(n, dtype=np.int32)
    for start in range(n):
        if depth[start] != unknown:
            continue
        top = 0
        x = start
        cyclic = False
        base = -1  # depth of the first known ancestor; -1 means "above a root"
        while x >= 0:
            d = depth[x]
            if d == on_path or d == -1:
                cyclic = True
                break
            if d >= 0:
                base = d
                break
            stack[top] = x
            top += 1
            depth[x] = on_path
            x = parent[x]
        for i in range(top - 1, -1, -1):
            if cyclic:
                depth[stack[i]] = -1
            else:
                base += 1
                depth[stack[i]] = base
    return depth


@njit(cache=True, nogil=True)
def _preorder_kernel(parent: I32, order: I32) -> tuple[I32, I32]:  # pragma: no cover
    """Pre-order number ``tin`` of each node and ``tout`` = tin + subtree size, so that
    x is in the subtree of a exactly when tin[a] <= tin[x] < tout[a]."""
    n = parent.shape[0]
    size = np.ones(n, dtype=np.int32)
    for j in range(n - 1, -1, -1):
        d = order[j]
        if parent[d] >= 0:
            size[parent[d]] += size[d]
    tin = np.empty(n, dtype=np.int32)
    next_child = np.empty(n, dtype=np.int32)  # where the next child's block starts
    counter = 0
    for j in range(n):
        d = order[j]
        p = parent[d]
        if p < 0:
            tin[d] = counter
            counter += size[d]
        else:
            tin[d] = next_child[p]
            next_child[p] += size[d]
        next_child[d] = tin[d] + 1
    tout = tin + size
    return tin, tout


@dataclass(frozen=True, eq=False)
class TreeIndex:
    """``order``: device indices, every parent before its children. ``tin``/``tout``:
    a pre-order numbering; x is beneath-or-equal a iff tin[a] <= tin[x] < tout[a]."""

    parent: I32
    depth: I32
    order: I32
    tin: I32
    tout: I32

    def __len__(self) -> int:
        return int(self.parent.shape[0])


def tree_index(parent: npt.ArrayLike) -> TreeIndex:
    """Validate a parent array and compute depths and a parents-first order.

    Raises ValueError naming the problem (index out of range, a cycle)."""
    arr = np.ascontiguousarray(parent, dtype=np.int32)
    if arr.ndim != 1:
        raise ValueError("parent must be one-dimensional")
    n = arr.shape[0]
    bad = np.flatnonzero((arr < -1) | (arr >= n))
    if bad.size:
        raise ValueError(f"parent index out of range at devices {bad[:10].tolist()}")
    if n and np.any(arr == np.arange(n, dtype=np.int32)):
        raise ValueError("a device is its own parent")
    depth = _depth_kernel(arr)
    cyclic = np.flatnonzero(depth < 0)
    if cyclic.size:
        raise ValueError(f"parent array has a cycle through devices {cyclic[:10].tolist()}")
    order = np.argsort(depth, kind="stable").astype(np.int32)
    tin, tout = _preorder_kernel(arr, order)
    return TreeIndex(parent=arr, depth=depth, order=order, tin=tin, tout=tout)
