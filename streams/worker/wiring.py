"""What every part of a worker shares: the app and its handles (`WorkerApp`),
byte topics, the source of a record, and the one error path (`StageGuard`).

Agents only wire stage functions to topics. The stages parse and validate
themselves (pydantic + orjson), so topics carry raw bytes; and whatever the
agent, a record its stage cannot handle ends the same way: a dead letter on
`contacts.dlq` with reason, source coordinates and the original bytes, a log
line and a count in `vocflow_dead_letters_total{stage,reason}`. The agent goes
on with the next record. Writes to output topics stay outside the guard: a
broker that cannot take a record is not the record's fault.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
from faust.types import EventT

from vocflow.schemas import DeadLetter, FieldError, Reason, SourceRef
from vocflow.schemas.api import KpiDocument
from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.normalize import dead_letter
from vocflow.streams.stages.rules import RuleSet, load_rules
from vocflow.streams.worker.detector_service import DetectorService
from vocflow.streams.worker.views import ProfileStore, RulesHolder

R = TypeVar("R")
log = logging.getLogger(__name__)


class WorkerApp(faust.App):
    """faust.App configured from the settings, plus the handles its agents,
    services and pages share (`app.VocflowApp` wires them).

    ``sink`` is the in-process ClickHouse sink, or None in a worker that
    leaves the database to `vocflow sink` (then no KPIs, detector or backlog
    here: they run where the database is)."""

    def __init__(
        self, settings: Settings, sink: ClickHouseSink | None = None, rules: RuleSet | None = None
    ) -> None:
        super().__init__(
            settings.app_id,
            **kafka_clients.faust_broker(settings),
            store="memory://",
            autodiscover=False,
            web_host=settings.web_host,
            web_port=settings.web_port,
            web_in_thread=False,
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # Batch sends a little: per-record requests with acks=all starve the agent.
            producer_linger=0.005,
            broker_commit_interval=1.0,
            # Static membership: a worker restarted with the same id rejoins with its
            # partitions at once (measured: first record 2.7 s after kill -9, vs 60 s).
            consumer_group_instance_id=settings.group_instance_id,
        )
        self.settings_ = settings
        self.sink = sink
        self.rules = RulesHolder(rules or load_rules(settings.rules_path))
        self.profiles = ProfileStore()
        self.views_loaded = asyncio.Event()
        self.kpis: KpiDocument | None = None  # the last KPI round's /api/kpis document
        self.detector = DetectorService(settings) if sink is not None else None


def raw_topic(app: faust.App, topics: T.Topics, spec: T.TopicSpec) -> faust.TopicT:
    """A topic whose keys and values stay bytes."""
    return app.topic(
        topics.name(spec),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=topics.partitions(spec),
    )


def source_of(event: EventT) -> SourceRef:
    """Where a record came from, as a dead letter names it."""
    msg = event.message
    stamp = int(msg.timestamp * 1000) if msg.timestamp else None  # Faust: seconds
    return SourceRef.of(msg.topic, msg.partition, msg.offset, msg.key, stamp)


class StageGuard:
    """Runs one agent's stage on one record and dead-letters what fails."""

    def __init__(self, stage: str, dlq: faust.TopicT) -> None:
        self.stage = stage
        self.dlq = dlq

    async def run(
        self, event: EventT, fn: Callable[..., R | Awaitable[R]], *args: Any
    ) -> R | DeadLetter:
        """``fn(*args)`` (awaited if it is a coroutine), or the `processing_error`
        dead letter of the exception it raised: a stage bug must not stop the
        pipeline."""
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result  # type: ignore[return-value]
        except Exception as exc:
            source = source_of(event)
            log.exception(
                "%s failed on %s[%d]@%d", self.stage, source.topic, source.partition, source.offset
            )
            return dead_letter(
                event.value or b"",
                source,
                Reason.processing_error,
                [FieldError(loc="", type=type(exc).__name__, msg=str(exc)[:500])],
                stage=self.stage,
            )

    async def reject(self, event: EventT, letter: DeadLetter) -> None:
        """Send `letter` to the dead-letter topic (keyed as the record was) and count it."""
        await self.dlq.send(key=event.message.key, value=letter.model_dump_json().encode())
        metrics.DLQ.labels(self.stage, letter.reason.value).inc()
