"""The facts stage, exactly once: contacts.events + contacts.routed -> one fact
per contact -> contacts.facts, on the transactional loop (`worker/txloop.py`).
A batch sends each contact it changed once: the latest version, with the KPI
deltas since the version before the batch (`kpi.contributions.LatestFacts`).

Both inputs are keyed by contact_id with the same partition count, so a
contact's events and its routing decision meet in the same partition's state
(`stages/facts_state.py`, changelog contacts.facts-state). The routing decision
adds the department and category the fact needs for per-department KPIs and
the repeat-based FCR.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from vocflow.schemas import ContactEvent, RoutingEnvelope
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import topics as T
from vocflow.streams.kpi.config import fold_config, kpi_targets
from vocflow.streams.kpi.contributions import LatestFacts
from vocflow.streams.kpi.fold import annotate, fold
from vocflow.streams.kpi.models import HOUR_MS, ContactFact
from vocflow.streams.stages.facts_state import FactsState
from vocflow.streams.worker import txloop
from vocflow.streams.worker.txloop import Batch, Output, TxLoop
from vocflow.streams.worker.wiring import WorkerApp

STAGE = "facts"


class FactsLoop(TxLoop[FactsState]):
    """contacts.events + contacts.routed -> contacts.facts, one transaction per batch."""

    stage = STAGE
    crash_point_name = "facts.after_table_write"

    def __init__(self, app: WorkerApp, topics: T.Topics, **kwargs: Any) -> None:
        super().__init__(
            app,
            [topics.name(T.EVENTS), topics.name(T.ROUTED)],
            topics.name(T.FACTS_STATE),
            **kwargs,
        )
        self.routed_topic = topics.name(T.ROUTED)
        self.facts_topic = topics.name(T.FACTS)
        self.dlq_topic = topics.name(T.DLQ)
        self.config = fold_config(self.settings)
        self.targets = kpi_targets(self.settings)
        self.ttl_ms = round(self.settings.facts_ttl_hours * HOUR_MS)

    def new_state(self, partition: int) -> FactsState:
        return FactsState(self.ttl_ms)

    def restore(
        self, partition: int, state: FactsState, records: list[tuple[bytes, bytes | None]]
    ) -> None:
        state.restore(records)
        self._gauge()

    def _gauge(self) -> None:
        metrics.FACTS_HELD.set(sum(len(p.state.facts) for p in self.partitions.values()))

    def step(self, state: FactsState, topic: str, value: bytes) -> tuple[ContactFact | None, ...]:
        """(stored fact, new fact or None when nothing changed) for one record."""
        if topic == self.routed_topic:
            r = RoutingEnvelope.model_validate_json(value)
            previous = state.get(r.contact_id)
            updated = annotate(
                previous or ContactFact(r.contact_id),
                department=r.department,
                category=r.tags.category.value,
                sentiment=r.sentiment,
                repeat=r.repeat_contact,
            )
            return previous, updated
        e = ContactEvent.model_validate_json(value)
        previous = state.get(e.contact_id)
        return previous, fold(previous, e, self.config)

    async def process(self, state: FactsState, tp: TopicPartition, records: list[Any]) -> Batch:
        batch = Batch()
        rejected: list[str] = []
        latest = LatestFacts(self.targets)
        evicted_before = state.evicted
        for record in records:
            try:
                previous, updated = self.step(state, tp.topic, record.value or b"")
            except Exception as exc:
                letter = txloop.rejected(STAGE, record, exc)
                batch.outputs.append(
                    Output(self.dlq_topic, record.key, letter.model_dump_json().encode())
                )
                rejected.append(letter.reason.value)
                continue
            if updated is None:
                continue  # duplicate or no material change
            state.put(updated)
            last = updated.last_activity_ms
            if last is None:
                continue  # routed before any of its events folded: nothing to count yet
            state.observe(last)
            latest.add(previous, updated)
        emitted = len(latest)
        batch.outputs += [Output(self.facts_topic, k, v) for k, v in latest.take()]
        batch.changes = state.take_journal()

        def done() -> None:
            metrics.STAGE_IN.labels(STAGE).inc(len(records))
            metrics.STAGE_OUT.labels(STAGE, T.FACTS.name).inc(emitted)
            for reason in rejected:
                metrics.DLQ.labels(STAGE, reason).inc()
            metrics.FACTS_EVICTED.inc(state.evicted - evicted_before)
            self._gauge()

        batch.done = done
        return batch
