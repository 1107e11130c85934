"""Backoff with jitter, the messages-per-second limiter, the dispatcher process's arguments."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridwatch.app.dispatch_process import main as notifier_main
from notifier import RateLimiter, backoff_s


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_backoff_grows_exponentially_with_jitter_and_is_capped(attempts: int, seed: int) -> None:
    rng = random.Random(seed)
    wait = backoff_s(attempts, 2.0, 900.0, rng)
    ceiling = min(900.0, 2.0 * 2 ** (attempts - 1))
    assert ceiling / 2 <= wait <= ceiling


def test_backoff_is_jittered() -> None:
    rng = random.Random(1)
    assert len({round(backoff_s(5, 2.0, 900.0, rng), 6) for _ in range(20)}) > 10


async def test_rate_limiter_spaces_acquisitions() -> None:
    limiter = RateLimiter(50.0, burst=1)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(26)))
    assert time.monotonic() - started >= 0.45  # 25 waits of 20 ms after the first


def test_rate_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


def test_dispatcher_process_needs_a_sender(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        notifier_main(["dispatch", "--schema", "x"])
    assert "--from-number or --messaging-service-sid" in capsys.readouterr().err
