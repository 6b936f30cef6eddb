"""`vocflow demo`: the whole pipeline on one machine, with live traffic and a summary.

The worker runs as a child process (as it would in production), so the demo
reads its numbers over the worker's HTTP API like any other client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from vocflow.streams import broker
from vocflow.streams.config import Settings
from vocflow.streams.simulator import Outage, SimConfig
from vocflow.streams.simulator.publish import publish

STATUS_EVERY_S = 5.0
DRAIN_TIMEOUT_S = 90.0


class DemoError(Exception):
    pass


def fetch_json(url: str, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_healthy(settings: Settings, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the worker exited with code {proc.returncode} during start-up")
        try:
            fetch_json(f"{settings.web_url}/healthz", timeout=1.0)
            return
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.5)
    raise DemoError(f"the worker did not answer on {settings.web_url} within {timeout:.0f}s")


def start_worker(settings: Settings, config_file: Path | None, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["VOCFLOW_DATA_DIR"] = str(settings.data_dir)
    env["VOCFLOW_WEB_PORT"] = str(settings.web_port)
    if settings.kafka_bootstrap:
        env["VOCFLOW_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
    cmd = [sys.executable, "-m", "vocflow.streams.cli"]
    if config_file:
        cmd += ["--config", str(config_file)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [*cmd, "worker"],
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def stop_process(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


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
        wait_healthy(settings, worker)
        print(
            f"worker up. metrics: {settings.web_url}/metrics  stats: {settings.web_url}/api/stats"
            f"  log: {settings.data_dir / 'logs' / 'worker.log'}",
            flush=True,
        )
        counts = _simulate(settings, duration, speedup, malformed_ratio, seed)
        produced = counts["contact"] + counts["malformed"]
        print(
            f"traffic stopped after {produced} contact events ({counts['agent']} agent events, "
            f"{counts['profile']} profiles); waiting for the pipeline to drain ...",
            flush=True,
        )
        seen, ok, dlq, rows = _drain(settings, produced)
        print(
            f"demo summary: produced={produced} processed={seen} valid={ok} dlq={dlq} "
            f"routed={rows.get('routing_log', 0)} "
            f"clickhouse_contact_events={rows.get('contact_events', 0)} "
            f"clickhouse_dead_letters={rows.get('dead_letters', 0)}",
            flush=True,
        )
        # Earlier runs may have left a backlog in the topics, so more can be processed.
        return 0 if produced > 0 and seen >= produced else 1
    except (broker.BrokerError, DemoError) as exc:
        print(f"vocflow demo: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if worker is not None:
            stop_process(worker)
        if started_broker and not keep_broker:
            local.down()


def demo_day(seed: int) -> SimConfig:
    """A working day from 08:00 with an outage burst in 杭州 early on, so the demo
    shows the voice-of-customer path reacting within its first minutes."""
    return SimConfig(
        seed=seed,
        start_hour=8.0,
        duration_hours=14.0,
        contacts_per_day=40_000,
        outages=(Outage(city="杭州", start_hour=8.5, duration_minutes=40.0),),
    )


def _simulate(
    settings: Settings, duration: float | None, speedup: float, malformed: float, seed: int
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
            demo_day(seed),
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
