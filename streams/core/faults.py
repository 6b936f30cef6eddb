"""Crash points: where the fault suite (tests/faults/) kills a worker with SIGKILL.

A `kill -9` from outside lands wherever the process happens to be; the states
that lose or duplicate data are narrow (between an insert and its offset
commit, between two outputs of one record), so the suite names them instead:

    VOCFLOW_CRASH_AT=<point>:<n>

makes the process send itself SIGKILL the n-th time it passes <point> (the
same signal as `kill -9`: no handler, no flush, no goodbye to the group).
Unset in production; then a crash point costs one dict lookup. The points are
listed in `POINTS` and docs/reliability.md.
"""

from __future__ import annotations

import os
import signal

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
