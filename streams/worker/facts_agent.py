"""Faust agent `facts`: contacts.events + contacts.routed -> one fact per contact
-> contacts.facts (on change), with the KPI deltas of each new version.

Both inputs are keyed by contact_id with the same partition count, so a
contact's events and its routing decision meet in the same table partition.
The routing decision adds the department and category the fact needs for
per-department KPIs and the repeat-based FCR.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from vocflow.schemas import ContactEvent, DeadLetter, RoutingEnvelope
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import topics as T
from vocflow.streams.core.faults import crash_point
from vocflow.streams.kpi.config import fold_config, kpi_targets
from vocflow.streams.kpi.contributions import delta as kpi_delta
from vocflow.streams.kpi.fold import annotate, fold
from vocflow.streams.kpi.models import HOUR_MS, ContactFact
from vocflow.streams.worker.eviction import LAST_ACTIVITY, idle_facts
from vocflow.streams.worker.wiring import StageGuard, WorkerApp, raw_topic

log = logging.getLogger(__name__)

STAGE = "facts"
EVICTION_SECONDS = 300.0
# Stored with each fact: the offsets of the last contacts.events and contacts.routed
# records folded into it ([events, routed]; both topics are keyed by contact, so a
# contact's records of each topic sit in one partition).
APPLIED = "_applied"

_PRIVATE = (LAST_ACTIVITY, APPLIED)

Step = tuple[str, ContactFact | None, ContactFact | None]


class FactsAgent:
    """The agent, its table and the eviction of idle facts.

    The facts table lives in memory and in its compacted changelog; a fact idle
    for longer than VOCFLOW_FACTS_TTL_HOURS in event time is removed with a
    changelog tombstone (worker/eviction.py), every EVICTION_SECONDS."""

    def __init__(self, app: WorkerApp, topics: T.Topics, dlq: faust.TopicT) -> None:
        settings = app.settings_
        self.app = app
        self.routed_name = topics.name(T.ROUTED)
        self.events_name = topics.name(T.EVENTS)
        self.partitions = topics.partitions(T.EVENTS)
        self.table = app.Table("contact-facts", default=dict, partitions=settings.partitions)
        self.config = fold_config(settings)
        self.targets = kpi_targets(settings)
        self.ttl_ms = round(settings.facts_ttl_hours * HOUR_MS)
        self.newest_ms = 0  # latest event time folded: the clock of eviction
        self.guard = StageGuard(STAGE, dlq)
        facts_in = app.topic(
            self.events_name,
            self.routed_name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.facts_out = raw_topic(app, topics, T.FACTS)
        app.agent(facts_in, name="facts")(self._process)
        app.timer(interval=EVICTION_SECONDS)(self.evict_idle)

    def step(self, topic: str, value: bytes) -> Step:
        """(contact_id, stored fact, new fact or None when nothing changed)."""
        if topic == self.routed_name:
            r = RoutingEnvelope.model_validate_json(value)
            previous = self._stored(r.contact_id)
            updated = annotate(
                previous or ContactFact(r.contact_id),
                department=r.department,
                category=r.tags.category.value,
                sentiment=r.sentiment,
                repeat=r.repeat_contact,
            )
            return r.contact_id, previous, updated
        e = ContactEvent.model_validate_json(value)
        previous = self._stored(e.contact_id)
        return e.contact_id, previous, fold(previous, e, self.config)

    def _stored(self, contact_id: str) -> ContactFact | None:
        stored = self.table[contact_id]
        return ContactFact.from_dict(stored) if stored else None

    async def _process(self, stream: faust.StreamT) -> None:
        stage_in = metrics.STAGE_IN.labels(STAGE)
        out = metrics.STAGE_OUT.labels(STAGE, T.FACTS.name)
        async for event in stream.events():
            stage_in.inc()
            result = await self.guard.run(event, self.step, event.message.topic, event.value or b"")
            if isinstance(result, DeadLetter):
                await self.guard.reject(event, result)
                continue
            contact_id, previous, updated = result
            slot = 1 if event.message.topic == self.routed_name else 0
            offset = event.message.offset
            stored = self.table[contact_id]
            if stored and offset <= stored.get(APPLIED, (-1, -1))[slot]:
                # A record read again after a crash, already folded into the restored
                # table (folding it again could even undo a later routing decision).
                # The changelog write may have landed while the fact it produced never
                # reached contacts.facts: send the stored fact again (the sink keeps
                # one row per contact and version and counts a version once, so a
                # second copy changes nothing).
                if stored.get(LAST_ACTIVITY) is not None:
                    await self._emit(contact_id, stored, [])
                    out.inc()
                continue
            if updated is None:
                continue  # duplicate or no material change
            body = updated.to_dict()
            last = updated.last_activity_ms
            body[LAST_ACTIVITY] = last
            applied = list(stored.get(APPLIED, (-1, -1))) if stored else [-1, -1]
            applied[slot] = offset
            body[APPLIED] = applied
            self.table[contact_id] = body
            crash_point("facts.after_table_write")
            if last is None:
                continue  # routed before any of its events folded: nothing to count yet
            deltas = [[*key, c] for key, c in kpi_delta(previous, updated, self.targets)]
            await self._emit(contact_id, body, deltas)
            out.inc()

    async def _emit(self, contact_id: str, body: dict[str, Any], deltas: list[Any]) -> None:
        """Send the fact in ``body`` (which has events folded) to contacts.facts."""
        self.newest_ms = max(self.newest_ms, body[LAST_ACTIVITY])
        # A copy: the table may serialize `body` for its changelog later.
        message = {k: v for k, v in body.items() if k not in _PRIVATE}
        message["kpi_deltas"] = deltas
        await self.facts_out.send(key=contact_id.encode(), value=orjson.dumps(message))

    async def evict_idle(self) -> int:
        """One eviction round; a failure is logged, never fatal (it is upkeep)."""
        if not self.newest_ms:
            return 0
        facts = self.table
        try:
            active = {
                tp.partition
                for tp in self.app.assignor.assigned_actives()
                if tp.topic == self.events_name
            }
            idle = idle_facts(
                list(facts.data.items()), self.newest_ms - self.ttl_ms, self.partitions, active
            )
            for key, partition in idle:
                facts.data.pop(key, None)
                facts.send_changelog(partition, key, None)
        except Exception:
            log.exception("facts: eviction round failed; retried in %.0f s", EVICTION_SECONDS)
            return 0
        metrics.FACTS_EVICTED.inc(len(idle))
        metrics.FACTS_HELD.set(len(facts.data))
        return len(idle)
