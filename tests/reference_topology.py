"""Slow, obviously-correct recomputations of the topology's derived arrays (tests only)."""

from __future__ import annotations

from collections import deque

from gridwatch.topology import KIND_CODE, Topology


def naive_depth(parent: list[int]) -> list[int]:
    out = []
    for d in range(len(parent)):
        k, node = 0, d
        while parent[node] >= 0:
            node, k = parent[node], k + 1
        out.append(k)
    return out


def naive_children(parent: list[int]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parent]
    for d, p in enumerate(parent):
        if p >= 0:
            kids[p].append(d)
    return kids


def naive_downstream(parent: list[int], meter_device: list[int]) -> list[int]:
    counts = [0] * len(parent)
    for d in meter_device:
        node = d
        while node >= 0:
            counts[node] += 1
            node = parent[node]
    return counts


def naive_feeder(parent: list[int], kind: list[int]) -> list[int]:
    out = []
    for d in range(len(parent)):
        node = d
        while node >= 0 and kind[node] != KIND_CODE["breaker"]:
            node = parent[node]
        out.append(node)
    return out


def _edges(t: Topology) -> list[tuple[int, int, int]]:
    """(a, b, owner) for every possible link: as-built links and tie links."""
    dev = t.devices
    out = [(d, int(p), d) for d, p in enumerate(dev.normal_parent.tolist()) if p >= 0]
    out += [(d, int(a), d) for d, a in enumerate(dev.alt_parent.tolist()) if a >= 0]
    return out


def naive_energised(t: Topology, is_open: list[bool]) -> list[bool]:
    """Reachability from closed substations over links whose owner is closed."""
    n = len(t.devices)
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b, owner in _edges(t):
        if not is_open[owner]:
            adj[a].append(b)
            adj[b].append(a)
    roots = [d for d, p in enumerate(t.devices.normal_parent.tolist()) if p < 0]
    seen = [False] * n
    queue = deque(r for r in roots if not is_open[r])
    for r in queue:
        seen[r] = True
    while queue:
        node = queue.popleft()
        for nxt in adj[node]:
            if not seen[nxt]:
                seen[nxt] = True
                queue.append(nxt)
    return seen


def naive_has_loop(t: Topology, is_open: list[bool]) -> bool:
    """A cycle among closed links, counting every substation as tied to one common source."""
    n = len(t.devices)
    root = list(range(n + 1))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    links = [(a, b) for a, b, owner in _edges(t) if not is_open[owner]]
    links += [(d, n) for d, p in enumerate(t.devices.normal_parent.tolist()) if p < 0]
    for a, b in links:
        ra, rb = find(a), find(b)
        if ra == rb:
            return True
        root[ra] = rb
    return False
