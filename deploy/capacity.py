"""The capacity table of docs/operations.md, computed from docs/benchmarks.md.

Why a script: the measured figures change with every `make bench` (the
throughput work is in progress), and a table copied by hand goes stale without
anyone noticing. `make capacity` rewrites the table between its markers;
tests/deploy/test_capacity.py fails when the committed table is not what this
script makes of the committed benchmarks, and test_k8s.py when the production
sizes (deploy/k8s/components/production-size) are not its 10,000 events/s row.

Measured: one worker's rate (its CPU seconds per 1,000 events where the
benchmark reports them, a figure that holds on a shared machine; else its
end-to-end events/s), one ingest process's single-event rate, one broker's
producer rate, each on the 2-core bench machine. Extrapolated: all
the rest, by dividing the load by those rates (the partitions of a topic are
processed independently, so workers add up until there is one per partition).
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
OPERATIONS = ROOT / "docs" / "operations.md"
BEGIN, END = "<!-- capacity:begin -->", "<!-- capacity:end -->"

RATES = (1_000, 10_000, 100_000)  # events/s to plan for
HEADROOM = 1.5  # plan at 2/3 of the measured rate: daily peaks, catching up after an outage
RECORDS_PER_EVENT = 5  # Kafka writes per event, at most (docs/operations.md says which)
REPLICATION = 3
PARTITION_STEPS = (6, 12, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
MIN_INGEST, MIN_BROKERS = 2, 3  # availability floors, not throughput


class BenchmarkMissing(Exception):
    """docs/benchmarks.md lacks a figure the table needs (the message says which)."""


@dataclass(frozen=True)
class Measured:
    date: str
    revision: str
    worker_events_s: int  # one `vocflow worker`, end to end (raw -> ClickHouse)
    ingest_req_s: int  # one `vocflow ingest`, one event per POST
    broker_events_s: int  # Kafka's Java producer against one broker
    worker_rss_mib: int  # one worker's peak resident memory during the end-to-end run
    worker_cpu_per_1k: float | None = None  # CPU seconds per 1,000 events (newer benchmarks)

    @property
    def worker_rate(self) -> float:
        """Events/s one worker (one core) takes: from its CPU cost when measured."""
        if self.worker_cpu_per_1k:
            return 1000 / self.worker_cpu_per_1k
        return self.worker_events_s

    @property
    def worker_basis(self) -> str:
        if self.worker_cpu_per_1k:
            return (
                f"one worker **{self.worker_cpu_per_1k:.3f} CPU s per 1,000 events** "
                f"({self.worker_rate:,.0f} events/s per core; end to end "
                f"{self.worker_events_s:,} events/s)"
            )
        return f"one worker **{self.worker_events_s:,} events/s** end to end"


def measured(text: str) -> Measured:
    def value(label: str) -> str | None:
        found = re.search(rf"^\| {re.escape(label)} \| ([\d,]+(?:\.\d+)?) \|", text, flags=re.M)
        return found.group(1).replace(",", "") if found else None

    def row(label: str) -> int:
        found = value(label)
        if found is None:
            raise BenchmarkMissing(f"docs/benchmarks.md has no row '{label}' with a number")
        return int(float(found))

    def field(name: str) -> str:
        found = re.search(rf"^- {name}: (.+)$", text, flags=re.M)
        if found is None:
            raise BenchmarkMissing(f"docs/benchmarks.md has no '- {name}:' line")
        return found.group(1).strip()

    return Measured(
        date=field("date"),
        revision=field("git revision"),
        worker_events_s=row("raw -> events + VOC routing + facts + ClickHouse"),
        ingest_req_s=row("ingest single-event POST"),
        broker_events_s=row("Java producer"),
        worker_rss_mib=row("worker peak RSS"),
        worker_cpu_per_1k=float(cpu) if (cpu := value("worker CPU per 1,000 events")) else None,
    )


@dataclass(frozen=True)
class Plan:
    rate: int
    workers: int
    partitions: int
    ingest: int
    brokers: int
    memory_gib: int


def plan(rate: int, m: Measured) -> Plan:
    workers = math.ceil(rate * HEADROOM / m.worker_rate)
    partitions = next((p for p in PARTITION_STEPS if p >= workers), PARTITION_STEPS[-1])
    ingest = max(MIN_INGEST, math.ceil(rate * HEADROOM / m.ingest_req_s))
    broker_load = rate * RECORDS_PER_EVENT * REPLICATION * HEADROOM
    brokers = max(MIN_BROKERS, math.ceil(broker_load / m.broker_events_s))
    memory_gib = math.ceil(workers * m.worker_rss_mib / 1024)
    return Plan(rate, workers, partitions, ingest, brokers, memory_gib)


def table(m: Measured) -> str:
    lines = [
        BEGIN,
        f"From `docs/benchmarks.md` of {m.date} (revision {m.revision}), measured on the "
        "2-core bench machine: {}, one ingest process **{:,}** single-event POSTs/s, one "
        "broker **{:,}** events/s (Kafka's Java producer), worker peak RSS {:,} MiB. "
        "Headroom {}x. Regenerate with `make capacity` after `make bench`.".format(
            m.worker_basis, m.ingest_req_s, m.broker_events_s, m.worker_rss_mib, HEADROOM
        ),
        "",
        "| events/s | workers (1 core each) | partitions | worker memory | ingest processes "
        "| Kafka brokers |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in (plan(rate, m) for rate in RATES):
        lines.append(
            f"| {p.rate:,} | {p.workers} | {p.partitions} | {p.memory_gib} GiB | {p.ingest} "
            f"| {p.brokers} |"
        )
    lines.append(END)
    return "\n".join(lines)


def rewrite(doc: str, m: Measured) -> str:
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    return doc[:start] + table(m) + doc[end:]


def main() -> int:
    try:
        m = measured(BENCHMARKS.read_text(encoding="utf-8"))
    except BenchmarkMissing as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 1
    doc = OPERATIONS.read_text(encoding="utf-8")
    OPERATIONS.write_text(rewrite(doc, m), encoding="utf-8")
    print(table(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
