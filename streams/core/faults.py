"""Crash points: where the fault suite (tests/faults/) kills a worker with SIGKILL.

A `kill -9` from outside lands wherever the process happens to be; the states
that lose or duplicate data are narrow (between an insert and its offset
commit, between two outputs of one record), so the suite names them instead:

    VOCFLOW_CRASH_AT=<point>:<n>

makes the process send itself SIGKILL the n-th time it passes <point> (the
same signal as `kill -9`: no handler, no flush, no goodbye to the group).
Unset in production; then a crash point costs one dict lookup. The points are
listed in `POINTS` and docs/reliability.md.

The embedded ClickHouse of the suite cannot go away, so its outage is injected
the same way:

    VOCFLOW_CLICKHOUSE_OUTAGE=<start>:<seconds>

makes every call of the ClickHouse store fail as a refused connection from
<start> seconds after the process started, for <seconds> seconds.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "VOCFLOW_CRASH_AT"
POINTS = {
    "normalize.between_outputs": "the normalize loop produced a batch's events, voc "
    "copies and dead letters in an open transaction, offsets not committed",
    "sink.after_insert": "the sink inserted a batch into ClickHouse, offsets not committed",
    "facts.after_table_write": "the facts loop changed its state and produced the changelog "
    "and the new facts in an open transaction, not yet committed",
    "voc.mid_transaction": "the voc loop produced a batch's envelopes in an open "
    "transaction, not yet committed",
}


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    point, _, count = value.rpartition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(
            f"{ENV}={value!r}: expected <point>:<n> with n >= 1 and point one of "
            f"{', '.join(sorted(POINTS))}"
        )
    return point, int(count)


_armed = _parse(os.environ.get(ENV))
_passes = 0


def crash_point(point: str) -> None:
    """Kill this process with SIGKILL if `point` is the armed one and this is its n-th pass."""
    global _passes
    if _armed is None or _armed[0] != point:
        return
    _passes += 1
    if _passes >= _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)


OUTAGE_ENV = "VOCFLOW_CLICKHOUSE_OUTAGE"


def _parse_outage(value: str | None) -> tuple[float, float] | None:
    if not value:
        return None
    start, _, seconds = value.partition(":")
    try:
        window = float(start), float(seconds)
    except ValueError:
        raise ValueError(f"{OUTAGE_ENV}={value!r}: expected <start>:<seconds>") from None
    if window[0] < 0 or window[1] <= 0:
        raise ValueError(f"{OUTAGE_ENV}={value!r}: expected <start> >= 0 and <seconds> > 0")
    return window


_outage = _parse_outage(os.environ.get(OUTAGE_ENV))
_started = time.monotonic()


def clickhouse_reachable() -> None:
    """Raise ConnectionRefusedError (what a server that is down gives) inside the
    injected outage window; nothing otherwise."""
    if _outage is None:
        return
    elapsed = time.monotonic() - _started
    if _outage[0] <= elapsed < _outage[0] + _outage[1]:
        raise ConnectionRefusedError(111, f"ClickHouse outage injected by {OUTAGE_ENV}")
