"""Which contact facts the worker can forget.

The facts table lives in memory (and in its compacted changelog): without
eviction a worker's memory and its restore time grow with every contact it
ever saw. A fact idle (no event) for longer than `VOCFLOW_FACTS_TTL_HOURS` in
event time is removed with a changelog tombstone, so a restarted worker does
not load it back. Its numbers stay in ClickHouse; an event arriving even later
starts a new fact whose version is below the stored one, so the sink keeps the
stored fact and does not count the late event (docs/kpis.md).

Deleting from outside the agent's stream needs the key's partition, which
Faust takes from the event being processed. The key's partition is what the
producer's partitioner chose for it (murmur2, Kafka's default, which Faust's
producer uses for contacts.events and contacts.routed), and only partitions
this worker owns actively are touched (standby replicas follow the changelog).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.partitioner import murmur2

LAST_ACTIVITY = "_last_ms"  # stored with each fact so a scan needs no parsing


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key``."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def idle_facts(
    items: Iterable[tuple[str, Mapping[str, Any]]],
    cutoff_ms: int,
    partitions: int,
    active: set[int],
) -> list[tuple[str, int]]:
    """(key, partition) of facts last active before ``cutoff_ms`` in owned partitions."""
    out = []
    for key, body in items:
        last = body.get(LAST_ACTIVITY) if body else None
        if last is not None and last < cutoff_ms:
            partition = partition_of(key, partitions)
            if partition in active:
                out.append((key, partition))
    return out
