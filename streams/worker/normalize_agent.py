"""Faust agent `normalize`: contacts.raw -> contacts.events (masked) + contacts.voc, or the DLQ."""

from __future__ import annotations

import faust

from vocflow.schemas import ContactEvent, DeadLetter
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import topics as T
from vocflow.streams.core.faults import crash_point
from vocflow.streams.stages import normalize as stage
from vocflow.streams.stages.routing import carries_voc_text
from vocflow.streams.worker.wiring import StageGuard, WorkerApp, raw_topic, source_of


def register(app: WorkerApp, topics: T.Topics, dlq: faust.TopicT) -> None:
    """Every valid event goes to contacts.events keyed by contact (all events of
    a contact in one partition, in order), its text PII-masked; one that carries
    text also goes, in clear, to contacts.voc keyed by customer, so repeat
    detection is partition-local."""
    raw = raw_topic(app, topics, T.RAW)
    events_out = raw_topic(app, topics, T.EVENTS)
    voc_out = raw_topic(app, topics, T.VOC)
    guard = StageGuard(stage.STAGE, dlq)
    max_bytes = app.settings_.max_event_bytes

    @app.agent(raw, name="normalize")
    async def normalize_agent(stream: faust.StreamT) -> None:
        stage_in = metrics.STAGE_IN.labels(stage.STAGE)
        out_ok = metrics.STAGE_OUT.labels(stage.STAGE, T.EVENTS.name)
        out_voc = metrics.STAGE_OUT.labels(stage.STAGE, T.VOC.name)
        async for event in stream.events():
            stage_in.inc()
            result = await guard.run(
                event, stage.normalize, event.value or b"", source_of(event), max_bytes
            )
            if isinstance(result, DeadLetter):
                await guard.reject(event, result)
                continue
            assert isinstance(result, ContactEvent)
            canonical = stage.published(result)
            body = canonical.model_dump_json().encode()
            await events_out.send(key=result.contact_id.encode(), value=body)
            out_ok.inc()
            if carries_voc_text(result.event_type, result.text):
                if canonical is not result:
                    body = result.model_dump_json().encode()  # the voc stage masks it itself
                crash_point("normalize.between_outputs")
                # Stamped by the producer, not with event time: the voc stage reads
                # event time from the event, and a record stamped with the time of an
                # old event (a replay of last month) would be deleted by the topic's
                # time retention before the voc stage read it.
                await voc_out.send(
                    key=(result.customer_id or result.contact_id).encode(), value=body
                )
                out_voc.inc()
