"""`vocflow bench`: measured speed of the broker, the stages and the whole pipeline,
beside a plain aiokafka loop on the same records; latency, freshness and memory.

Sections, in the order they run: the broker's own rate (Java tools), the stage
functions alone, webhook ingestion, the plain aiokafka baseline
(streams/tools/baseline.py) and the worker end to end on the same workload
(streams/tools/workload.py: simulated contact events spooled to a file, so a
million of them cost no memory), latency raw -> department topic at fixed offered
rates (streams/tools/latency.py), freshness (event occurred -> /metrics and
/api/kpis), and memory over a simulated day. Every rate has the CPU seconds per
1,000 events beside it: on a shared machine that figure holds still.

Results are written to docs/benchmarks.md with the date, git revision and
machine, so speed claims are always tied to a run, with the goals of the
performance issue judged on top (streams/tools/goals.py, `--check`). Tests never
assert timings; this is where they live.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from vocflow.schemas import ContactEvent, EnrichedContact, SourceRef
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.admin import delete_topics_with_prefix, ensure_topics
from vocflow.streams.core.settings import Settings
from vocflow.streams.privacy.pii import mask_pii
from vocflow.streams.stages.deptmodel import default_model, features
from vocflow.streams.stages.enrich import enrich, enrich_with_tokens
from vocflow.streams.stages.normalize import normalize
from vocflow.streams.stages.rules import RuleSet, load_rules
from vocflow.streams.stages.tagging import tag
from vocflow.streams.stages.voc import analyse_and_route, prepare_batch
from vocflow.streams.tools import broker, goals, procs
from vocflow.streams.tools.benchstats import percentile
from vocflow.streams.tools.demo import fetch_json
from vocflow.streams.tools.simulator import SimConfig, simulate
from vocflow.streams.tools.traffic import Raw, contact_lifecycle
from vocflow.streams.tools.workload import Workload, spool

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = goals.OUTPUT
E2E_TIMEOUT_S = 1200.0


@dataclass
class Result:
    name: str
    value: float
    unit: str
    note: str = ""
    fmt: str = ",.0f"  # format of the value column
    key: str = ""  # the figure's stable name for the goals (streams/tools/goals.py)

    def shown(self) -> str:
        """The value as the table shows it: inf is a latency never seen, nan no figure."""
        if math.isnan(self.value):
            return "n/a"
        return f"{self.value:{self.fmt}}" if math.isfinite(self.value) else "not seen"


@dataclass
class Section:
    title: str
    method: str
    results: list[Result] = field(default_factory=list)
    # Figures for the goals that are not rows of the table (key -> value).
    figures: dict[str, float] = field(default_factory=dict)


# The kafka-python producer's rate is measured on this many records at most: a rate,
# not a load step, and 1,000,000 would cost minutes of the bench for the same figure.
PYTHON_PRODUCER_MAX = 200_000
# Payloads the Java producer picks from at random (it reads the whole file first).
JAVA_PAYLOADS_MAX = 200_000
# The stage functions are timed alone on the first records of the workload.
STAGES_MAX = 50_000


def java_tool(main_class: str, args: list[str], stdin: str | None = None) -> str:
    """Run a Kafka command-line tool from the broker's jars; its stdout (UTF-8 both ways)."""
    classpath = str(broker.fetch() / "*")
    result = subprocess.run(
        [
            "java",
            "-Xmx1g",
            "-Dfile.encoding=UTF-8",
            "-Dstdout.encoding=UTF-8",
            "-Dlog4j.configuration=file:" + str(broker.DEPLOY_DIR / "log4j.properties"),
            "-Dkafka.logs.dir=" + tempfile.gettempdir(),
            "-cp",
            classpath,
            main_class,
            *args,
        ],
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{main_class} failed: {result.stderr[-1500:]}")
    return result.stdout


def bench_broker(settings: Settings, work: Workload, prefix: str) -> Section:
    python_n = min(work.events, PYTHON_PRODUCER_MAX)
    section = Section(
        "Broker limit (no processing)",
        "Kafka's own ProducerPerformance / ConsumerPerformance (kafka-tools "
        f"{broker.KAFKA_VERSION}) with the workload's records as payloads (the first "
        f"{JAVA_PAYLOADS_MAX:,} without a line break, picked at random), acks=all, one topic "
        f"of {settings.partitions} partitions; then kafka-python producing the first "
        f"{python_n:,} records, as a Python channel adapter would.",
    )
    topic = f"{prefix}bench.broker"
    _create(settings, topic)
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        kept = 0
        for r in work.records():
            if b"\n" in r.value or len(r.value) >= 10_000:
                continue
            f.write(r.value if not kept else b"\n" + r.value)
            kept += 1
            if kept >= JAVA_PAYLOADS_MAX:
                break
        payloads = f.name
    cpu = _children_cpu()
    out = java_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        [
            "--topic",
            topic,
            "--num-records",
            str(work.events),
            "--payload-file",
            payloads,
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={settings.bootstrap_servers}",
            "acks=all",
            "linger.ms=5",
            "batch.size=262144",
        ],
    )
    os.unlink(payloads)
    producer_cpu = _children_cpu() - cpu
    last = out.strip().splitlines()[-1]
    m = re.search(
        r"([\d.]+) records/sec \(([\d.]+) MB/sec\).*?([\d.]+) ms avg latency.*?"
        r"(\d+) ms 99th",
        last,
    )
    if m:
        section.results.append(
            Result(
                "Java producer",
                float(m.group(1)),
                "events/s",
                f"{m.group(2)} MB/s, p99 latency {m.group(4)} ms; "
                f"{_per_1k(producer_cpu, work.events)} (JVM start included)",
                key="broker.java_producer",
            )
        )
    cpu = _children_cpu()
    out = java_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        [
            "--bootstrap-server",
            settings.bootstrap_servers,
            "--topic",
            topic,
            "--messages",
            str(work.events),
            "--timeout",
            "60000",
        ],
    )
    row = out.strip().splitlines()[-1].split(",")
    section.results.append(
        Result(
            "Java consumer",
            float(row[5]),
            "events/s",
            f"{float(row[3]):.1f} MB/s; "
            f"{_per_1k(_children_cpu() - cpu, work.events)} (JVM start included)",
            key="broker.java_consumer",
        )
    )
    topic_py = f"{prefix}bench.python"
    _create(settings, topic_py)
    producer = kafka_clients.producer(settings, linger_ms=5, batch_size=262144)
    started, cpu = time.perf_counter(), time.process_time()
    for r in tqdm(
        work.records(python_n), total=python_n, desc="kafka-python produce", unit="ev", leave=False
    ):
        producer.send(topic_py, key=r.key, value=r.value)
    producer.flush()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    producer.close()
    section.results.append(
        Result(
            "kafka-python producer",
            python_n / elapsed,
            "events/s",
            f"acks=all, linger 5 ms, {python_n:,} records; {_per_1k(cpu, python_n)} "
            "(the bench process, reading the workload file included)",
            key="broker.python_producer",
        )
    )
    return section


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (the Java tools)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _per_1k(cpu: float, events: int) -> str:
    return f"CPU {cpu / events * 1000:.3f} s per 1,000 events" if events else "CPU n/a"


def _create(settings: Settings, topic: str) -> None:
    from kafka.admin import NewTopic

    from vocflow.streams.core.admin import connect_admin

    admin = connect_admin(settings)
    try:
        admin.create_topics([NewTopic(topic, settings.partitions, settings.replication_factor)])
    finally:
        admin.close()


def bench_stage(name: str, fn: Callable[[Raw], object], records: list[Raw]) -> Result:
    """Events per second of one stage function on one core, best of three passes."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for r in records:
            fn(r)
        best = min(best, time.perf_counter() - started)
    return Result(name, len(records) / best, "events/s", "one core, best of 3 passes")


def voc_events(n: int) -> list[ContactEvent]:
    """Contact texts from the labelled evaluation set (written, varied, some with PII)."""
    path = ROOT / "tests" / "data" / "voc_labelled.jsonl"
    labelled = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    return [
        ContactEvent(
            event_id=f"b{i}",
            contact_id=f"b{i}",
            customer_id=f"C{i % 997}",
            channel=labelled[i % len(labelled)]["channel"],
            event_type="message",
            occurred_at=at,
            text=labelled[i % len(labelled)]["text"],
        )
        for i in range(n)
    ]


def bench_stages(records: list[Raw], settings: Settings) -> Section:
    source = SourceRef(topic="contacts.raw", partition=0, offset=0)
    section = Section(
        "Stages alone",
        "Plain stage functions in one process, no Kafka: the ceiling each stage puts on one "
        f"worker core. normalize runs over the first {len(records):,} records of the "
        "workload; the voice-of-customer stages over "
        "the 462 written contact texts of tests/data/voc_labelled.jsonl, cycled.",
    )
    section.results.append(bench_stage("normalize", lambda r: normalize(r.value, source), records))
    events = voc_events(min(len(records), 20_000))
    rules = load_rules(settings.rules_path)
    now = datetime.now(UTC)
    enrich(events[0], {}, now)  # load dictionaries and models once
    texts = [
        bench_stage("mask_pii", lambda e: mask_pii(e.text), events),
        bench_stage(
            "enrich (mask + jieba + keywords + sentiment)", lambda e: enrich(e, {}, now), events
        ),
    ]
    enriched = [enrich(e, {}, now) for e in events]
    texts.append(bench_stage("tag (rules)", lambda c: tag(c, rules), enriched))
    last: dict = {}
    texts.append(
        bench_stage(
            "enrich + tag + repeat + route",
            lambda e: analyse_and_route(e, {}, rules, now, last.get, False, timedelta(hours=24)),
            events,
        )
    )
    texts += bench_classify(events, rules, now)
    for r in texts:
        r.unit = "texts/s"
    section.results += texts
    return section


CLASSIFY_BATCH = 500


def bench_classify(events: list[ContactEvent], rules: RuleSet, now: datetime) -> list[Result]:
    """The department model in batches as the voc stage runs it (callable alone):
    features + one numpy prediction per batch + tag with the vote; then the whole
    chain with the model (enrich + classify + tag + repeat + route)."""
    model = default_model()
    pairs = [enrich_with_tokens(e, {}, now) for e in events]
    batches = [pairs[i : i + CLASSIFY_BATCH] for i in range(0, len(pairs), CLASSIFY_BATCH)]

    def tag_classify(batch: list[tuple[EnrichedContact, tuple[str, ...]]]) -> None:
        votes = model.predict([features(c.event.text or "", t) for c, t in batch])
        for (c, _), v in zip(batch, votes, strict=True):
            tag(c, rules, v)

    event_batches = [events[i : i + CLASSIFY_BATCH] for i in range(0, len(events), CLASSIFY_BATCH)]
    last: dict = {}

    def chain(batch: list[ContactEvent]) -> None:
        for e, p in zip(batch, prepare_batch(batch, {}, now, model), strict=True):
            analyse_and_route(e, {}, rules, now, last.get, False, timedelta(hours=24), prepared=p)

    out = []
    for name, fn, items in (
        (f"tag + classify (model {model.version})", tag_classify, batches),
        ("enrich + classify + tag + repeat + route", chain, event_batches),
    ):
        r = bench_stage(name, fn, items)
        out.append(
            Result(
                name,
                r.value * len(events) / len(items),
                "texts/s",
                f"one core, best of 3 passes, batches of {CLASSIFY_BATCH}",
            )
        )
    return out


def bench_webhook(settings: Settings) -> Section:
    from vocflow.streams.tools.ingest_bench import bench_ingest

    section = Section(
        "Webhook ingestion",
        "`wrk` (Debian package) on loopback against `vocflow ingest`: one signed CTI event per "
        "POST; every 202 waits for the Kafka ack (acks=all, idempotent producer). wrk, ingest "
        "and the broker share the machine.",
    )
    for name, value, unit, note in bench_ingest(settings):
        section.results.append(Result(name, value, unit, note))
    return section


def load_raw(settings: Settings, work: Workload, topic: str) -> float:
    """Put the workload into `topic`; seconds it took."""
    producer = kafka_clients.producer(settings, linger_ms=20, batch_size=262144)
    started = time.perf_counter()
    for r in tqdm(work.records(), total=work.events, desc="load raw", unit="ev", leave=False):
        producer.send(topic, key=r.key, value=r.value)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def bench_baseline(settings: Settings, work: Workload, prefix: str, data: Path) -> Section:
    """The plain aiokafka loop (streams/tools/baseline.py) as a child process."""
    from vocflow.streams.tools.baseline import BaselineResult

    section = Section(
        "Plain aiokafka baseline",
        f"The {work.events:,} workload records of contacts.raw (the ones the worker reads "
        "below) through one `python -m vocflow.streams.tools.baseline` process: `getmany` "
        "-> the worker's pure stage functions (normalize; enrich, tag, repeat check and "
        "route for the events with customer text; the facts fold with its KPI deltas) -> "
        "the same output topics (under its own prefix), sent as one record batch per topic "
        "partition as the worker sends, the batch's acks awaited, then its offsets "
        "committed. No transactions, no changelogs, no ClickHouse; uvloop as in the "
        "worker. Timed from its first fetched batch to the last ack; its CPU seconds are "
        "its own (time.process_time).",
    )
    env = _worker_env(settings, prefix, data)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vocflow.streams.tools.baseline",
            "--raw-topic",
            f"{prefix}{T.RAW.name}",
            "--out-prefix",
            f"{prefix}base.",
            "--events",
            str(work.events),
            "--group",
            f"{prefix}baseline",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=max(E2E_TIMEOUT_S, work.events / 100),
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"baseline failed (exit {out.returncode}): {out.stderr[-2000:]}")
    result = BaselineResult(**orjson.loads(out.stdout.strip().splitlines()[-1]))
    outputs = result.outputs
    section.results += [
        Result(
            "getmany -> stages -> batched produce",
            result.rate,
            "events/s",
            f"{result.seconds:.1f} s; outputs: {outputs.get('events', 0):,} events "
            f"(expected {work.valid:,}), {outputs.get('dlq', 0):,} dead letters, "
            f"{outputs.get('routed', 0):,} contacts routed (expected {work.routed:,}), "
            f"{outputs.get('facts', 0):,} fact versions",
            key="baseline.rate",
        ),
        Result(
            "baseline CPU per 1,000 events",
            result.cpu_per_1k,
            "CPU s",
            f"user + system of the process; {result.cpu_seconds:.1f} CPU s over the run",
            fmt=".3f",
            key="baseline.cpu_per_1k",
        ),
        Result(
            "baseline peak RSS",
            result.peak_rss_mib,
            "MiB",
            "ru_maxrss",
            key="baseline.peak_rss_mib",
        ),
    ]
    return section


def bench_end_to_end(settings: Settings, work: Workload, prefix: str, data: Path) -> Section:
    section = Section(
        "End to end",
        f"{work.events:,} raw events already in contacts.raw ({work.text_share:.1%} with "
        "customer text); one `vocflow worker` process (transactional aiokafka loops + "
        "in-process ClickHouse sink, embedded chdb) is started and timed until every event "
        "is through normalize, every contact with text is routed to its department, and "
        "every row is in ClickHouse (FINAL counts). Its CPU seconds are read from /proc.",
    )
    env = _worker_env(settings, prefix, data)
    timeout = max(E2E_TIMEOUT_S, work.events / 300)
    proc = _start_worker(settings, env, data)
    try:
        started = time.perf_counter()
        proc.wait_healthy()
        ready = time.perf_counter()
        cpu_ready = cpu_seconds(proc.pid)
        bar = tqdm(total=work.events, desc="end to end", unit="ev", leave=False)
        peak_rss = 0.0
        unanswered = 0
        while True:
            stats = _get_json(f"{settings.web_url}/api/stats")
            if stats is None:  # a busy worker (ClickHouse held by a KPI round): ask again
                unanswered += 1
                stats = {}
            seen = stats.get("stages", {}).get("normalize", {}).get("in", 0)
            rows = stats.get("clickhouse", {})
            bar.update(seen - bar.n)
            peak_rss = max(peak_rss, _rss_mib(proc.pid))
            if (
                seen >= work.events
                and rows.get("contact_events", 0) >= work.valid
                and rows.get("routing_log", 0) >= work.routed
            ):
                break
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"end-to-end run incomplete after {timeout:.0f}s: {stats}")
            time.sleep(2.0)  # /api/stats counts with FINAL: do not load the worker
        done = time.perf_counter()
        cpu_done = cpu_seconds(proc.pid)
        bar.close()
    finally:
        proc.stop()
    cpu_per_1k = (cpu_done - cpu_ready) / work.events * 1000
    section.results += [
        Result(
            "raw -> events + VOC routing + facts + ClickHouse",
            work.events / (done - ready),
            "events/s",
            f"{done - ready:.1f} s after the worker answered (start-up {ready - started:.1f} s); "
            f"{work.routed:,} contacts routed; /api/stats polls unanswered in 30 s: "
            f"{unanswered}",
            key="e2e.rate",
        ),
        Result(
            "worker CPU per 1,000 events",
            cpu_per_1k,
            "CPU s",
            f"user + system, /proc; {cpu_done - cpu_ready:.1f} CPU s over the run",
            fmt=".3f",
            key="e2e.cpu_per_1k",
        ),
        Result(
            "worker peak RSS",
            peak_rss,
            "MiB",
            "VmHWM, sampled every 2 s; owns embedded ClickHouse",
            key="e2e.peak_rss_mib",
        ),
    ]
    section.figures["workload.text_share"] = work.text_share
    return section


def _worker_env(settings: Settings, prefix: str, data: Path, **extra: str) -> dict[str, str]:
    """Environment of a benchmarked `vocflow worker`: own topics, group and data dir."""
    return procs.env_without_vocflow(
        VOCFLOW_KAFKA_BOOTSTRAP=settings.bootstrap_servers,
        VOCFLOW_TOPIC_PREFIX=prefix,
        VOCFLOW_APP_ID=prefix.rstrip("."),
        VOCFLOW_DATA_DIR=str(data),
        VOCFLOW_WEB_PORT=str(settings.web_port),
        VOCFLOW_LOG_LEVEL="warning",
        **extra,
    )


def _start_worker(settings: Settings, env: dict[str, str], data: Path) -> procs.Child:
    return procs.Child("worker", data / "worker.log", env=env, url=settings.web_url)


# ---- freshness: event occurred -> visible in the worker's /metrics --------------------

# What the freshness bench reads from /metrics: short name -> (metric, exact labels).
FRESHNESS_SERIES: dict[str, tuple[str, dict[str, str]]] = {
    "normalize": ("vocflow_stage_events_in_total", {"stage": "normalize"}),
    "normalized": (
        "vocflow_stage_events_out_total",
        {"stage": "normalize", "topic": "contacts.events"},
    ),
    "facts": ("vocflow_stage_events_in_total", {"stage": "facts"}),
    "clickhouse": ("vocflow_sink_rows_total", {"table": "contact_events"}),
    "kpi": (
        "vocflow_contacts",
        {"interval": "today", "queue": "", "channel": "", "department": ""},
    ),
    "refreshed": ("vocflow_kpi_refreshed_timestamp_seconds", {}),
}
# (stage, series, what the series must reach to include a batch), in pipeline order:
# "events" = events sent so far, "contacts" = new contacts so far, "folds" = events plus
# routing decisions (the facts agent consumes both; every new contact carries text and is
# routed once, as bench_end_to_end also assumes).
FRESHNESS_STAGES = (
    ("worker consumed (normalize in)", "normalize", "events"),
    ("normalized (normalize out to contacts.events)", "normalized", "events"),
    ("folded (facts agent in: events + routing decisions)", "facts", "folds"),
    ("in ClickHouse (contact_events rows)", "clickhouse", "events"),
    ('KPI gauge vocflow_contacts{interval="today"}', "kpi", "contacts"),
    ("KPI in /api/kpis (contacts today, all groups)", "api_kpi", "contacts"),
)
# Freshness stages whose p95 (the worst over the runs) the goals judge.
FRESHNESS_GOAL_KEYS = {"kpi": "freshness.metrics.p95_s", "api_kpi": "freshness.api.p95_s"}
# (new contacts per second, seconds): idle-ish, moderate, a few hundred events/s.
FRESHNESS_RUNS = ((1.0, 60.0), (30.0, 60.0), (100.0, 60.0))
FRESHNESS_POLL_S = 0.1
FRESHNESS_DRAIN_S = 60.0  # polling goes on this long after the last send at most
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape_values(
    text: str, series: dict[str, tuple[str, dict[str, str]]] = FRESHNESS_SERIES
) -> dict[str, float]:
    """Values of the wanted series in a Prometheus text exposition (exact label sets)."""
    names = {name for name, _ in series.values()}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        if name not in names:
            continue
        found = dict(_LABEL.findall(labels))
        for key, (wanted, wanted_labels) in series.items():
            if name == wanted and found == wanted_labels:
                out[key] = float(value)
    return out


def kpis_contacts_today(body: bytes) -> float | None:
    """Contacts today (all groups) in a /api/kpis document; None when absent."""
    try:
        by = orjson.loads(body)["intervals"]["today"]["by"]
        for kpis in by.values():
            value = kpis["contacts"]["_all"]["value"]
            return None if value is None else float(value)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return None


def first_visible(
    marks: list[tuple[float, float]], polls: list[tuple[float, float]]
) -> list[float | None]:
    """Seconds from each mark to the first poll that shows it.

    marks: (when a batch was published, value the series must reach to include it);
    polls: (when a /metrics answer arrived, the series' value), in time order. A mark
    is visible at the first poll at or after its time whose value is >= its target;
    None when no poll shows it.
    """
    out: list[float | None] = []
    for at, target in marks:
        seen = next((t for t, v in polls if t >= at and v >= target), None)
        out.append(None if seen is None else seen - at)
    return out


@dataclass
class Spread:
    p50: float
    p95: float
    max: float
    n: int
    missing: int


def spread(latencies: list[float | None]) -> Spread | None:
    """p50/p95/max over all batches; a batch never seen counts as infinitely late."""
    if not latencies:
        return None
    values = [math.inf if x is None else x for x in latencies]
    return Spread(
        percentile(values, 50),
        percentile(values, 95),
        max(values),
        len(values),
        sum(x is None for x in latencies),
    )


def _seconds(x: float) -> str:
    return f"{x:.2f} s" if math.isfinite(x) else "not seen"


@dataclass
class _Batch:
    sent: float
    events: int  # cumulative, this batch included
    contacts: int  # cumulative new contacts
    folds: int  # cumulative events + contacts to be routed (facts agent input)
    left: int
    acked: float | None = None
    failed: int = 0


class _Poller(threading.Thread):
    """GETs /metrics every FRESHNESS_POLL_S; keeps (answer time, values)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.polls: list[tuple[float, dict[str, float]]] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        due = time.time()
        kpis_url = self.url.removesuffix("/metrics") + "/api/kpis"
        while not self.halt.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    text = response.read().decode()
                values = scrape_values(text)
                at = time.time()
                try:
                    with urllib.request.urlopen(kpis_url, timeout=10) as response:
                        today = kpis_contacts_today(response.read())
                    if today is not None:
                        values["api_kpi"] = today
                        at = time.time()  # the later answer: both are visible by then
                except OSError:
                    pass  # 503 until the first KPI round: not an error of the poll
                self.polls.append((at, values))
            except OSError:
                self.errors += 1
            due = max(due + FRESHNESS_POLL_S, time.time())
            self.halt.wait(max(0.0, due - time.time()))

    def last(self) -> dict[str, float]:
        return self.polls[-1][1] if self.polls else {}

    def series(self, key: str, since: float) -> list[tuple[float, float]]:
        return [(t, v.get(key, 0.0)) for t, v in self.polls if t >= since]


def _wait_for(poller: _Poller, ok: Callable[[dict[str, float]], bool], timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ok(poller.last()):
            return True
        time.sleep(FRESHNESS_POLL_S)
    return False


def _publish_live(
    producer: KafkaProducer, topic: str, contacts_per_s: float, seconds: float, seed: str
) -> list[_Batch]:
    """Contacts arrive at random (Poisson) and play their lifecycles in real time: each
    event is sent when due, stamped occurred_at = the moment it is sent."""
    rng = random.Random(seed)
    due: list[tuple[float, int, dict]] = []
    order = itertools.count()
    batches: list[_Batch] = []
    events = contacts = routed = created = 0
    started = time.time()
    arrival = started
    tick = started
    while tick < started + seconds:
        now = time.time()
        while arrival <= now:
            created += 1
            life = contact_lifecycle(
                rng, f"F{seed}-{created:07d}", datetime.fromtimestamp(arrival, UTC)
            )
            for ev in life:
                at = datetime.fromisoformat(str(ev["occurred_at"])).timestamp()
                heapq.heappush(due, (at, next(order), ev))
            arrival += rng.expovariate(contacts_per_s)
        ready = []
        while due and due[0][0] <= now:
            ready.append(heapq.heappop(due)[2])
        if ready:
            stamp = datetime.fromtimestamp(now, UTC).isoformat()
            events += len(ready)
            contacts += sum(ev["event_type"] == "offered" for ev in ready)
            routed += sum(ev["event_type"] == "offered" and bool(ev.get("text")) for ev in ready)
            batch = _Batch(now, events, contacts, events + routed, left=len(ready))
            batches.append(batch)

            def acked(_meta: object, b: _Batch = batch) -> None:
                b.left -= 1
                if b.left == 0:
                    b.acked = time.time()

            def failed(_exc: BaseException, b: _Batch = batch) -> None:
                b.failed += 1

            for ev in ready:
                ev["occurred_at"] = stamp
                future = producer.send(
                    topic, key=str(ev["contact_id"]).encode(), value=orjson.dumps(ev)
                )
                future.add_callback(acked)
                future.add_errback(failed)
        tick += FRESHNESS_POLL_S
        time.sleep(max(0.0, tick - time.time()))
    producer.flush()
    return batches


def _wait_topics_visible(settings: Settings, timeout: float = 60.0) -> None:
    """New topics take seconds to show in a loaded broker's metadata; a worker started
    before that can sit without partitions, so wait until every one describes."""
    from vocflow.streams.core.admin import connect_admin

    names = [T.Topics(settings).name(spec) for spec in T.ALL]
    admin = connect_admin(settings)
    try:
        deadline = time.time() + timeout
        while True:
            missing = [d for d in admin.describe_topics(names) if d["error_code"] != 0]
            if not missing or time.time() > deadline:
                return
            time.sleep(0.5)
    finally:
        admin.close()


def _freshness_run(
    settings: Settings,
    prefix: str,
    data: Path,
    contacts_per_s: float,
    seconds: float,
    p95s: dict[str, list[float]],
) -> list[Result]:
    """One worker, fresh topics and ClickHouse; live traffic for `seconds`."""
    own = settings.model_copy(update={"topic_prefix": prefix})
    ensure_topics(own)
    _wait_topics_visible(own)
    env = _worker_env(
        settings,
        prefix,
        data,
        VOCFLOW_KPI_REFRESH_SECONDS=str(settings.kpi_refresh_seconds),
        VOCFLOW_SINK_FLUSH_SECONDS=str(settings.sink_flush_seconds),
    )
    topic = f"{prefix}{T.RAW.name}"
    seed = prefix.rstrip(".")
    producer = kafka_clients.producer(settings, linger_ms=5)
    proc = _start_worker(settings, env, data)
    poller = _Poller(f"{settings.web_url}/metrics")
    try:
        proc.wait_healthy()
        poller.start()
        # Warm-up: one contact must reach the KPI gauge (sink assigned, first refresh done).
        warm = contact_lifecycle(random.Random(0), f"W{seed}", datetime.now(UTC))[:2]
        for ev in warm:
            producer.send(topic, key=str(ev["contact_id"]).encode(), value=orjson.dumps(ev))
        producer.flush()
        if not _wait_for(poller, lambda v: v.get("kpi", 0) >= 1, 180.0):
            log = (data / "worker.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"freshness: warm-up contact not on /metrics: {poller.last()}; worker log:\n{log}"
            )
        # ... and its routing decision reach the facts agent (not fatal: a stage count).
        _wait_for(poller, lambda v: v.get("facts", 0) >= len(warm) + 1, 10.0)
        base = poller.last()
        cpu0 = cpu_seconds(proc.pid)
        batches = _publish_live(producer, topic, contacts_per_s, seconds, seed)
        last = batches[-1]
        drain = FRESHNESS_DRAIN_S
        _wait_for(
            poller,
            lambda v: (
                v.get("kpi", 0) >= base.get("kpi", 0) + last.contacts
                and v.get("api_kpi", 0) >= base.get("api_kpi", 0) + last.contacts
                and v.get("clickhouse", 0) >= base.get("clickhouse", 0) + last.events
            ),
            drain,
        )
        time.sleep(2 * FRESHNESS_POLL_S)
        cpu1 = cpu_seconds(proc.pid)
    finally:
        poller.halt.set()
        producer.close()
        proc.stop()
    poller.join(15)
    load = os.getloadavg()[0]
    consumed = max(
        (v for t, v in poller.series("normalize", 0.0) if t <= last.sent),
        default=base.get("normalize", 0.0),
    ) - base.get("normalize", 0.0)
    sent_from = batches[0].sent
    duration = batches[-1].sent - sent_from + FRESHNESS_POLL_S
    label = f"{contacts_per_s:g} contacts/s"
    results = [
        Result(
            f"{label}: live traffic published",
            last.events / duration,
            "events/s",
            f"{last.contacts:,} new contacts ({last.contacts / duration:,.1f}/s, Poisson "
            f"arrivals) and {last.events:,} events in {duration:.0f} s, {len(batches):,} "
            f"batches; send failures: {sum(b.failed for b in batches)}; worker "
            f"{_per_1k(cpu1 - cpu0, last.events)} (idle work included: KPI rounds, "
            "polls); when the last batch "
            f"was sent the worker had consumed {consumed:,.0f} of them; machine load "
            f"average (1 min) at the end: {load:.1f}",
        )
    ]
    acks = [None if b.acked is None else b.acked - b.sent for b in batches]
    stages: list[tuple[str, list[float | None], str]] = [
        ("Kafka ack (acks=all, per batch)", acks, "ack")
    ]
    for name, key, unit in FRESHNESS_STAGES:
        # A batch without a new contact adds nothing to the gauge: only new-contact batches.
        wanted = [
            b
            for i, b in enumerate(batches)
            if unit != "contacts" or b.contacts > (batches[i - 1].contacts if i else 0)
        ]
        marks = [(b.sent, base.get(key, 0.0) + getattr(b, unit)) for b in wanted]
        stages.append((name, first_visible(marks, poller.series(key, sent_from)), key))
    for name, latencies, key in stages:
        s = spread(latencies)
        if s is None:
            continue
        if key in FRESHNESS_GOAL_KEYS:
            p95s.setdefault(FRESHNESS_GOAL_KEYS[key], []).append(s.p95)
        note = f"p95 {_seconds(s.p95)}, max {_seconds(s.max)} over {s.n:,} batches"
        if s.missing:
            note += (
                f"; {s.missing:,} not seen by the end of polling ({drain:.0f} s after the last "
                "send), counted as infinitely late"
            )
        results.append(Result(f"{label}: occurred -> {name}", s.p50, "s p50", note, fmt=",.2f"))
    refreshed = sorted({v["refreshed"] for _, v in poller.polls if v.get("refreshed")})
    gaps = [b - a for a, b in itertools.pairwise(refreshed) if a >= sent_from]
    if gaps:
        results.append(
            Result(
                f"{label}: KPI refresh interval observed",
                percentile(gaps, 50),
                "s p50",
                f"max {max(gaps):.1f} s between vocflow_kpi_refreshed_timestamp_seconds "
                f"values (pause VOCFLOW_KPI_REFRESH_SECONDS={settings.kpi_refresh_seconds:g} "
                "+ the round itself)",
                fmt=",.1f",
            )
        )
    if poller.errors:
        results[0].note += f"; /metrics polls failed: {poller.errors}"
    return results


def bench_freshness(
    settings: Settings,
    prefix: str,
    data: Path,
    runs: tuple[tuple[float, float], ...] = FRESHNESS_RUNS,
) -> Section:
    section = Section(
        "Freshness (event occurred -> visible in /metrics and /api/kpis)",
        "A fresh `vocflow worker` (transactional loops + in-process ClickHouse sink, embedded "
        "chdb) "
        "per run, on its own topics. Live traffic: contacts arrive at random (Poisson) and "
        "play the demo's lifecycles in real time (offered with text, queued, answered or "
        "abandoned, ...); every "
        f"{FRESHNESS_POLL_S * 1000:.0f} ms the due events are sent by kafka-python (acks=all, "
        "linger 5 ms) with `occurred_at` = the send time. A thread GETs the worker's "
        f"/metrics, then /api/kpis, every {FRESHNESS_POLL_S * 1000:.0f} ms; a batch is "
        "visible at a stage at "
        "the first answer (time of its arrival) whose counter reached the cumulative count "
        "including that batch (events; events + routing decisions for the facts agent; new "
        "contacts for the KPI gauge). Resolution: the poll interval. A batch not seen "
        f"{FRESHNESS_DRAIN_S:.0f} s after the last send counts as infinitely late; when "
        "the worker falls behind, freshness grows through the run, so its figures then "
        "depend on the run length. "
        "KPI refresh: a pause of "
        f"{settings.kpi_refresh_seconds:g} s (VOCFLOW_KPI_REFRESH_SECONDS, or twice the "
        "last round's duration if longer) between rounds; sink flush: "
        f"{settings.sink_flush_seconds:g} s (VOCFLOW_SINK_FLUSH_SECONDS). The publisher, "
        "the worker and the broker share the machine.",
    )
    p95s: dict[str, list[float]] = {}
    for i, (rate, seconds) in enumerate(runs):
        run_prefix = f"{prefix.rstrip('.')}f{i}."
        section.results += _freshness_run(
            settings, run_prefix, data / f"run{i}", rate, seconds, p95s
        )
    section.figures = {key: max(values) for key, values in p95s.items()}
    return section


# ---- latency raw -> department topic at fixed offered rates ---------------------------

LATENCY_RATES = (1000.0, 5000.0)
LATENCY_SECONDS = 30.0
LATENCY_DRAIN_S = 30.0  # after the last send, envelopes are awaited this long at most


def _fresh_topics(settings: Settings, prefix: str) -> tuple[Settings, list[str]]:
    """Create a run's topics (department topics too); (its settings, the names of the
    topics a routing decision lands on: every department's, and contacts.triage for
    the items the department model was unsure of)."""
    own = settings.model_copy(update={"topic_prefix": prefix})
    rules = load_rules(settings.rules_path)
    specs = tuple(T.department_spec(d) for d in rules.departments)
    ensure_topics(own)
    ensure_topics(own, specs)
    _wait_topics_visible(own)
    return own, [T.Topics(own).name(spec) for spec in (*specs, T.TRIAGE)]


def _latency_run(
    settings: Settings, prefix: str, data: Path, rate: float, seconds: float, seed: int
) -> list[Result]:
    from vocflow.streams.tools.benchstats import latency_stats
    from vocflow.streams.tools.latency import DeptConsumer, publish_paced
    from vocflow.streams.tools.workload import simulated_events

    own, dept_topics = _fresh_topics(settings, prefix)
    raw_topic = T.Topics(own).name(T.RAW)
    proc = _start_worker(settings, _worker_env(settings, prefix, data), data)
    consumer = DeptConsumer(settings, dept_topics)
    label = f"{rate:,.0f} events/s offered"
    try:
        proc.wait_healthy()
        consumer.start()
        consumer.assigned.wait(60)
        # Warm-up: one contact with text routed end to end (groups joined, views loaded).
        warm = simulated_events(1_000, seed=seed, malformed_ratio=0.0, id_prefix=f"w{prefix}")
        producer = kafka_clients.producer(settings, linger_ms=5)
        warm_contact = ""
        for raw, text, contact in warm:
            producer.send(raw_topic, key=raw.key, value=raw.value)
            if text:
                warm_contact = contact
                break
        producer.flush()
        producer.close()
        if not consumer.wait_for({warm_contact}, 180.0, lambda: consumer.error is not None):
            raise RuntimeError(
                f"latency: warm-up contact never reached a department topic "
                f"({consumer.error or 'no error'}); worker log:\n{proc.log_tail()}"
            )
        # Generated beforehand: the paced loop only sends.
        records = list(
            simulated_events(math.floor(rate * seconds) + 1, seed=seed, id_prefix=f"l{prefix}")
        )
        cpu0, seen0 = cpu_seconds(proc.pid), _consumed(settings)
        paced = publish_paced(settings, raw_topic, iter(records), rate, seconds)
        consumer.wait_for(set(paced.sent), LATENCY_DRAIN_S, lambda: consumer.error is not None)
        cpu1, seen1 = cpu_seconds(proc.pid), _consumed(settings)
        if seen0 is None or seen1 is None:
            raise RuntimeError("latency: the worker's /metrics did not answer in 30 s")
        rss = _rss_mib(proc.pid)
    finally:
        consumer.halt.set()
        proc.stop()
    consumer.join(15)
    stats = latency_stats(paced.sent, dict(consumer.arrived))
    consumed = seen1 - seen0
    cpu_per_1k = (cpu1 - cpu0) / consumed * 1000 if consumed > 0 else math.nan
    key = f"latency.{rate:g}"
    results = [
        Result(
            f"{label}: achieved",
            paced.achieved,
            "events/s",
            f"{paced.events:,} events in {paced.last - paced.first:.1f} s, {consumed:,.0f} "
            f"consumed by the worker by the end; send failures: "
            f"{paced.failed}; worker CPU {cpu_per_1k:.3f} s per 1,000 events, peak RSS "
            f"{rss:.0f} MiB; machine load average (1 min) at the end: {os.getloadavg()[0]:.1f}",
            key=f"{key}.achieved",
        ),
        Result(
            f"{label}: worker CPU per 1,000 events",
            cpu_per_1k,
            "CPU s",
            "CPU seconds from the first paced send to the last envelope (or the end of the "
            "drain) over the events the worker consumed meanwhile",
            fmt=".3f",
            key=f"{key}.cpu_per_1k",
        ),
    ]
    if stats is not None:
        note = (
            f"p50 {_ms(stats.p50)}, p95 {_ms(stats.p95)}, max {_ms(stats.max)} over "
            f"{stats.n:,} contacts"
        )
        if stats.missing:
            note += (
                f"; {stats.missing:,} not on a department topic {LATENCY_DRAIN_S:.0f} s after "
                "the last send, counted as infinitely late"
            )
        results.append(
            Result(
                f"{label}: raw -> department topic p99",
                stats.p99,
                "ms",
                note,
                key=f"{key}.p99_ms",
            )
        )
    if consumer.error is not None:
        results[0].note += f"; department consumer failed: {consumer.error}"
    return results


def _get_json(url: str, timeout: float = 30.0) -> dict | None:
    """A JSON answer, or None when the worker did not give one in time."""
    try:
        return fetch_json(url, timeout)
    except (OSError, ValueError):
        return None


def _consumed(settings: Settings, timeout: float = 30.0) -> float | None:
    """Records the benchmarked worker's normalize stage has consumed so far, from
    /metrics (cheap: /api/stats counts ClickHouse rows); None without an answer."""
    try:
        with urllib.request.urlopen(f"{settings.web_url}/metrics", timeout=timeout) as response:
            text = response.read().decode()
    except OSError:
        return None
    return scrape_values(text, {"in": FRESHNESS_SERIES["normalize"]}).get("in", 0.0)


def _ms(x: float) -> str:
    return f"{x:,.0f} ms" if math.isfinite(x) else "not seen"


def bench_latency(
    settings: Settings,
    prefix: str,
    data: Path,
    rates: tuple[float, ...] = LATENCY_RATES,
    seconds: float = LATENCY_SECONDS,
) -> Section:
    section = Section(
        "Latency raw -> department topic",
        f"A fresh `vocflow worker` per offered rate, on its own topics. For {seconds:g} s "
        "kafka-python (acks=all, linger 2 ms) sends simulated contact events to "
        "contacts.raw at the offered rate (what is due every 10 ms), noting the send time "
        "of each contact's first event with customer text; a consumer on every dept.* "
        "topic (isolation.level=read_committed, as department systems read) notes when "
        "that contact's routing envelope arrives, matched by contact id. Latency = arrival "
        "- send, per contact. A contact not seen "
        f"{LATENCY_DRAIN_S:.0f} s after the last send counts as infinitely late. One "
        "contact is routed first as a warm-up. Producer, consumer, worker and broker share "
        "the machine.",
    )
    for i, rate in enumerate(rates):
        run_prefix = f"{prefix.rstrip('.')}l{i}."
        section.results += _latency_run(
            settings, run_prefix, data / f"latency{i}", rate, seconds, seed=100 + i
        )
    return section


# ---- memory over a simulated day --------------------------------------------------------

DAY_SAMPLE_S = 3.0
DAY_CONTACTS = 40_000  # the simulator's default day
# (figure key, label, extra worker settings): without the in-process sink the worker
# opens no ClickHouse at all (`vocflow sink` would do that elsewhere).
DAY_VARIANTS = (
    ("nosink", "worker without embedded ClickHouse", {"VOCFLOW_SINK_ENABLED": "false"}),
    ("chdb", "worker owning embedded ClickHouse", {}),
)


def _hour_marks(config: SimConfig) -> list[int]:
    """marks[h]: contact events of the simulated day that occurred before hour h; the
    last mark holds them all (lifecycles that end after the day)."""
    hours = math.ceil(config.duration_hours)
    per_hour = [0] * (hours + 1)
    origin = config.start
    for rec in simulate(config):
        if rec.kind == "contact":
            h = int((rec.at - origin).total_seconds() // 3600)
            per_hour[min(max(h, 0), hours - 1) + 1] += 1
    return list(itertools.accumulate(per_hour))


def _day_run(
    settings: Settings,
    prefix: str,
    data: Path,
    config: SimConfig,
    marks: list[int],
    key: str,
    label: str,
    extra: dict[str, str],
) -> list[Result]:
    from vocflow.streams.tools.benchstats import hour_of, memory_day
    from vocflow.streams.tools.simulator.publish import publish

    own, _ = _fresh_topics(settings, prefix)
    published = time.perf_counter()
    counts = publish(own, config, customer_ordered=True)
    published = time.perf_counter() - published
    total = counts["contact"]
    proc = _start_worker(settings, _worker_env(settings, prefix, data, **extra), data)
    samples: list[tuple[float, float]] = []
    timeout = max(E2E_TIMEOUT_S, total / 100)
    try:
        started = time.perf_counter()
        proc.wait_healthy()
        ready = time.perf_counter()
        cpu0 = cpu_seconds(proc.pid)
        bar = tqdm(total=total, desc=f"simulated day, {key}", unit="ev", leave=False)
        unanswered = 0
        seen = 0.0
        while True:
            answer = _consumed(settings, timeout=DAY_SAMPLE_S * 5)
            if answer is None:
                unanswered += 1  # no count, no simulated hour: no sample this time
            else:
                seen = answer
                bar.update(int(seen) - bar.n)
                samples.append((hour_of(seen, marks), _rss_mib(proc.pid, "VmRSS")))
            if seen >= total:
                break
            if time.perf_counter() - started > timeout:
                raise RuntimeError(
                    f"simulated day incomplete after {timeout:.0f}s: {seen:,.0f} of {total:,}"
                )
            time.sleep(DAY_SAMPLE_S)
        done = time.perf_counter()
        cpu1 = cpu_seconds(proc.pid)
        hwm = _rss_mib(proc.pid)
        bar.close()
    finally:
        proc.stop()
    day = memory_day(samples, config.duration_hours)
    assert day is not None  # at least one sample was taken
    cpu_per_1k = (cpu1 - cpu0) / total * 1000 if total else math.nan
    peak = max(day.peak, hwm)
    return [
        Result(
            f"{label}: peak RSS",
            peak,
            "MiB",
            f"start {day.start:.0f} MiB, end {day.end:.0f} MiB (VmRSS every "
            f"{DAY_SAMPLE_S:g} s, {day.samples} samples; peak = VmHWM); {total:,} contact "
            f"events and {counts['agent']:,} agent events of {config.contacts_per_day:,} "
            f"contacts/day, consumed in {done - ready:.0f} s ({total / (done - ready):,.0f} "
            f"events/s, CPU {cpu_per_1k:.3f} s per 1,000; published beforehand in "
            f"{published:.0f} s); /metrics polls unanswered: {unanswered}",
            key=f"day.{key}.peak_rss_mib",
        ),
        Result(
            f"{label}: RSS slope over the second half of the day",
            day.slope_second_half,
            "MiB/h",
            "least squares of VmRSS over the simulated hour reached (hours 12-24), MiB per "
            "simulated hour",
            fmt=",.2f",
            key=f"day.{key}.slope_mib_per_h",
        ),
    ]


def bench_memory_day(
    settings: Settings, prefix: str, data: Path, contacts_per_day: int = DAY_CONTACTS
) -> Section:
    config = SimConfig(seed=11, contacts_per_day=contacts_per_day, id_prefix="day")
    section = Section(
        "Memory over a simulated day",
        f"`vocflow simulate`'s day (24 simulated hours, {contacts_per_day:,} contacts, "
        "profiles, shifts and agent events) published as fast as the broker takes it, "
        "then one fresh `vocflow worker` reads it as fast as it can, once without and "
        "once with the in-process ClickHouse sink. Every "
        f"{DAY_SAMPLE_S:g} s the worker's RSS (/proc VmRSS) is sampled with the count of "
        "events it has consumed, which the day's own timeline turns into the simulated "
        "hour reached. Flat memory shows as a slope near 0 over the second half.",
    )
    marks = _hour_marks(config)
    for i, (key, label, extra) in enumerate(DAY_VARIANTS):
        run_prefix = f"{prefix.rstrip('.')}d{i}."
        section.results += _day_run(
            settings, run_prefix, data / f"day{i}", config, marks, key, label, extra
        )
    return section


def ratios(sections: list[Section]) -> Section | None:
    """The worker against the baseline and the broker, from figures measured above."""
    f = figures(sections)
    section = Section(
        "Ratios",
        "Figures of this run divided by each other: how far the worker is from the plain "
        "aiokafka loop on the same records, and how much of the broker's own rate the "
        "worker and the baseline use.",
    )

    def add(name: str, a: str, b: str, key: str, note: str) -> None:
        if a in f and b in f and f[b]:
            section.results.append(Result(name, f[a] / f[b], "x", note, fmt=".2f", key=key))

    add(
        "baseline rate / worker rate",
        "baseline.rate",
        "e2e.rate",
        "ratio.baseline_over_worker",
        "the goal: <= 1.5",
    )
    add(
        "worker CPU / baseline CPU per 1,000 events",
        "e2e.cpu_per_1k",
        "baseline.cpu_per_1k",
        "ratio.cpu_worker_over_baseline",
        "what exactly-once, the intermediate topics and the sink cost in CPU",
    )
    add(
        "worker rate / Java consumer rate",
        "e2e.rate",
        "broker.java_consumer",
        "ratio.worker_over_broker",
        "share of the broker's own read rate",
    )
    add(
        "baseline rate / Java consumer rate",
        "baseline.rate",
        "broker.java_consumer",
        "ratio.baseline_over_broker",
        "share of the broker's own read rate",
    )
    return section if section.results else None


def figures(sections: list[Section]) -> dict[str, float]:
    """The keyed figures of a run, by key."""
    out = {r.key: r.value for s in sections for r in s.results if r.key}
    for s in sections:
        out.update(s.figures)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (/proc/<pid>/stat). A figure
    that stays put on a shared machine, where rates move with the neighbours' load."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int, field: str = "VmHWM") -> float:
    """The process's peak (VmHWM) or current (VmRSS) resident memory, MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    m = re.search(field + r":\s+(\d+) kB", status)
    return int(m.group(1)) / 1024 if m else 0.0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def git_revision() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (result.stdout.strip() or "unknown") + (" (with local changes)" if dirty else "")


HOW_TO_READ = """\
How to read this:
- Rates (events/s) move with the neighbours' load on this shared 2-core machine; the
  CPU seconds per 1,000 events beside them (user + system from /proc) hold still, so
  compare those between runs, and rates only within one run.
- The plain aiokafka baseline runs the worker's own stage functions on the same
  records in the same run: the ratio baseline / worker is what the worker's
  machinery (transactions, intermediate topics, changelogs, the sink) costs.
- The broker rows are the ceiling: no Python consumer gets past the Java one.
- Latency and freshness count an item never seen as infinitely late ("not seen"):
  a worker that falls behind shows that, not a figure that depends on when the bench
  stopped looking.
- Memory: peak RSS, and the slope of RSS over the second half of a simulated day
  (MiB per simulated hour); near 0 is flat, a steady positive slope is growth.
- The goals table judges the figures of this run; `vocflow bench --check --no-run`
  judges this file again without measuring (exit 1 when a goal is missed)."""


def render(
    sections: list[Section], work: Workload | None, verdicts: list[goals.Verdict], run: list[str]
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`vocflow bench`); do not edit by hand. Tests check "
        "correctness only; speed and memory are measured here.",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- git revision: {git_revision()}",
        f"- machine: {machine()}",
        f"- Kafka: {broker.KAFKA_VERSION} (local single-node KRaft broker, loopback)",
        f"- sections run: {', '.join(run)}",
    ]
    if work is not None:
        lines.append(
            f"- workload: {work.events:,} records of the day simulator's contact events "
            f"({work.text_share:.1%} with customer text, {work.events - work.valid:,} "
            f"malformed), {work.routed:,} contacts to route"
        )
    lines += [
        f"- bench process peak RSS: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
        "",
        HOW_TO_READ,
        "",
        "## Goals",
        "",
        "Each goal of the performance issue against its figure of this run (`not run`: its "
        "section was not part of this run).",
        "",
        *goals.table(verdicts),
        "",
    ]
    for section in sections:
        lines += [
            f"## {section.title}",
            "",
            section.method,
            "",
            "| measure | value | unit | note |",
            "|---|---:|---|---|",
        ]
        for r in section.results:
            value = r.shown()
            lines.append(f"| {r.name} | {value} | {r.unit} | {r.note} |")
        lines.append("")
    lines += [goals.figures_block(figures(sections), run), ""]
    return "\n".join(lines)


HISTORY_MARK = "<!-- history: written by hand, kept by every run -->"


def kept_history(output: Path) -> str:
    """The hand-written history at the end of the file (before/after of each change,
    with the run that measured it), which a run keeps as it was; empty if none."""
    if not output.exists():
        return ""
    text = output.read_text(encoding="utf-8")
    at = text.find(HISTORY_MARK)
    return "" if at < 0 else "\n" + text[at:]


SECTIONS = goals.SECTIONS


@dataclass(frozen=True)
class BenchOptions:
    events: int = 1_000_000
    freshness_runs: tuple[tuple[float, float], ...] = FRESHNESS_RUNS
    latency_rates: tuple[float, ...] = LATENCY_RATES
    latency_seconds: float = LATENCY_SECONDS
    day_contacts: int = DAY_CONTACTS
    keep_topics: bool = False


def _delete_run_topics(settings: Settings, prefix: str) -> None:
    """Delete the topics of this run (every name starting with its prefix, sub-runs
    and the workers' own topics included). A warning, not a failure, when that
    does not work: the figures are measured by then."""
    stem = prefix.rstrip(".")
    try:
        deleted = delete_topics_with_prefix(settings, stem)
    except Exception as exc:
        print(f"warning: this run's topics ({stem}*) not deleted: {exc}", flush=True)
        return
    print(f"deleted this run's {len(deleted)} topic(s) ({stem}*)", flush=True)


def run_bench(
    settings: Settings,
    options: BenchOptions,
    output: Path = OUTPUT,
    only: tuple[str, ...] = SECTIONS,
) -> tuple[Path, list[goals.Verdict]]:
    """Run the sections, write the file; (its path, the goals' verdicts)."""
    unknown = set(only) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown bench section(s): {', '.join(sorted(unknown))}")
    run = [s for s in SECTIONS if s in only]
    local = broker.local_broker(settings)
    started_broker = settings.uses_local_broker and local.up()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    sections: list[Section] = []
    uses_events = bool({"broker", "stages", "baseline", "end-to-end"} & set(only))
    work: Workload | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="vocflow-bench-") as data:
            if uses_events:
                print(f"generating {options.events:,} events ...", flush=True)
                work = spool(Path(data) / "workload.bin", options.events)
            if "broker" in only:
                assert work is not None
                sections.append(bench_broker(settings, work, prefix))
            if "stages" in only:
                assert work is not None
                sections.append(bench_stages(list(work.records(STAGES_MAX)), settings))
            if "webhook" in only:
                sections.append(bench_webhook(settings))
            if {"baseline", "end-to-end"} & set(only):
                assert work is not None
                ensure_topics(settings.model_copy(update={"topic_prefix": prefix}))
                print(f"loading {work.events:,} events into {prefix}{T.RAW.name} ...", flush=True)
                load_raw(settings, work, f"{prefix}{T.RAW.name}")
            if "baseline" in only:
                assert work is not None
                sections.append(bench_baseline(settings, work, prefix, Path(data)))
            if "end-to-end" in only:
                assert work is not None
                sections.append(bench_end_to_end(settings, work, prefix, Path(data)))
            if "latency" in only:
                sections.append(
                    bench_latency(
                        settings,
                        prefix,
                        Path(data),
                        options.latency_rates,
                        options.latency_seconds,
                    )
                )
            if "freshness" in only:
                sections.append(
                    bench_freshness(
                        settings, prefix, Path(data) / "freshness", options.freshness_runs
                    )
                )
            if "memory-day" in only:
                sections.append(
                    bench_memory_day(settings, prefix, Path(data), options.day_contacts)
                )
    finally:
        if not options.keep_topics:
            _delete_run_topics(settings, prefix)
        if started_broker:
            local.down()
    extra = ratios(sections)
    if extra is not None:
        sections.append(extra)
    verdicts = goals.check(figures(sections), set(run))
    output.parent.mkdir(parents=True, exist_ok=True)
    kept = kept_history(output)
    output.write_text(render(sections, work, verdicts, run) + kept, encoding="utf-8")
    for section in sections:
        for r in section.results:
            value = r.shown()
            print(f"{section.title[:30]:<30} {r.name[:60]:<60} {value:>12} {r.unit}")
    return output, verdicts
