"""Hypothesis strategies for radial networks, shared by the kernel and network tests."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def trees(draw: st.DrawFn, max_devices: int = 25) -> list[int]:
    n = draw(st.integers(1, max_devices))
    parent = [-1]
    for i in range(1, n):
        parent.append(draw(st.integers(-1 if draw(st.booleans()) and i % 7 == 0 else 0, i - 1)))
    perm = draw(st.permutations(range(n)))  # so index order is not a tree order
    inverse = {old: new for new, old in enumerate(perm)}
    shuffled = [0] * n
    for old, p in enumerate(parent):
        shuffled[inverse[old]] = -1 if p < 0 else inverse[p]
    return shuffled
