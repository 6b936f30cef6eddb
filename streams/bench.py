"""`vocflow bench`: measured speed of the broker, the stages and the whole pipeline.

Results are written to docs/benchmarks.md with the date, git revision and
machine, so speed claims are always tied to a run. Tests never assert
timings; this is where they live.
"""

from __future__ import annotations

import itertools
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from vocflow.schemas import ContactEvent, SourceRef
from vocflow.streams import broker
from vocflow.streams import topics as T
from vocflow.streams.admin import ensure_topics
from vocflow.streams.config import Settings
from vocflow.streams.demo import fetch_json, stop_process, wait_healthy
from vocflow.streams.enrich import enrich
from vocflow.streams.normalize import normalize
from vocflow.streams.pii import mask_pii
from vocflow.streams.rules import load_rules
from vocflow.streams.tagging import tag
from vocflow.streams.traffic import Raw, generate
from vocflow.streams.voc import analyse_and_route

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "benchmarks.md"
E2E_TIMEOUT_S = 1200.0


@dataclass
class Result:
    name: str
    value: float
    unit: str
    note: str = ""


@dataclass
class Section:
    title: str
    method: str
    results: list[Result] = field(default_factory=list)


def event_mix(n: int, seed: int = 42) -> list[Raw]:
    """The same mix the demo sends: whole lifecycles, 1 % malformed."""
    return list(itertools.islice(generate(seed=seed, malformed_ratio=0.01, max_bytes=100_000), n))


def _java_tool(main_class: str, args: list[str]) -> str:
    classpath = str(broker.fetch() / "*")
    result = subprocess.run(
        [
            "java",
            "-Xmx1g",
            "-Dlog4j.configuration=file:" + str(broker.DEPLOY_DIR / "log4j.properties"),
            "-Dkafka.logs.dir=" + tempfile.gettempdir(),
            "-cp",
            classpath,
            main_class,
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{main_class} failed: {result.stderr[-1500:]}")
    return result.stdout


def bench_broker(settings: Settings, records: list[Raw], prefix: str) -> Section:
    section = Section(
        "Broker limit (no processing)",
        "Kafka's own ProducerPerformance / ConsumerPerformance (kafka-tools "
        f"{broker.KAFKA_VERSION}) with the event mix as payloads, acks=all, one topic of "
        f"{settings.partitions} partitions; then kafka-python producing the same records, "
        "as a Python channel adapter would.",
    )
    topic = f"{prefix}bench.broker"
    _create(settings, topic)
    valid = [r.value for r in records if b"\n" not in r.value and len(r.value) < 10_000]
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(b"\n".join(valid))
        payloads = f.name
    out = _java_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        [
            "--topic",
            topic,
            "--num-records",
            str(len(records)),
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
                f"{m.group(2)} MB/s, p99 latency {m.group(4)} ms",
            )
        )
    out = _java_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        [
            "--bootstrap-server",
            settings.bootstrap_servers,
            "--topic",
            topic,
            "--messages",
            str(len(records)),
            "--timeout",
            "60000",
        ],
    )
    row = out.strip().splitlines()[-1].split(",")
    section.results.append(
        Result("Java consumer", float(row[5]), "events/s", f"{float(row[3]):.1f} MB/s")
    )
    topic_py = f"{prefix}bench.python"
    _create(settings, topic_py)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        acks="all",
        linger_ms=5,
        batch_size=262144,
        max_request_size=4 * 1024 * 1024,
    )
    started = time.perf_counter()
    for r in tqdm(records, desc="kafka-python produce", unit="ev", leave=False):
        producer.send(topic_py, key=r.key, value=r.value)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    section.results.append(
        Result("kafka-python producer", len(records) / elapsed, "events/s", "acks=all, linger 5 ms")
    )
    return section


def _create(settings: Settings, topic: str) -> None:
    from kafka.admin import NewTopic

    from vocflow.streams.admin import connect_admin

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
        "worker core. normalize runs over the event mix; the voice-of-customer stages over "
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
    for r in texts:
        r.unit = "texts/s"
    section.results += texts
    return section


def bench_webhook(settings: Settings) -> Section:
    from vocflow.streams.ingest_bench import bench_ingest

    section = Section(
        "Webhook ingestion",
        "`wrk` (Debian package) on loopback against `vocflow ingest`: one signed CTI event per "
        "POST; every 202 waits for the Kafka ack (acks=all, idempotent producer). wrk, ingest "
        "and the broker share the machine.",
    )
    for name, value, unit, note in bench_ingest(settings):
        section.results.append(Result(name, value, unit, note))
    return section


def bench_end_to_end(settings: Settings, records: list[Raw], prefix: str, data: Path) -> Section:
    section = Section(
        "End to end",
        f"{len(records):,} raw events already in contacts.raw; one `vocflow worker` process "
        "(Faust agents + in-process ClickHouse sink, embedded chdb) is started and timed until "
        "every event is through normalize, every contact with text is routed to its "
        "department, and every row is in ClickHouse (FINAL counts).",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOCFLOW_")}
    env.update(
        {
            "VOCFLOW_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
            "VOCFLOW_TOPIC_PREFIX": prefix,
            "VOCFLOW_APP_ID": prefix.rstrip("."),
            "VOCFLOW_DATA_DIR": str(data),
            "VOCFLOW_WEB_PORT": str(settings.web_port),
            "VOCFLOW_LOG_LEVEL": "warning",
        }
    )
    ensure_topics(settings.model_copy(update={"topic_prefix": prefix}))
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        acks="all",
        linger_ms=5,
        batch_size=262144,
        max_request_size=4 * 1024 * 1024,
    )
    for r in tqdm(records, desc="load contacts.raw", unit="ev", leave=False):
        producer.send(f"{prefix}{T.RAW.name}", key=r.key, value=r.value)
    producer.flush()
    producer.close()
    expected_valid = sum(r.valid for r in records)
    expected_routed = len(
        {
            r.key
            for r in records
            if r.valid and b'"event_type":"offered"' in r.value and b'"text"' in r.value
        }
    )
    log = (data / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vocflow.streams.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        started = time.perf_counter()
        wait_healthy(settings, proc)
        ready = time.perf_counter()
        bar = tqdm(total=len(records), desc="end to end", unit="ev", leave=False)
        peak_rss = 0
        while True:
            stats = fetch_json(f"{settings.web_url}/api/stats")
            seen = stats.get("stages", {}).get("normalize", {}).get("in", 0)
            rows = stats.get("clickhouse", {})
            bar.update(seen - bar.n)
            peak_rss = max(peak_rss, _rss_mib(proc.pid))
            if (
                seen >= len(records)
                and rows.get("contact_events", 0) >= expected_valid
                and rows.get("routing_log", 0) >= expected_routed
            ):
                break
            if time.perf_counter() - started > E2E_TIMEOUT_S:
                raise RuntimeError(f"end-to-end run incomplete after {E2E_TIMEOUT_S:.0f}s: {stats}")
            time.sleep(2.0)  # /api/stats counts with FINAL: do not load the worker
        done = time.perf_counter()
        bar.close()
    finally:
        stop_process(proc)
    section.results += [
        Result(
            "raw -> events + VOC routing + facts + ClickHouse",
            len(records) / (done - ready),
            "events/s",
            f"{done - ready:.1f} s after the worker answered (start-up {ready - started:.1f} s); "
            f"{expected_routed:,} contacts routed",
        ),
        Result("worker peak RSS", peak_rss, "MiB", "sampled every 2 s"),
    ]
    return section


def _rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    m = re.search(r"VmHWM:\s+(\d+) kB", status)
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


def render(sections: list[Section], events: int) -> str:
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
        f"- events per run: {events:,} (the demo's mix: contact lifecycles, 1 % malformed)",
        f"- bench process peak RSS: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
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
            lines.append(f"| {r.name} | {r.value:,.0f} | {r.unit} | {r.note} |")
        lines.append("")
    return "\n".join(lines)


def run_bench(settings: Settings, events: int, output: Path = OUTPUT) -> Path:
    local = broker.local_broker(settings)
    started_broker = settings.uses_local_broker and local.up()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    try:
        print(f"generating {events:,} events ...", flush=True)
        records = event_mix(events)
        sections = [bench_broker(settings, records, prefix), bench_stages(records, settings),
                    bench_webhook(settings)]
        with tempfile.TemporaryDirectory(prefix="vocflow-bench-") as data:
            sections.append(bench_end_to_end(settings, records, prefix, Path(data)))
    finally:
        if started_broker:
            local.down()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(sections, events), encoding="utf-8")
    for section in sections:
        for r in section.results:
            print(f"{section.title:<30} {r.name:<38} {r.value:>12,.0f} {r.unit}")
    return output
