"""The plain aiokafka loop the worker is measured against (`vocflow bench`).

One process, one asyncio loop: ``getmany`` on contacts.raw -> the worker's own
pure stage functions (normalize; for events with customer text enrich, tag,
repeat check and route as the voc stage does; the facts fold with its KPI
deltas) -> the same output topics (contacts.events, contacts.voc, contacts.dlq,
dept.*, contacts.routed, contacts.facts), sent as one record batch per topic
partition (`kafka_clients.send_batched`, as the worker's loops send) and
awaited per batch, then the consumed offsets committed. No transactions, no
changelog topics, no ClickHouse, and the stages hand each other objects instead
of re-reading JSON from the intermediate topics.

So it is what the same work costs with the least machinery around it: the
worker's rate over this one says what exactly-once, the intermediate topics and
the sink cost, on the same records in the same bench run.

Run by the bench as a child process (``python -m vocflow.streams.tools.baseline``)
so that its CPU seconds are its own; it prints one JSON object, the figures of
the timed part (after start-up and the first assignment, up to the last ack).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from vocflow.schemas import ContactEvent, DeadLetter, SourceRef
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.admin import ensure_topics
from vocflow.streams.core.settings import Settings, load_settings
from vocflow.streams.kpi.config import fold_config, kpi_targets
from vocflow.streams.kpi.contributions import LatestFacts
from vocflow.streams.kpi.fold import annotate, fold
from vocflow.streams.kpi.models import HOUR_MS, ContactFact
from vocflow.streams.privacy import pseudonyms
from vocflow.streams.stages import normalize as norm
from vocflow.streams.stages.enrich import enrich
from vocflow.streams.stages.facts_state import FactsState
from vocflow.streams.stages.routing import carries_voc_text
from vocflow.streams.stages.rules import RuleSet, load_rules
from vocflow.streams.stages.voc import analyse_and_route
from vocflow.streams.stages.voc_state import VocState

MAX_RECORDS = 2_000  # records per getmany (all partitions)


@dataclass
class BaselineResult:
    events: int
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    outputs: dict[str, int]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu_seconds / self.events * 1000 if self.events else 0.0


class Stages:
    """The pure stages of the worker, chained in one process (no Kafka here)."""

    def __init__(self, settings: Settings, out: T.Topics, rules: RuleSet) -> None:
        self.rules = rules
        self.max_bytes = settings.max_event_bytes
        self.window = timedelta(hours=settings.repeat_window_hours)
        self.fold_config = fold_config(settings)
        self.latest_facts = LatestFacts(kpi_targets(settings))
        self.voc_state = VocState(self.window)
        self.facts = FactsState(round(settings.facts_ttl_hours * HOUR_MS))
        self.events_topic = out.name(T.EVENTS)
        self.voc_topic = out.name(T.VOC)
        self.dlq_topic = out.name(T.DLQ)
        self.routed_topic = out.name(T.ROUTED)
        self.facts_topic = out.name(T.FACTS)
        self.dept_topics = {d: out.name(T.department_spec(d)) for d in rules.departments}
        self.counts: Counter[str] = Counter()

    def process(self, record: Any, now: datetime) -> list[tuple[str, bytes | None, bytes]]:
        """(topic, key, value) of what one raw record produces, its facts aside: those
        come once a contact per batch (`facts_of_batch`)."""
        source = SourceRef.of(
            record.topic, record.partition, record.offset, record.key, record.timestamp
        )
        result = norm.normalize(record.value or b"", source, self.max_bytes)
        if isinstance(result, DeadLetter):
            self.counts["dlq"] += 1
            return [(self.dlq_topic, record.key, result.model_dump_json().encode())]
        canonical = norm.published(result)
        key = result.contact_id.encode()
        out = [(self.events_topic, key, canonical.model_dump_json().encode())]
        self.counts["events"] += 1
        self._fold(canonical, out)
        if carries_voc_text(result.event_type, result.text):
            body = out[0][2] if canonical is result else result.model_dump_json().encode()
            out.append((self.voc_topic, (result.customer_id or result.contact_id).encode(), body))
            self.counts["voc"] += 1
            self._route(result, now, out)
        return out

    def _route(self, event: ContactEvent, now: datetime, out: list) -> None:
        state = self.voc_state
        result = analyse_and_route(
            event,
            {},
            self.rules,
            now,
            last_issue=state.last_issue,
            already_routed=state.already_routed(event.contact_id),
            window=self.window,
        )
        state.observe(event.occurred_at)
        if result.repeat_key is not None:
            state.remember_issue(result.repeat_key, result.last_issue)
        envelope = result.envelope
        state.take_journal()  # the worker's changelog; a plain loop keeps no durable state
        if envelope is None:
            return
        state.remember_routed(event.contact_id, envelope.department, event.occurred_at)
        body = envelope.model_dump_json().encode()
        key = event.contact_id.encode()
        out.append((self.dept_topics[envelope.department], key, body))
        out.append((self.routed_topic, key, body))
        self.counts["routed"] += 1
        previous = self.facts.get(event.contact_id)
        updated = annotate(
            previous or ContactFact(event.contact_id),
            department=envelope.department,
            category=envelope.tags.category.value,
            sentiment=envelope.sentiment,
            repeat=envelope.repeat_contact,
        )
        self._emit(previous, updated, out)

    def _fold(self, event: ContactEvent, out: list) -> None:
        previous = self.facts.get(event.contact_id)
        self._emit(previous, fold(previous, event, self.fold_config), out)

    def _emit(self, previous: ContactFact | None, updated: ContactFact | None, out: list) -> None:
        if updated is None:
            return
        self.facts.put(updated)
        last = updated.last_activity_ms
        if last is None:
            return
        self.facts.observe(last)
        self.facts.take_journal()
        self.latest_facts.add(previous, updated)

    def facts_of_batch(self) -> list[tuple[str, bytes | None, bytes]]:
        """The batch's contacts.facts messages, one a contact, as the facts loop sends."""
        facts = [(self.facts_topic, k, v) for k, v in self.latest_facts.take()]
        self.counts["facts"] += len(facts)
        return facts


async def run(
    settings: Settings,
    raw_topic: str,
    out_prefix: str,
    events: int,
    group: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    timeout_s: float = 3600.0,
) -> BaselineResult:
    """Consume `events` records of `raw_topic` from the start, write the outputs under
    `out_prefix`; the figures from the first getmany to the last ack."""
    rules = load_rules(settings.rules_path)
    out_settings = settings.model_copy(update={"topic_prefix": out_prefix})
    out = T.Topics(out_settings)
    ensure_topics(out_settings)
    ensure_topics(out_settings, tuple(T.department_spec(d) for d in rules.departments))
    stages = Stages(settings, out, rules)
    warm = ContactEvent(
        event_id="warm",
        contact_id="warm",
        channel="chat",
        event_type="message",
        occurred_at=clock(),
        text="宽带断网了",
    )
    enrich(warm, {}, clock())  # load the dictionaries and models before the clock starts
    consumer = kafka_clients.aio_consumer(
        settings,
        raw_topic,
        role="baseline",
        group_id=group,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=kafka_clients.LOOP_PARTITION_FETCH_BYTES,
    )
    producer = kafka_clients.aio_producer(settings, role="baseline", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        consumed = 0
        started = cpu0 = 0.0
        deadline = time.monotonic() + timeout_s
        while consumed < events:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"baseline: {consumed:,} of {events:,} records after {timeout_s}s"
                )
            batches = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
            if not batches:
                continue
            if not started:
                started, cpu0 = time.perf_counter(), time.process_time()
            now = clock()
            out: list[kafka_clients.Record] = []
            for records in batches.values():
                for record in records:
                    out.extend(
                        (topic, key, value, None)
                        for topic, key, value in stages.process(record, now)
                    )
                consumed += len(records)
            out.extend((topic, key, value, None) for topic, key, value in stages.facts_of_batch())
            # One record batch a topic partition, as the worker's loops send.
            await asyncio.gather(*await kafka_clients.send_batched(producer, out))
            await consumer.commit()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
        await producer.stop()
    return BaselineResult(
        events=consumed,
        seconds=seconds,
        cpu_seconds=cpu,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        outputs=dict(stages.counts),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-topic", required=True, help="full name of the input topic")
    parser.add_argument("--out-prefix", required=True, help="topic prefix of the outputs")
    parser.add_argument("--events", type=int, required=True, help="records to consume")
    parser.add_argument("--group", required=True, help="consumer group")
    args = parser.parse_args(argv)
    settings = load_settings()  # VOCFLOW_* from the environment the bench gives it
    pseudonyms.configure(settings)
    import uvloop

    uvloop.install()  # as `vocflow worker` does
    result = asyncio.run(run(settings, args.raw_topic, args.out_prefix, args.events, args.group))
    sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
