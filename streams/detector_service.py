"""Runs the emerging-issue detector on every routed contact and publishes its alerts.

The detector keeps its counts in memory and must see all traffic, so it runs
once, in the process that owns ClickHouse (beside the KPI service), reading
`contacts.routed` without a consumer group from the newest offset. Alerts go
to `alerts.voc` (keyed by alert_id: stable across updates of one surge) and to
the `vocflow_voc_surge` gauge that the alert rule pages on; the gauge series of
a surge disappears once the detector has been quiet about it for
SURGE_QUIET_MINUTES.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from vocflow.schemas import RoutingEnvelope
from vocflow.schemas.alert import VocAlert
from vocflow.streams import topics as T
from vocflow.streams.config import Settings
from vocflow.streams.detector import Observation, SurgeDetector

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


class DetectorService:
    def __init__(self, settings: Settings) -> None:
        topics = T.Topics(settings)
        self._routed = topics.name(T.ROUTED)
        self._alerts_topic = topics.name(T.VOC_ALERTS)
        self._bootstrap = settings.bootstrap_servers
        self.detector = SurgeDetector()
        self.recent: dict[str, VocAlert] = {}  # alert_id -> latest alert of a live surge
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._watermark: datetime | None = None
        self._watermark_wall = datetime.now(UTC)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self._routed,
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True
        )
        await self._consumer.start()
        await self._producer.start()
        self._tasks = [
            asyncio.create_task(self._consume(), name="detector"),
            asyncio.create_task(self._tick(), name="detector-flush"),
        ]

    async def _consume(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    try:
                        envelope = RoutingEnvelope.model_validate_json(r.value)
                    except ValidationError:
                        continue  # the sink dead-letters undecodable records
                    if self._watermark is None or envelope.occurred_at > self._watermark:
                        self._watermark = envelope.occurred_at
                        self._watermark_wall = datetime.now(UTC)
                    await self._emit(self.detector.observe(Observation.from_envelope(envelope)))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            if self._watermark is None:
                continue
            # Event time moves with the traffic (a replay may run far behind or
            # ahead of the wall clock); in a quiet spell it moves with the wall.
            now = self._watermark + (datetime.now(UTC) - self._watermark_wall)
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
