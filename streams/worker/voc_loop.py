"""The voc stage, exactly once: contacts.voc -> enrich -> tag -> repeat check ->
route -> dept.<department> (+ contacts.dlq), on the transactional loop
(`worker/txloop.py`); the audit copy on contacts.routed is written at least
once, before each commit.

Each batch's transaction holds its envelopes, its dead letters, its state
changes (contacts.voc-state, compacted; `stages/voc_state.py`) and the consumed
offsets. contacts.routed stays outside: the detector reads it with a plain
consumer, and its readers drop a second copy (routing_log is keyed by contact,
the fact's annotation is the same). Department consumers must read with
``isolation.level=read_committed`` (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import TopicPartition

from vocflow.schemas import ContactEvent
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.routing import STAGE as ROUTE
from vocflow.streams.stages.routing import is_triage
from vocflow.streams.stages.voc import Prepared, VocResult, analyse_and_route, prepare_batch
from vocflow.streams.stages.voc_state import VocState
from vocflow.streams.worker import txloop
from vocflow.streams.worker.txloop import Batch, Output, TxLoop
from vocflow.streams.worker.wiring import WorkerApp

STAGE = "voc"


def group_id(settings: Settings) -> str:
    """The loop's consumer group (its committed offsets live in its transactions)."""
    return txloop.group_id(settings, STAGE)


class VocLoop(TxLoop[VocState]):
    """contacts.voc -> department topics, one transaction per batch."""

    stage = STAGE
    crash_point_name = "voc.mid_transaction"

    def __init__(
        self,
        app: WorkerApp,
        topics: T.Topics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        **kwargs: Any,
    ) -> None:
        super().__init__(app, [topics.name(T.VOC)], topics.name(T.VOC_STATE), **kwargs)
        self.clock = clock
        self.topics = topics
        self.routed_topic = topics.name(T.ROUTED)
        self.dlq_topic = topics.name(T.DLQ)
        self.triage_topic = topics.name(T.TRIAGE)
        self.window = timedelta(hours=self.settings.repeat_window_hours)
        self.department_topics: dict[str, str] = {}

    def new_state(self, partition: int) -> VocState:
        return VocState(self.window)

    def restore(
        self, partition: int, state: VocState, records: list[tuple[bytes, bytes | None]]
    ) -> None:
        state.restore(records)
        self._gauge(state, partition)

    async def ready(self) -> None:
        await self.app.views_loaded.wait()  # routing needs the customer profiles

    @staticmethod
    def _gauge(state: VocState, partition: int) -> None:
        metrics.VOC_STATE_ENTRIES.labels(str(partition)).set(len(state.issues) + len(state.routed))

    async def _department_topic(self, department: str) -> str:
        name = self.department_topics.get(department)
        if name is None:
            from vocflow.streams.core.admin import ensure_topics

            spec = T.department_spec(department)
            loop = asyncio.get_running_loop()

            async def create() -> None:
                await loop.run_in_executor(None, ensure_topics, self.settings, (spec,))

            # A broker that cannot answer now is not the record's fault: wait for it.
            await self.until_done(f"creating {self.topics.name(spec)}", create)
            name = self.department_topics[department] = self.topics.name(spec)
        return name

    def _route(
        self, state: VocState, event: ContactEvent, prepared: Prepared, now: datetime
    ) -> VocResult:
        return analyse_and_route(
            event,
            self.app.profiles,
            self.app.rules.current,
            now,
            last_issue=state.last_issue,
            already_routed=state.already_routed(event.contact_id),
            window=self.window,
            prepared=prepared,
        )

    def _prepare(
        self, records: list[Any], now: datetime
    ) -> list[tuple[ContactEvent, Prepared] | Exception]:
        """Parse, enrich and classify the batch at once (one model call per batch);
        a record that fails is kept as its exception, for the dead-letter topic."""
        parsed: list[ContactEvent | Exception] = []
        for record in records:
            try:
                parsed.append(ContactEvent.model_validate_json(record.value or b""))
            except Exception as exc:
                parsed.append(exc)
        events = [p for p in parsed if isinstance(p, ContactEvent)]
        try:
            prepared = iter(prepare_batch(events, self.app.profiles, now, self.app.model.current))
        except Exception:
            # one bad text must not sink the batch: redo it one by one
            singles: list[Prepared | Exception] = []
            for e in events:
                try:
                    singles.extend(
                        prepare_batch([e], self.app.profiles, now, self.app.model.current)
                    )
                except Exception as exc:
                    singles.append(exc)
            prepared = iter(singles)  # type: ignore[arg-type]
        out: list[tuple[ContactEvent, Prepared] | Exception] = []
        for p in parsed:
            if isinstance(p, Exception):
                out.append(p)
                continue
            item = next(prepared)
            out.append(item if isinstance(item, Exception) else (p, item))
        return out

    async def process(self, state: VocState, tp: TopicPartition, records: list[Any]) -> Batch:
        batch = Batch()
        results: list[VocResult] = []
        rejected: list[str] = []
        now = self.clock()
        for record, item in zip(records, self._prepare(records, now), strict=True):
            try:
                if isinstance(item, Exception):
                    raise item
                result = self._route(state, item[0], item[1], now)
            except Exception as exc:
                letter = txloop.rejected(ROUTE, record, exc)
                batch.outputs.append(
                    Output(self.dlq_topic, record.key, letter.model_dump_json().encode())
                )
                rejected.append(letter.reason.value)
                continue
            event = result.contact.event
            state.observe(event.occurred_at)
            if result.repeat_key is not None:
                state.remember_issue(result.repeat_key, result.last_issue)
            envelope = result.envelope
            if envelope is not None:
                body = envelope.model_dump_json().encode()
                key = event.contact_id.encode()
                if is_triage(envelope):
                    topic = self.triage_topic
                else:
                    topic = await self._department_topic(envelope.department)
                batch.outputs.append(Output(topic, key, body))
                batch.early.append(Output(self.routed_topic, key, body))
                state.remember_routed(event.contact_id, envelope.department, event.occurred_at)
            results.append(result)
        batch.changes = state.take_journal()

        def done() -> None:
            self._count(len(records), results, rejected)
            self._gauge(state, tp.partition)

        batch.done = done
        return batch

    @staticmethod
    def _count(n: int, results: list[VocResult], rejected: list[str]) -> None:
        """Metrics of a committed batch (only committed work is counted)."""
        metrics.STAGE_IN.labels(ROUTE).inc(n)
        for reason in rejected:
            metrics.DLQ.labels(ROUTE, reason).inc()
        for result in results:
            for kind, k in result.contact.analysis.pii_masked.items():
                metrics.PII_MASKED.labels(kind).inc(k)
            if result.previous_contact_id is not None:
                metrics.REPEATS.inc()
            envelope = result.envelope
            if envelope is not None:
                metrics.ROUTED.labels(envelope.department, envelope.tags.urgency.value).inc()
                source = (envelope.decision_source or "rule:").split(":", 1)[0]
                metrics.DEPARTMENT_DECISIONS.labels(source).inc()
                metrics.STAGE_OUT.labels(ROUTE, "dept").inc()
