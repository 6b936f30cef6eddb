"""Which idle contact facts a worker forgets, and in which partition."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from vocflow.streams.worker.eviction import LAST_ACTIVITY, idle_facts, partition_of

pytestmark = pytest.mark.clock


def test_partition_is_the_producers_choice() -> None:
    partitioner = DefaultPartitioner()
    for n in (1, 3, 6, 12):
        for i in range(200):
            key = f"c{i:05d}"
            assert partition_of(key, n) == partitioner(key.encode(), list(range(n)), list(range(n)))


def test_only_idle_facts_of_active_partitions_go() -> None:
    facts = {f"c{i}": {LAST_ACTIVITY: 1_000 * i} for i in range(40)}
    facts["unfolded"] = {}
    facts["routed-only"] = {LAST_ACTIVITY: None}
    active = {0, 2}
    idle = idle_facts(facts.items(), cutoff_ms=20_000, partitions=3, active=active)
    expected = [
        (f"c{i}", partition_of(f"c{i}", 3)) for i in range(20) if partition_of(f"c{i}", 3) in active
    ]
    assert idle == expected
    assert 0 < len(idle) < 20
