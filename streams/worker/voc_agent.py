"""Faust agent `voc`: contacts.voc -> enrich -> tag -> repeat check -> route ->
dept.<department> and contacts.routed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from vocflow.schemas import ContactEvent, DeadLetter
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import topics as T
from vocflow.streams.stages.routing import STAGE as ROUTE
from vocflow.streams.stages.routing import LastIssue
from vocflow.streams.stages.voc import VocResult, analyse_and_route
from vocflow.streams.worker.wiring import StageGuard, WorkerApp, raw_topic

ROUTED_MEMORY = timedelta(days=1)  # a contact longer than this may be routed twice


def _last_of(window_set: Any, delta: timedelta) -> Any:
    return window_set.current() or window_set.delta(delta)


def register(app: WorkerApp, topics: T.Topics, dlq: faust.TopicT) -> None:
    """Wire the voc stages to their topics and two event-time windowed tables:
    the last issue per repeat key (repeat detection) and the department each
    contact was routed to (one envelope per contact and department)."""
    settings = app.settings_
    voc_in = raw_topic(app, topics, T.VOC)
    routed_out = raw_topic(app, topics, T.ROUTED)
    window = timedelta(hours=settings.repeat_window_hours)
    # Windowed by event time so both tables forget on their own (expires).
    recent = app.Table("voc-recent-issues", default=dict, partitions=settings.partitions).tumbling(
        window, expires=window * 2
    )
    routed = app.Table("voc-routed-contacts", default=str, partitions=settings.partitions).tumbling(
        ROUTED_MEMORY, expires=ROUTED_MEMORY * 2
    )
    department_topics: dict[str, faust.TopicT] = {}
    guard = StageGuard(ROUTE, dlq)

    async def department_topic(department: str) -> faust.TopicT:
        if department not in department_topics:
            from vocflow.streams.core.admin import ensure_topics

            spec = T.department_spec(department)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, ensure_topics, settings, (spec,))
            department_topics[department] = raw_topic(app, topics, spec)
        return department_topics[department]

    async def route(value: bytes) -> tuple[ContactEvent, VocResult, faust.TopicT | None]:
        e = ContactEvent.model_validate_json(value)
        result = analyse_and_route(
            e,
            app.profiles,
            app.rules.current,
            datetime.now(UTC),
            last_issue=lambda key: LastIssue.from_json(_last_of(recent[key], window)),
            already_routed=bool(_last_of(routed[e.contact_id], ROUTED_MEMORY)),
            window=window,
        )
        envelope = result.envelope
        out = await department_topic(envelope.department) if envelope is not None else None
        return e, result, out

    @app.agent(voc_in, name="voc")
    async def voc_agent(stream: faust.StreamT) -> None:
        await app.views_loaded.wait()
        stage_in = metrics.STAGE_IN.labels(ROUTE)
        async for event in stream.events():
            stage_in.inc()
            outcome = await guard.run(event, route, event.value or b"")
            if isinstance(outcome, DeadLetter):
                await guard.reject(event, outcome)
                continue
            e, result, out = outcome
            for kind, n in result.contact.analysis.pii_masked.items():
                metrics.PII_MASKED.labels(kind).inc(n)
            if result.previous_contact_id is not None:
                metrics.REPEATS.inc()
            if result.repeat_key is not None:
                recent[result.repeat_key] = result.last_issue.to_json()
            envelope = result.envelope
            if envelope is None or out is None:
                continue  # the contact's department already has it
            body = envelope.model_dump_json().encode()
            await out.send(key=e.contact_id.encode(), value=body)
            await routed_out.send(key=e.contact_id.encode(), value=body)
            routed[e.contact_id] = envelope.department
            metrics.ROUTED.labels(envelope.department, envelope.tags.urgency.value).inc()
            metrics.STAGE_OUT.labels(ROUTE, "dept").inc()
