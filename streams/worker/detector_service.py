"""Runs the emerging-issue detector on every routed contact and publishes its alerts.

The detector keeps its counts in memory and must see all traffic, so it runs
once, in the process that owns ClickHouse (beside the KPI service), reading
`contacts.routed` without a consumer group from the newest offset. Alerts go
to `alerts.voc` (keyed by alert_id: stable across updates of one surge) and to
the `vocflow_voc_surge` gauge that the alert rule pages on; the gauge series of
a surge disappears once the detector has been quiet about it for
SURGE_QUIET_MINUTES.

Event time is tracked per partition (`PartitionWatermarks`): a backlog replayed
at full speed is read faster from some partitions than from others, and one
watermark over all of them would drop the slower ones' contacts as late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from vocflow.schemas import RoutingEnvelope
from vocflow.schemas.derived.alert import VocAlert
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.detect.detector import Observation, PartitionWatermarks, SurgeDetector

log = logging.getLogger(__name__)

SURGE = Gauge(
    "vocflow_voc_surge",
    "observed / baseline of an active surge.",
    ["dimension", "key", "department"],
)
ALERTS = Counter(
    "vocflow_voc_alerts_total",
    "Emerging-issue alerts emitted.",
    ["dimension", "department", "severity"],
)
SURGE_QUIET_MINUTES = 20
FLUSH_EVERY_S = 10.0
# A partition quiet this long (and not behind its high-water mark) stops holding
# event time back. Longer than a partition with records plausibly waits for a fetch;
# in a replay, a partition with nothing to deliver holds the others' minutes this long.
PARTITION_IDLE_S = 30.0


class DetectorService:
    def __init__(self, settings: Settings, partition_idle_s: float = PARTITION_IDLE_S) -> None:
        topics = T.Topics(settings)
        self._routed = topics.name(T.ROUTED)
        self._alerts_topic = topics.name(T.VOC_ALERTS)
        self._settings = settings
        self.detector = SurgeDetector()
        self.recent: dict[str, VocAlert] = {}  # alert_id -> latest alert of a live surge
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.watermarks = PartitionWatermarks(partition_idle_s)
        self._behind: set[int] = set()  # partitions with records not counted yet

    async def start(self) -> None:
        self._consumer = kafka_clients.aio_consumer(
            self._settings, self._routed, group_id=None, auto_offset_reset="latest"
        )
        self._producer = kafka_clients.aio_producer(self._settings)
        await self._consumer.start()
        await self._producer.start()
        self._tasks = [
            asyncio.create_task(self._consume(), name="detector"),
            asyncio.create_task(self._tick(), name="detector-flush"),
        ]

    async def _consume(self) -> None:
        assert self._consumer is not None
        while True:
            await self._take(await self._consumer.getmany(timeout_ms=500))

    async def _take(self, batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        """Count one fetch and move event time to the slowest active partition.

        The assignment is read on every fetch because partitions added to the
        topic are assigned on a metadata refresh, and a partition must be known
        before it delivers to hold event time back.
        """
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        self.watermarks.assign((tp.partition for tp in assigned), time.monotonic())
        lagging = await self._lagging(assigned)
        # records in hand are not counted yet either: their partitions must not
        # look idle while another partition's records of this fetch are counted
        self._behind = lagging | {tp.partition for tp, records in batches.items() if records}
        for tp, records in batches.items():
            for r in records:
                try:
                    envelope = RoutingEnvelope.model_validate_json(r.value)
                except ValidationError:
                    continue  # the sink dead-letters undecodable records
                wall = time.monotonic()
                self.detector.add(Observation.from_envelope(envelope))
                self.watermarks.observe(tp.partition, envelope.occurred_at, wall)
                now = self.watermarks.watermark(wall, self._behind)
                if now is not None:
                    await self._emit(self.detector.flush(now))
        self._behind = lagging

    async def _lagging(self, assigned: Iterable[TopicPartition]) -> set[int]:
        """Partitions whose last fetch showed records beyond what we were handed.

        Such a partition is slow, not idle: leaving it out of event time would
        drop its records as late. The high-water mark is only as fresh as the
        last fetch, so an unknown one (no fetch yet) counts as caught up.
        """
        assert self._consumer is not None
        lagging: set[int] = set()
        for tp in assigned:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except IllegalStateError:  # revoked since `assignment()`
                continue
            if highwater > position:
                lagging.add(tp.partition)
        return lagging

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            # Event time moves with the traffic (a replay may run far behind or
            # ahead of the wall clock); in a quiet spell it moves with the wall.
            now = self.watermarks.watermark(time.monotonic(), self._behind, moving=True)
            if now is None:
                continue
            await self._emit(self.detector.flush(now))
            self._expire(now)

    async def _emit(self, alerts: list[VocAlert]) -> None:
        assert self._producer is not None
        for alert in alerts:
            self.recent[alert.alert_id] = alert
            SURGE.labels(alert.dimension, alert.key, alert.department or "").set(alert.ratio)
            ALERTS.labels(alert.dimension, alert.department or "", alert.severity).inc()
            log.warning("emerging issue: %s", alert.summary_en)
            await self._producer.send(
                self._alerts_topic,
                key=alert.alert_id.encode(),
                value=alert.model_dump_json().encode(),
            )

    def _expire(self, now: datetime) -> None:
        horizon = timedelta(minutes=SURGE_QUIET_MINUTES)
        latest = max((a.emitted_at for a in self.recent.values()), default=now)
        for alert_id, alert in list(self.recent.items()):
            if latest - alert.emitted_at > horizon or now - alert.emitted_at > horizon * 3:
                del self.recent[alert_id]
                SURGE.remove(alert.dimension, alert.key, alert.department or "")

    def extras(self) -> dict[str, Any]:
        """For the wallboard: hot topics and the live surges (memory only, cheap)."""
        return {
            "hot_topics": self.detector.hot_topics(),
            "alerts": sorted(self.recent.values(), key=lambda a: a.emitted_at, reverse=True),
        }

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
