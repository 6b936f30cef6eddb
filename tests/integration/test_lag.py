"""Consumer lag on a topic written in transactions: the commit markers are offsets no
consumer receives, so a consumer that has read everything must show lag 0, while a
record really waiting still counts (sinks/prometheus/lag.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka import TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from vocflow.sinks.prometheus.lag import LagMonitor
from vocflow.streams.core import kafka_clients

pytestmark = pytest.mark.integration


async def _transactions(bootstrap: str, topic: str, batches: list[list[int]]) -> None:
    """Each inner list: one committed transaction of records to those partitions."""
    producer = kafka_clients.aio_producer(bootstrap, transactional_id=f"lag-{uuid.uuid4().hex}")
    await producer.start()
    try:
        for partitions in batches:
            async with producer.transaction():
                for p in partitions:
                    await producer.send(topic, b"x", key=b"k", partition=p)
    finally:
        await producer.stop()


def test_commit_markers_are_not_lag_but_waiting_records_are(kafka_bootstrap: str) -> None:
    topic, group = f"lag{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    admin = kafka_clients.admin(kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    # Partition 0: records at offsets 0, 2, 4, each followed by its commit marker.
    # Partition 1: records at offsets 0, 2, markers at 1, 3.
    asyncio.run(_transactions(kafka_bootstrap, topic, [[0], [0, 1], [0, 1]]))
    # The group read all 3 records of p0 (committed "last record + 1" = 5) and only
    # the first record of p1 (committed 1): p1 still has the record at 2 waiting.
    admin.close()
    committer = kafka_clients.consumer(kafka_bootstrap, group_id=group)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    committer.assign(tps)
    committer.commit({tps[0]: OffsetAndMetadata(5, "", -1), tps[1]: OffsetAndMetadata(1, "", -1)})
    committer.close()
    monitor = LagMonitor(kafka_bootstrap, {group: [topic]})
    try:
        # p0: offset 5 is only a marker -> 0; p1: offsets 1..3 hold a record -> 3.
        assert monitor.poll() == {(group, topic): 3}
    finally:
        monitor.close()
