"""`/readyz`: is this worker doing its share of the pipeline, and keeping up?

/healthz answers as soon as the web server runs; an orchestrator needs more
before it sends traffic, counts a pod as available (a PodDisruptionBudget) or
moves a rolling update on to the next pod: every stage loop (normalize, voc,
facts) must have partitions assigned by its consumer group, have taken each of
them over (fenced the previous owner, restored the state), and be no more than
`ready_max_lag` records behind the end of what it may read (the last stable
offset: the loops read read_committed). A loop the group gave no partition
(more workers than partitions) is not ready: it does nothing.

Readiness is never used for liveness: a worker that is behind is busy, not
stuck, and restarting it would only put it further behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

POSITION_TIMEOUT_S = 1.0  # a probe must answer quickly, even during a rebalance


@dataclass(frozen=True)
class LoopState:
    """What one stage loop reports: its assigned partitions (topic, partition), the
    partition numbers it has taken over, and records behind the last stable offset
    over all assigned partitions (None: not known yet for some partition)."""

    stage: str
    started: bool
    assigned: frozenset[tuple[str, int]]
    taken: frozenset[int]
    lag: int | None


def evaluate(
    loops: Sequence[LoopState], max_lag: int, expected: Sequence[str] = ()
) -> tuple[bool, dict[str, Any]]:
    """(ready, JSON body) of /readyz; each stage names its reason when it is not ready.

    `expected` names every stage the worker runs: the app creates its loops one
    after the other, and two ready loops must not make a worker ready before the
    third exists."""
    present = {loop.stage for loop in loops}
    loops = [
        *loops,
        *(
            LoopState(stage, False, frozenset(), frozenset(), None)
            for stage in expected
            if stage not in present
        ),
    ]
    stages: dict[str, dict[str, Any]] = {}
    for loop in loops:
        reason = _reason(loop, max_lag)
        stages[loop.stage] = {
            "ready": reason is None,
            "partitions": sorted(f"{t}[{p}]" for t, p in loop.assigned),
            "lag": loop.lag,
            **({"reason": reason} if reason else {}),
        }
    ready = bool(loops) and all(stage["ready"] for stage in stages.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "max_lag": max_lag}
    if not loops:
        body["reason"] = "the stage loops have not started"
    body["stages"] = stages
    return ready, body


def _reason(loop: LoopState, max_lag: int) -> str | None:
    if not loop.started:
        return "not started"
    if not loop.assigned:
        return "no partitions assigned (more workers than partitions, or a rebalance)"
    pending = sorted({p for _, p in loop.assigned} - loop.taken)
    if pending:
        return f"taking over partitions {pending}"
    if loop.lag is None:
        return "lag not known yet (no fetch answered)"
    if loop.lag > max_lag:
        return f"{loop.lag} records behind (more than {max_lag})"
    return None


async def loop_state(stage: str, consumer: AIOKafkaConsumer | None, taken: set[int]) -> LoopState:
    """The state of a loop from its consumer (`TxLoop.consumer`, `TxLoop.partitions`)."""
    if consumer is None:
        return LoopState(stage, False, frozenset(), frozenset(taken), None)
    assigned: set[TopicPartition] = set(consumer.assignment())
    lag: int | None = 0
    for tp in assigned:
        behind = await _behind(consumer, tp)
        lag = None if behind is None or lag is None else lag + behind
    return LoopState(
        stage,
        True,
        frozenset((tp.topic, tp.partition) for tp in assigned),
        frozenset(taken),
        lag,
    )


async def _behind(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """Records between the position and the last stable offset (None: not known)."""
    end = consumer.last_stable_offset(tp)
    if end is None or end < 0:  # a broker that does not report it
        end = consumer.highwater(tp)
    if end is None:
        return None
    try:
        position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_S)
    except Exception:  # unassigned meanwhile, resetting, or timed out: unknown
        return None
    return max(0, end - position)
