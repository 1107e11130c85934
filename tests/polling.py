"""The tests' one way to wait for something: poll a predicate until it holds, and fail
saying what was awaited. Timeouts are generous: CI is a slow, shared 2-core machine, and a
wait that holds returns as soon as it does.

    await wait_until(lambda: service.ready, what="the service to subscribe")
    await wait_until(lambda: rows_at_least(db, 3), timeout_s=60, what="3 rows stored")

A negative assertion ("nothing more happened") never follows a fixed sleep: wait for a
positive marker that proves the input was processed (``count_calls`` counts a loop's
passes), then assert.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

Predicate = Callable[[], bool | Awaitable[bool]]


async def wait_until(
    predicate: Predicate,
    *,
    what: str | Callable[[], str],
    timeout_s: float = 15.0,
    interval_s: float = 0.05,
) -> None:
    """Return once ``predicate()`` (sync or async) is true; AssertionError naming ``what``
    (or what ``what()`` says then: the state it was in) after ``timeout_s`` of wall time.
    The predicate runs once more after the deadline, so a slow poll never fails a
    condition that holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            awaited = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {awaited}")
        await asyncio.sleep(interval_s)


class Calls:
    """How many calls of a wrapped async method have returned (or raised)."""

    def __init__(self) -> None:
        self.done = 0

    def at_least(self, n: int) -> Callable[[], bool]:
        return lambda: self.done >= n


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> Calls:
    """Count completed calls of ``owner.name`` (an async method) for this test: one call
    of a loop's step is one pass, so "two more passes" proves the loop looked again."""
    calls = Calls()
    original = getattr(owner, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            calls.done += 1

    monkeypatch.setattr(owner, name, counted)
    return calls
