"""Publishing a simulated day to Kafka: what `vocflow simulate` and the demo run.

Records go where a real adapter would put them (profiles to the compacted
`customers.profiles`, the agents' planned day to `agents.shifts`, contact
events to `contacts.raw`, agent events to `agents.events`), paced against
their event time by `speedup` (0 = as fast as the broker takes them). Labels
never travel with the events: they go to a separate JSONL file for
`vocflow eval`-style measurement.
"""

from __future__ import annotations

import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.tools.simulator.config import (
    Outage,
    PromotionSpike,
    SimConfig,
    StaffingShortfall,
)
from vocflow.streams.tools.simulator.engine import SimRecord, simulate
from vocflow.streams.tools.traffic import MALFORMED_KINDS, malformed

TOPIC_OF = {"profile": T.PROFILES, "shift": T.SHIFTS, "contact": T.RAW, "agent": T.AGENTS}
_SCENARIO = re.compile(r"^(?P<what>[^@]+)@(?P<h>\d{1,2}):(?P<m>\d{2})(?:\+(?P<dur>\d+))?$")


def parse_scenario(spec: str, kind: str) -> Outage | StaffingShortfall | PromotionSpike:
    """`CITY@14:30+45` (outage), `QUEUE@10:00+90` (shortfall), `NAME@19:00+120` (promotion)."""
    m = _SCENARIO.match(spec.strip())
    if not m:
        raise ValueError(f"'{spec}' is not WHAT@HH:MM[+MINUTES], e.g. 杭州@14:30+45")
    start = int(m["h"]) + int(m["m"]) / 60
    extra = {"duration_minutes": float(m["dur"])} if m["dur"] else {}
    if kind == "outage":
        return Outage(city=m["what"], start_hour=start, **extra)
    if kind == "shortfall":
        return StaffingShortfall(queue=m["what"], start_hour=start, **extra)
    return PromotionSpike(name=m["what"], start_hour=start, **extra)


def paced(
    records: Iterator[SimRecord], speedup: float, sleep: Callable[[float], None] = time.sleep
) -> Iterator[SimRecord]:
    """Yield each record no earlier than its event time / speedup after the first one."""
    if speedup <= 0:
        yield from records
        return
    origin = None
    wall0 = time.monotonic()
    for record in records:
        if record.kind == "profile":
            yield record
            continue
        if origin is None:
            origin = record.at
            wall0 = time.monotonic()
        due = (record.at - origin).total_seconds() / speedup - (time.monotonic() - wall0)
        if due > 0:
            sleep(due)
        yield record


def publish(
    settings: Settings,
    config: SimConfig,
    speedup: float = 0.0,
    max_events: int | None = None,
    labels_out: Path | None = None,
    malformed_ratio: float = 0.0,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[Counter], None] | None = None,
    customer_ordered: bool = False,
) -> Counter:
    """Send the simulated records; return counts per kind (and 'malformed').

    `customer_ordered`: each contact event goes to the raw partition of its
    customer, so a customer's contacts are read back in event-time order even
    when a whole backlog is published at once, as live traffic arrives (keyed by
    contact, a backlog is read back interleaved across partitions, and which of
    a customer's contacts counts as the repeat can change from run to run)."""
    topics = T.Topics(settings)
    names = {kind: topics.name(spec) for kind, spec in TOPIC_OF.items()}
    producer = kafka_clients.producer(
        settings, linger_ms=20, batch_size=256 * 1024, client_id="vocflow-simulate"
    )
    rng = random.Random(config.seed)
    counts: Counter = Counter()
    labels = labels_out.open("wb") if labels_out else None
    try:
        for record in paced(simulate(config), speedup):
            if should_stop() or (max_events is not None and counts.total() >= max_events):
                break
            partition = None
            customer = record.value.get("customer_id") if customer_ordered else None
            if record.kind == "contact" and customer:
                partition = zlib.crc32(customer.encode()) % topics.partitions(TOPIC_OF["contact"])
            producer.send(
                names[record.kind],
                key=record.key.encode(),
                value=orjson.dumps(record.value),
                partition=partition,
            )
            counts[record.kind] += 1
            if labels is not None and record.labels:
                labels.write(
                    orjson.dumps(
                        {
                            "event_id": record.value["event_id"],
                            "text": record.value.get("text"),
                            "channel": record.value.get("channel"),
                            **record.labels,
                        }
                    )
                    + b"\n"
                )
            if malformed_ratio and record.kind == "contact" and rng.random() < malformed_ratio:
                kind = MALFORMED_KINDS[counts["malformed"] % len(MALFORMED_KINDS)]
                producer.send(
                    names["contact"],
                    key=b"malformed",
                    value=malformed(rng, kind, counts["malformed"], settings.max_event_bytes),
                )
                counts["malformed"] += 1
            if on_progress is not None and counts.total() % 1000 == 0:
                on_progress(counts)
    finally:
        producer.flush()
        producer.close()
        if labels is not None:
            labels.close()
    return counts
