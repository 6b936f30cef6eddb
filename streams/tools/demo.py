"""`vocflow demo`: the whole pipeline on one machine, with live traffic and a summary.

The worker runs as a child process (as it would in production), so the demo
reads its numbers over the worker's HTTP API like any other client.

The simulated day is stamped from *now* in the KPI time zone (``SimConfig.starting_at``):
whatever the hour, its first event is "now", so the wallboard's 15-minute, 60-minute
and today figures fill within the first minute. Each run has ids of its own (``id_prefix`` from
its start), so the summary can say exactly which of *this* run's events reached
ClickHouse, whatever earlier runs left in the same data directory.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.streams.core.settings import Settings
from vocflow.streams.tools import broker, procs
from vocflow.streams.tools.simulator import Outage, SimConfig
from vocflow.streams.tools.simulator.publish import publish

STATUS_EVERY_S = 5.0
DRAIN_TIMEOUT_S = 90.0


class DemoError(Exception):
    pass


def fetch_json(url: str, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def start_worker(settings: Settings, config_file: Path | None, log_path: Path) -> procs.Child:
    """The demo's worker: this environment, with the demo's data dir, port and broker."""
    env = dict(os.environ)
    env["VOCFLOW_DATA_DIR"] = str(settings.data_dir)
    env["VOCFLOW_WEB_PORT"] = str(settings.web_port)
    if settings.kafka_bootstrap:
        env["VOCFLOW_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
    options = ["--config", str(config_file)] if config_file else []
    return procs.Child("worker", log_path, env=env, url=settings.web_url, options=options)


def _counts(settings: Settings) -> tuple[int, int, int, dict[str, int]]:
    stats = fetch_json(f"{settings.web_url}/api/stats")
    norm = stats.get("stages", {}).get("normalize", {})
    valid = norm.get("out", {}).get("contacts.events", 0)
    return norm.get("in", 0), valid, norm.get("dlq", 0), stats.get("clickhouse", {})


def run_demo(
    settings: Settings,
    duration: float | None,
    speedup: float,
    malformed_ratio: float,
    keep_broker: bool,
    config_file: Path | None,
    seed: int = 1,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    started_broker = False
    local = broker.local_broker(settings)
    worker = None
    try:
        if settings.uses_local_broker:
            print(
                f"starting the local Kafka {broker.KAFKA_VERSION} broker "
                "(first run fetches its jars with mvn) ...",
                flush=True,
            )
            started_broker = local.up()
        worker = start_worker(settings, config_file, settings.data_dir / "logs" / "worker.log")
        worker.wait_healthy()
        day = demo_day(seed, settings.timezone, clock())
        print(
            f"worker up.\n  wallboard: {settings.web_url}/wallboard\n"
            f"  KPIs:      {settings.web_url}/api/kpis  (or: vocflow kpis)\n"
            f"  metrics:   {settings.web_url}/metrics\n"
            f"  stats:     {settings.web_url}/api/stats\n"
            f"  log:       {settings.data_dir / 'logs' / 'worker.log'}\n"
            f"simulated day from {int(day.start_hour):02d}:{round(day.start_hour % 1 * 60):02d} "
            f"stamped from {day.start.isoformat(timespec='seconds')} ({settings.timezone}), "
            f"{speedup:g}x real time; this run's ids start with '{day.id_prefix}-'",
            flush=True,
        )
        counts = _simulate(settings, day, duration, speedup, malformed_ratio)
        produced = counts["contact"] + counts["malformed"]
        print(
            f"traffic stopped after {produced} contact events ({counts['agent']} agent events, "
            f"{counts['profile']} profiles); waiting for the pipeline to drain ...",
            flush=True,
        )
        seen, ok, dlq, rows = _drain(settings, produced)
        worker.stop()
        worker = None
        stored = stored_events(settings, day.id_prefix)
        lines, lost = summary(counts, seen, ok, dlq, rows, stored)
        for line in lines:
            print(line, flush=True)
        return 0 if produced > 0 and not lost else 1
    except (broker.BrokerError, DemoError, procs.ChildError) as exc:
        print(f"vocflow demo: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if worker is not None:
            worker.stop()
        if started_broker and not keep_broker:
            local.down()


def stored_events(settings: Settings, id_prefix: str) -> int:
    """Distinct contact event ids of this run in ClickHouse (opened once the worker,
    which holds an embedded database, has stopped)."""
    store = ClickHouseStore.from_settings(settings)
    try:
        rows = store.query(
            f"SELECT uniqExact(event_id) FROM {settings.clickhouse_database}.contact_events "
            "WHERE startsWith(event_id, {prefix:String})",
            {"prefix": f"{id_prefix}-"},
        )
    finally:
        store.close()
    return int(rows[0][0])


def summary(
    counts: Counter, seen: int, ok: int, dlq: int, rows: dict[str, int], stored: int
) -> tuple[list[str], bool]:
    """The closing lines, and whether anything of this run was lost.

    Plain statements a reader can check: what this run produced (valid events plus
    deliberately broken ones), what the worker made of them, and how many of this
    run's valid events ClickHouse holds, counted by distinct id (so duplicates
    cannot make up for losses, and earlier runs' rows cannot hide them).
    """
    valid_sent, broken_sent = counts["contact"], counts["malformed"]
    produced = valid_sent + broken_sent
    lost = stored < valid_sent or ok + dlq < produced
    backlog = max(0, seen - produced)
    lines = [
        f"demo summary: produced={produced} ({valid_sent} valid + {broken_sent} deliberately "
        f"broken) processed={seen} valid={ok} dlq={dlq} "
        f"routing_log rows (all runs)={rows.get('routing_log', 0)}",
        f"  produced = valid + dead-lettered: {produced} "
        f"{'=' if ok + dlq == produced else '!='} {ok} + {dlq}"
        + (
            f" (the worker also processed {backlog} records of earlier runs: a backlog, or "
            "redelivered after the last shutdown; at-least-once, duplicates collapse by id)"
            if backlog
            else ""
        ),
        f"  ClickHouse holds {stored} of this run's {valid_sent} valid events (distinct event ids)",
        "  nothing lost"
        if not lost
        else f"  LOST: {max(0, valid_sent - stored)} valid events "
        "are not in ClickHouse; see the worker log",
    ]
    return lines, lost


def demo_day(seed: int, tz: str, now: datetime) -> SimConfig:
    """A working day from 08:00 (KPI time zone) with an outage burst in 杭州 half an
    hour in, so the demo shows the voice-of-customer path reacting within its first
    minutes; stamped so that its 08:00 is ``now``. The scenario hours are simulated
    hours and move with the stamp: the outage is always 30 simulated minutes in."""
    local = now.astimezone(ZoneInfo(tz))
    return SimConfig(
        seed=seed,
        start_date=local.date(),
        tz=tz,
        start_hour=8.0,
        duration_hours=14.0,
        contacts_per_day=40_000,
        outages=(Outage(city="杭州", start_hour=8.5, duration_minutes=40.0),),
        id_prefix=f"demo{local:%y%m%d%H%M%S}",
    ).starting_at(now)


def _simulate(
    settings: Settings, day: SimConfig, duration: float | None, speedup: float, malformed: float
) -> Counter:
    start = time.monotonic()
    last_status = [start]

    def should_stop() -> bool:
        return duration is not None and time.monotonic() - start >= duration

    def status(counts: Counter) -> None:
        if time.monotonic() - last_status[0] < STATUS_EVERY_S:
            return
        last_status[0] = time.monotonic()
        try:
            seen, _, dlq, rows = _counts(settings)
            print(
                f"  produced={counts['contact'] + counts['malformed']} processed={seen} "
                f"dlq={dlq} routed={rows.get('routing_log', 0)} "
                f"clickhouse={rows.get('contact_events', 0)}",
                flush=True,
            )
        except (urllib.error.URLError, OSError):
            print(f"  produced={counts.total()} (worker busy)", flush=True)

    try:
        return publish(
            settings,
            day,
            speedup=speedup,
            malformed_ratio=malformed,
            should_stop=should_stop,
            on_progress=status,
        )
    except KeyboardInterrupt:
        return Counter()


def _drain(settings: Settings, produced: int) -> tuple[int, int, int, dict[str, int]]:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        seen, ok, dlq, rows = _counts(settings)
        in_ch = rows.get("contact_events", 0) + rows.get("dead_letters", 0)
        if (seen >= produced and in_ch >= seen) or time.monotonic() > deadline:
            return seen, ok, dlq, rows
        time.sleep(1.0)
