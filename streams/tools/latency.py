"""Latency raw -> department topic at a fixed offered rate (`vocflow bench`).

A paced producer sends the simulated workload to contacts.raw at a fixed
rate and notes when it sent each contact's first event with customer text
(the one the voc stage routes); a consumer on every dept.* topic, reading
committed records only as department systems must, notes when each contact's
routing envelope arrives. Records are matched by contact id, so nothing is
added to the events: the pipeline carries what it always carries.

A contact whose envelope has not arrived when the drain time is over counts as
infinitely late: a worker that cannot keep up shows a p99 of "not seen", not a
figure that depends on when the bench stopped looking.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import Settings
from vocflow.streams.tools.benchstats import due
from vocflow.streams.tools.traffic import Raw

TICK_S = 0.01  # the producer sends what is due every 10 ms


@dataclass
class Paced:
    """What the paced producer did."""

    sent: dict[str, float] = field(default_factory=dict)  # contact -> first text sent
    events: int = 0
    first: float = 0.0
    last: float = 0.0
    failed: int = 0

    @property
    def achieved(self) -> float:
        span = self.last - self.first
        return (self.events - 1) / span if span > 0 and self.events > 1 else 0.0


def publish_paced(
    settings: Settings,
    topic: str,
    records: Iterator[tuple[Raw, bool, str]],
    rate: float,
    seconds: float,
) -> Paced:
    """Send (record, carries text, contact id) at `rate` per second for `seconds`."""
    producer = kafka_clients.producer(settings, linger_ms=2)
    out = Paced()

    def failed(_exc: BaseException) -> None:
        out.failed += 1

    total = math.floor(rate * seconds)
    start = time.time()
    out.first = start
    try:
        while out.events < total:
            now = time.time()
            want = min(total, due(now - start, rate))
            while out.events < want:
                raw, text, contact = next(records)
                at = time.time()
                producer.send(topic, key=raw.key, value=raw.value).add_errback(failed)
                if text and contact not in out.sent:
                    out.sent[contact] = at
                out.events += 1
                out.last = at
            time.sleep(max(0.0, TICK_S - (time.time() - now)))
        producer.flush()
    finally:
        producer.close()
    return out


class DeptConsumer(threading.Thread):
    """Reads every department topic (read_committed) and notes each contact's first
    envelope arrival time."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.topics = topics
        self.arrived: dict[str, float] = {}
        self.halt = threading.Event()
        self.assigned = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from kafka import TopicPartition

        try:
            consumer = kafka_clients.consumer(
                self.settings,
                isolation_level="read_committed",
                fetch_max_wait_ms=20,
                auto_offset_reset="earliest",
            )
            parts = [
                TopicPartition(t, p)
                for t in self.topics
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            self.assigned.set()
            try:
                while not self.halt.is_set():
                    polled = consumer.poll(timeout_ms=50, max_records=5_000)
                    now = time.time()
                    for records in polled.values():
                        for r in records:
                            contact = _contact_of(r.value)
                            if contact is not None:
                                self.arrived.setdefault(contact, now)
            finally:
                consumer.close()
        except BaseException as exc:  # reported by the bench, not lost in a thread
            self.error = exc
            self.assigned.set()

    def wait_for(self, contacts: set[str], timeout: float, halt: Callable[[], bool]) -> bool:
        """Until every contact arrived (True), or the timeout or `halt()` (False)."""
        deadline = time.time() + timeout
        while time.time() < deadline and not halt():
            if contacts <= self.arrived.keys():
                return True
            time.sleep(0.05)
        return contacts <= self.arrived.keys()


def _contact_of(value: bytes | None) -> str | None:
    try:
        contact = orjson.loads(value or b"").get("contact_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return str(contact) if contact is not None else None
