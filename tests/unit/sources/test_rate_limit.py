"""The token bucket of the per-source ingest rate limit, driven by a fake clock."""

from __future__ import annotations

import pytest

from vocflow.streams.sources.rate_limit import TokenBucket, default_burst, retry_after_header


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_10_burst_20_admits_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 20, clock)
    assert [bucket.take(1) for _ in range(20)] == [0.0] * 20
    wait = bucket.take(1)
    assert wait == pytest.approx(0.1)
    assert retry_after_header(wait) == "1"
    clock.now += 0.5
    assert [bucket.take(1) for _ in range(5)] == [0.0] * 5
    assert bucket.take(1) == pytest.approx(0.1)


def test_a_batch_is_all_or_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 20, clock)
    assert bucket.take(15) == 0.0
    assert bucket.take(10) == pytest.approx(0.5)  # 5 left, 5 missing at 10/s
    assert bucket.tokens == pytest.approx(5)  # the refused batch took nothing
    assert bucket.take(5) == 0.0


def test_tokens_never_exceed_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 20, clock)
    bucket.take(20)
    clock.now += 3600
    assert bucket.tokens == 20
    assert bucket.take(20) == 0.0
    assert bucket.take(1) > 0


def test_a_wait_of_several_seconds_is_rounded_up() -> None:
    clock = Clock()
    bucket = TokenBucket(0.5, 3, clock)
    bucket.take(3)
    wait = bucket.take(3)
    assert wait == pytest.approx(6.0)
    assert retry_after_header(wait) == "6"
    assert retry_after_header(6.01) == "7"
    assert retry_after_header(0.0001) == "1"
    clock.now += 6
    assert bucket.take(3) == 0.0


def test_a_clock_that_goes_back_does_not_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 20, clock)
    bucket.take(20)
    clock.now -= 100
    assert bucket.take(1) > 0
    clock.now += 100.1  # back where it was + 0.1 s: one token
    assert bucket.take(1) == 0.0


def test_more_than_the_burst_can_never_pass() -> None:
    bucket = TokenBucket(10, 20, Clock())
    with pytest.raises(ValueError, match="burst 20"):
        bucket.take(21)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (1, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, Clock())


@pytest.mark.parametrize(
    ("rate", "burst"), [(10, 20), (0.1, 1), (0.5, 1), (0.6, 2), (2.5, 5), (2.7, 6)]
)
def test_the_default_burst_is_two_seconds_of_items_at_least_one(rate: float, burst: int) -> None:
    assert default_burst(rate) == burst
