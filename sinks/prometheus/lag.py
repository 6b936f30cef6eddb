"""Consumer lag per group and topic, polled from the brokers' committed offsets.

Polled rather than read from each consumer so one worker reports the lag of
every group (the agents' and the sink's), including groups whose consumers
are down, which is exactly when lag matters.

Topics written in transactions (the voc loop's outputs) hold a commit marker
after each transaction: an offset no consumer ever receives, so a consumer
that committed "last record + 1" looks one offset behind per partition
forever, and a pipeline at rest would look stalled. Where the offset gap is
small (`PROBE_MAX`), the monitor therefore reads the gap with a read_committed
consumer: if nothing but markers (or aborted records) is there, the lag is 0.
A gap in an open transaction, or one the probe could not read in time, keeps
its offset count: the monitor never reports less lag than it can prove.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import kafka_clients

if TYPE_CHECKING:
    from vocflow.streams.core.settings import Settings

log = logging.getLogger(__name__)

PROBE_MAX = 64  # offsets; a larger gap is counted as it is
PROBE_SECONDS = 1.0


class LagMonitor:
    """Blocking; call `poll()` from a thread every few seconds."""

    def __init__(self, conn: Settings | str, groups_topics: dict[str, list[str]]) -> None:
        self._conn = conn
        self._groups_topics = groups_topics
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self._probe: KafkaConsumer | None = None

    def poll(self) -> dict[tuple[str, str], int]:
        try:
            if self._admin is None:
                self._admin = kafka_clients.admin(self._conn)
                self._consumer = kafka_clients.consumer(self._conn)
                self._probe = kafka_clients.consumer(self._conn, isolation_level="read_committed")
            return self._poll()
        except (KafkaError, OSError, ValueError) as exc:
            # Lag is advisory: a failed poll is logged and retried, never fatal.
            log.warning("lag poll failed: %s", exc)
            self.close()
            return {}

    def _poll(self) -> dict[tuple[str, str], int]:
        assert self._admin is not None and self._consumer is not None
        lags: dict[tuple[str, str], int] = defaultdict(int)
        gaps: dict[tuple[str, TopicPartition], tuple[int, int]] = {}
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
                lag = max(0, ends.get(tp, 0) - done)
                lags[(group, tp.topic)] += lag
                if 0 < lag <= PROBE_MAX:
                    gaps[(group, tp)] = (done, ends[tp])
        for (group, tp), n in self._markers_only(gaps).items():
            lags[(group, tp.topic)] -= n
        for (group, topic), lag in lags.items():
            metrics.CONSUMER_LAG.labels(group, topic).set(lag)
        return dict(lags)

    def _markers_only(
        self, gaps: dict[tuple[str, TopicPartition], tuple[int, int]]
    ) -> dict[tuple[str, TopicPartition], int]:
        """The gaps (committed, end) that hold no committed record: gap -> its size."""
        if not gaps:
            return {}
        assert self._probe is not None
        probe = self._probe
        out = {}
        # One read per distinct (partition, from offset); several groups may share it.
        spans = {(tp, lo): hi for (_, tp), (lo, hi) in gaps.items()}
        for (tp, lo), hi in spans.items():
            probe.assign([tp])
            probe.seek(tp, lo)
            deadline = time.monotonic() + PROBE_SECONDS
            empty = False
            while time.monotonic() < deadline:
                if probe.poll(timeout_ms=100, max_records=1).get(tp):
                    break  # a committed record is waiting: real lag
                if probe.position(tp) >= hi:
                    empty = True
                    break
            if empty:
                for (group, gtp), (glo, ghi) in gaps.items():
                    if gtp == tp and glo == lo:
                        out[(group, gtp)] = ghi - glo
        return out

    def close(self) -> None:
        for client in (self._admin, self._consumer, self._probe):
            if client is not None:
                # Closing a broken client must not mask the error that broke it.
                with contextlib.suppress(Exception):
                    client.close()
        self._admin = self._consumer = self._probe = None
