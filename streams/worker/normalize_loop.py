"""The normalize stage, exactly once: contacts.raw -> contacts.events (text
PII-masked) + contacts.voc (clear text, restricted), or contacts.dlq, on the
transactional loop (`worker/txloop.py`).

Every valid event goes to contacts.events keyed by contact (all events of a
contact in one partition, in order: the facts stage folds them there); one that
carries text also goes, in clear, to contacts.voc keyed by customer, so repeat
detection is partition-local. The loop keeps no state.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from vocflow.schemas import DeadLetter
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import topics as T
from vocflow.streams.stages import normalize as stage
from vocflow.streams.stages.routing import carries_voc_text
from vocflow.streams.worker import txloop
from vocflow.streams.worker.txloop import Batch, Output, TxLoop
from vocflow.streams.worker.wiring import WorkerApp


class NormalizeLoop(TxLoop[None]):
    """contacts.raw -> contacts.events / contacts.voc / contacts.dlq."""

    stage = stage.STAGE
    crash_point_name = "normalize.between_outputs"

    def __init__(self, app: WorkerApp, topics: T.Topics, **kwargs: Any) -> None:
        super().__init__(app, [topics.name(T.RAW)], **kwargs)
        self.events_topic = topics.name(T.EVENTS)
        self.voc_topic = topics.name(T.VOC)
        self.dlq_topic = topics.name(T.DLQ)
        self.max_bytes = self.settings.max_event_bytes

    def new_state(self, partition: int) -> None:
        return None

    async def process(self, state: None, tp: TopicPartition, records: list[Any]) -> Batch:
        batch = Batch()
        rejected: list[str] = []
        events = voc = 0
        for record in records:
            raw = record.value or b""
            source = txloop.source_of(record)
            try:
                result = stage.normalize(raw, source, self.max_bytes)
            except Exception as exc:
                result = txloop.rejected(stage.STAGE, record, exc)
            if isinstance(result, DeadLetter):
                batch.outputs.append(
                    Output(self.dlq_topic, record.key, result.model_dump_json().encode())
                )
                rejected.append(result.reason.value)
                continue
            canonical = stage.published(result)
            body = canonical.model_dump_json().encode()
            batch.outputs.append(Output(self.events_topic, result.contact_id.encode(), body))
            events += 1
            if carries_voc_text(result.event_type, result.text):
                if canonical is not result:
                    body = result.model_dump_json().encode()  # the voc stage masks it itself
                key = (result.customer_id or result.contact_id).encode()
                batch.outputs.append(Output(self.voc_topic, key, body))
                voc += 1

        def done() -> None:
            metrics.STAGE_IN.labels(stage.STAGE).inc(len(records))
            metrics.STAGE_OUT.labels(stage.STAGE, T.EVENTS.name).inc(events)
            metrics.STAGE_OUT.labels(stage.STAGE, T.VOC.name).inc(voc)
            for reason in rejected:
                metrics.DLQ.labels(stage.STAGE, reason).inc()

        batch.done = done
        return batch
