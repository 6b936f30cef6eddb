"""A token bucket: the per-source rate limit of `vocflow ingest` (docs/ingest.md).

Why a token bucket: a sender may post a burst of up to ``burst`` items at once
(a channel system flushing its queue after a short outage is normal), but over
time no more than ``rate_per_s`` items per second. Tokens are items, not
requests, because one request may carry one item or a thousand: counting
requests would let a batching sender through at a thousand times the rate.

The class is pure (no I/O, no asyncio) and reads time only through the
injected monotonic clock, so that tests can drive it exactly and a wall-clock
step (NTP) can neither refill nor drain it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

_EPSILON = 1e-9
"""Float slack: 0.1 s x 10/s must give exactly the one token it should, not 0.999..."""


def default_burst(rate_per_s: float) -> int:
    """Two seconds' worth of items, at least 1: room for a short catch-up without a 429."""
    return max(1, math.ceil(2 * rate_per_s - _EPSILON))


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` in whole seconds, rounded up and at least 1.

    HTTP allows only whole seconds; rounding down (or to 0) would make a
    well-behaved sender retry too early and be refused again.
    """
    return str(max(1, math.ceil(wait_s - _EPSILON)))


class TokenBucket:
    """Holds up to ``burst`` tokens, refilled at ``rate_per_s``; one token = one item.

    ``take(n)`` is all-or-nothing: a request is admitted whole or refused
    whole, so that a refused sender resends exactly what it sent, and nothing
    of a refused request is published.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_s > 0 or not math.isfinite(rate_per_s):
            raise ValueError(f"rate_per_s must be a positive number, not {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)  # a fresh (or restarted) server lets a full burst through
        self._at = clock()

    @property
    def tokens(self) -> float:
        """Tokens available now (for tests and logs)."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        if now > self._at:  # a monotonic clock never goes back; be safe if a fake one does
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now

    def take(self, n: int) -> float:
        """Take ``n`` tokens and return 0.0, or take none and return the seconds to wait.

        The wait is until ``n`` tokens will be there (if nobody else takes
        them). ``n`` above ``burst`` can never be satisfied: the caller must
        refuse such a request itself (ValueError here, not an endless wait).
        """
        if n > self.burst:
            raise ValueError(f"{n} items can never pass a bucket of burst {self.burst}")
        self._refill()
        if self._tokens + _EPSILON >= n:
            self._tokens = max(0.0, self._tokens - n)
            return 0.0
        return (n - self._tokens) / self.rate_per_s
