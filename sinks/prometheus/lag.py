"""Consumer lag per group and topic, polled from the brokers' committed offsets.

Polled rather than read from each consumer so one worker reports the lag of
every group (the agents' and the sink's), including groups whose consumers
are down, which is exactly when lag matters.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import kafka_clients

if TYPE_CHECKING:
    from vocflow.streams.core.settings import Settings

log = logging.getLogger(__name__)


class LagMonitor:
    """Blocking; call `poll()` from a thread every few seconds."""

    def __init__(self, conn: Settings | str, groups_topics: dict[str, list[str]]) -> None:
        self._conn = conn
        self._groups_topics = groups_topics
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None

    def poll(self) -> dict[tuple[str, str], int]:
        try:
            if self._admin is None:
                self._admin = kafka_clients.admin(self._conn)
                self._consumer = kafka_clients.consumer(self._conn)
            return self._poll()
        except (KafkaError, OSError, ValueError) as exc:
            # Lag is advisory: a failed poll is logged and retried, never fatal.
            log.warning("lag poll failed: %s", exc)
            self.close()
            return {}

    def _poll(self) -> dict[tuple[str, str], int]:
        assert self._admin is not None and self._consumer is not None
        lags: dict[tuple[str, str], int] = defaultdict(int)
        for group, topics in self._groups_topics.items():
            committed = self._admin.list_group_offsets({group: None}).get(group, {})
            tps = [
                TopicPartition(topic, p)
                for topic in topics
                for p in (self._consumer.partitions_for_topic(topic) or ())
            ]
            ends = self._consumer.end_offsets(tps) if tps else {}
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                lags[(group, tp.topic)] += max(0, ends.get(tp, 0) - done)
        for (group, topic), lag in lags.items():
            metrics.CONSUMER_LAG.labels(group, topic).set(lag)
        return dict(lags)

    def close(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                # Closing a broken client must not mask the error that broke it.
                with contextlib.suppress(Exception):
                    client.close()
        self._admin = self._consumer = None
