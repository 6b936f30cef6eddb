"""Loaded only by Python processes the tests run under libfaketime (clock matrix, demo).

Debian's libfaketime 0.9.10 breaks one of two things, whichever way it is set:
with the monotonic clock faked, every timed wait on a lock or condition
(``threading.Event.wait(t)``, ``queue.get(timeout=t)``) hangs; with
``FAKETIME_DONT_FAKE_MONOTONIC=1`` (what the matrix sets), timed waits work but
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``, which CPython 3.11's
``time.sleep`` uses, fails with EINVAL. This replaces ``time.sleep`` by a wait on
``select()`` with a relative timeout, which libfaketime passes through unchanged.
Nothing else is touched; the product never sees this file.
"""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
