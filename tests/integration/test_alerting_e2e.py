"""End to end: simulated traffic -> `vocflow worker` -> real Prometheus (the deployed rules) ->
real Alertmanager (the deployed routing) -> `vocflow notify` -> a chat robot on 127.0.0.1.

A stretch of simulated traffic whose event times surround *now* (so the worker's current
15-minute KPI bucket and the emerging-issue detector see it) carries a network outage in
杭州 and a staffing shortfall on voice.billing. The robot must receive, in Chinese, an
emerging-issue alert and a critical service-level alert for voice.billing. The delays from
publishing to each message are printed (the docs quote them); they are not asserted.

To run in minutes, the copies of deploy/prometheus/rules/*.yml that Prometheus loads have
every `for:` / `keep_firing_for:` shortened to 5s and every group `interval:` to 1s, and
Alertmanager's group_wait / group_interval are 1s. Everything else (expressions,
thresholds, labels, annotations, routing, inhibition) is the deployed configuration.
Missing binaries fail the test with the install line; it never skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import free_port
from tests.integration.conftest import get_json, running_worker, vocflow, wait_for, worker_env
from tests.integration.test_notify_alertmanager import (
    ChatRobot,
    _alertmanager_config,
    _notify_routes,
    _stop,
)
from vocflow.streams.config import load_settings
from vocflow.streams.simulator.config import Outage, SimConfig, StaffingShortfall
from vocflow.streams.simulator.publish import publish

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
INSTALL = "apt-get install -y prometheus prometheus-alertmanager"
TZ = ZoneInfo("Asia/Shanghai")
SHORTFALL_QUEUE = "voice.billing"
OUTAGE_CITY = "杭州"
RECEIPT_TIMEOUT_S = 240.0


def _shortened_rules(target: Path) -> list[Path]:
    """Copies of the deployed rule files with `for`/`keep_firing_for` at 5s and
    evaluation `interval` at 1s (test speed only; nothing else changes)."""
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for source in sorted((ROOT / "deploy/prometheus/rules").glob("*.yml")):
        text = source.read_text("utf-8")
        text = re.sub(r"(?m)^(\s*(?:for|keep_firing_for):\s*)\d+[smh]\s*$", r"\g<1>5s", text)
        text = re.sub(r"(?m)^(\s*interval:\s*)\d+[smh]\s*$", r"\g<1>1s", text)
        copy = target / source.name
        copy.write_text(text, encoding="utf-8")
        out.append(copy)
    return out


def _prometheus_config(worker_port: int, am_port: int, rules: list[Path]) -> str:
    rule_files = "\n".join(f"  - {json.dumps(str(p))}" for p in rules)
    return f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
{rule_files}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{am_port}']
scrape_configs:
  - job_name: vocflow-worker
    static_configs:
      - targets: ['127.0.0.1:{worker_port}']
"""


def _up(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


@contextmanager
def _process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield
    finally:
        _stop(proc)


def _prom_query(base: str, query: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?query={urllib.parse.quote(query)}"
    doc = get_json(url)
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def _diagnostics(prom: str, worker: str) -> str:
    """What the stack saw, for a failure message."""
    out = []
    for query in (
        "ALERTS",
        "vocflow_voc_surge",
        'vocflow_service_level_ratio{interval="15m",queue!=""}',
        'vocflow_contacts{interval="15m",queue!=""}',
    ):
        try:
            rows = _prom_query(prom, query)
            shown = [(r["metric"], r["value"][1]) for r in rows]
            out.append(f"{query}: {shown}")
        except (OSError, AssertionError) as error:
            out.append(f"{query}: {error}")
    try:
        out.append(f"worker stats: {get_json(f'{worker}/api/stats')}")
    except OSError as error:
        out.append(f"worker stats: {error}")
    return "\n".join(out)


def _scenario(now: datetime) -> SimConfig:
    """80 simulated minutes from now - 60 min to now + 20 min (local time).

    The detector stays silent for its first 30 minutes of traffic (warm-up), so the
    outage starts 40 minutes in (now - 20 min); the stretch runs on past now so that
    the current wall-clock 15-minute bucket is full whatever minute the test starts at.
    Generous staffing (1.5) keeps the queues the scenarios do not touch at their target.
    """
    start = (now - timedelta(minutes=60)).replace(second=0, microsecond=0)
    hour = start.hour + start.minute / 60
    return SimConfig(
        seed=11,
        start_date=start.date(),
        start_hour=hour,
        duration_hours=80 / 60,
        contacts_per_day=20_000,
        customers=3_000,
        staffing_factor=1.5,
        outages=(
            Outage(city=OUTAGE_CITY, start_hour=hour + 40 / 60, duration_minutes=40, intensity=8),
        ),
        shortfalls=(
            StaffingShortfall(
                queue=SHORTFALL_QUEUE,
                start_hour=hour + 15 / 60,
                duration_minutes=65,
                intensity=1.0,
            ),
        ),
        id_prefix="e2e",
    )


def test_outage_and_shortfall_reach_the_supervisors_in_chinese(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    for binary in (PROMETHEUS, ALERTMANAGER):
        if not os.path.exists(binary):
            pytest.fail(f"{binary} not found; install it with `{INSTALL}`")
    assert shutil.which("promtool"), f"promtool not found; install it with `{INSTALL}`"

    prefix = f"e2e{uuid.uuid4().hex[:8]}."
    # One partition per topic: the simulator publishes in event-time order as fast as the
    # broker takes it, and the detector (30 s grace) would drop as late whatever a slower
    # partition delivers after a faster one has moved the watermark minutes ahead.
    env = worker_env(
        kafka_bootstrap,
        prefix,
        tmp_path / "data",
        VOCFLOW_KPI_REFRESH_SECONDS="1",
        VOCFLOW_PARTITIONS="1",
    )
    created = vocflow("topics", "--create", env=env)
    assert created.returncode == 0, created.stderr
    worker_port = int(env["VOCFLOW_WEB_PORT"])
    notify_port, am_port, prom_port = free_port(), free_port(), free_port()
    prom = f"http://127.0.0.1:{prom_port}"
    am = f"http://127.0.0.1:{am_port}"

    rules = _shortened_rules(tmp_path / "rules")
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(_prometheus_config(worker_port, am_port, rules), encoding="utf-8")
    check = subprocess.run(
        ["promtool", "check", "config", str(prom_config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    robot = ChatRobot()
    threading.Thread(target=robot.serve_forever, daemon=True).start()
    routes = tmp_path / "notify.yaml"
    routes.write_text(_notify_routes(robot.server_address[1]), encoding="utf-8")
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(_alertmanager_config(notify_port), encoding="utf-8")
    notify_env = {k: v for k, v in os.environ.items() if not k.startswith("VOCFLOW_")}
    notify_env["VOCFLOW_DATA_DIR"] = str(tmp_path / "notify-data")

    def logs() -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text('utf-8', 'replace')[-3000:]}"
            for p in sorted(tmp_path.glob("*.log"))
        )

    try:
        with ExitStack() as stack:
            stack.enter_context(
                _process(
                    [sys.executable, "-m", "vocflow.streams.cli", "notify", "--routes",
                     str(routes), "--port", str(notify_port)],
                    tmp_path / "notify.log",
                    notify_env,
                )
            )  # fmt: skip
            stack.enter_context(
                _process(
                    [ALERTMANAGER, f"--config.file={am_config}",
                     f"--storage.path={tmp_path / 'am-data'}",
                     f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                    tmp_path / "alertmanager.log",
                )
            )  # fmt: skip
            worker = stack.enter_context(running_worker(env, tmp_path / "worker.log"))
            stack.enter_context(
                _process(
                    [PROMETHEUS, f"--config.file={prom_config}",
                     f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                     f"--web.listen-address=127.0.0.1:{prom_port}"],
                    tmp_path / "prometheus.log",
                )
            )  # fmt: skip
            wait_for(lambda: _up(f"http://127.0.0.1:{notify_port}/healthz"), 60, "notify")
            wait_for(lambda: _up(f"{am}/-/ready"), 60, "alertmanager /-/ready")
            wait_for(lambda: _up(f"{prom}/-/ready"), 60, "prometheus /-/ready")
            wait_for(
                lambda: (
                    bool(_prom_query(prom, 'up{job="vocflow-worker"} == 1'))
                    and bool(_prom_query(prom, "vocflow:queue_department"))
                ),
                60,
                "prometheus scraping the worker and evaluating the rules",
            )

            settings = load_settings(environ=env)
            config = _scenario(datetime.now(TZ))
            t0 = time.monotonic()
            counts = publish(settings, config)
            published_s = time.monotonic() - t0
            assert counts["contact"] > 1000, counts

            def emerging() -> list[str]:
                return [m for m in robot.received("/network") if "VocflowEmergingIssue" in m]

            def service_level() -> list[str]:
                return [
                    m
                    for m in robot.received("/billing")
                    if "VocflowServiceLevelBelowTarget" in m
                    and f"队列 {SHORTFALL_QUEUE}" in m
                    and "【严重告警】" in m
                ]

            delays: dict[str, float] = {}
            deadline = t0 + RECEIPT_TIMEOUT_S
            while time.monotonic() < deadline and len(delays) < 2:
                for name, found in (("emerging", emerging), ("service_level", service_level)):
                    if name not in delays and found():
                        delays[name] = time.monotonic() - t0
                time.sleep(0.25)
            print(
                f"\npublished {counts['contact']} contact events in {published_s:.1f}s; "
                + ", ".join(f"{k} alert received {v:.1f}s after publishing began"
                            for k, v in delays.items())
            )  # fmt: skip
            assert len(delays) == 2, (
                f"received only {sorted(delays)} within {RECEIPT_TIMEOUT_S:.0f}s; "
                f"robot got {[m['_path'] for m in robot.messages]}\n{_diagnostics(prom, worker)}"
            )

            # What each message says, in Chinese: what, where, how bad, since when.
            message = emerging()[0]
            assert re.search(r"【\S*告警】网络运维\(network\) · VocflowEmergingIssue", message)
            assert "**告警**：VocflowEmergingIssue — 新问题突增：" in message
            assert "**位置**：部门 网络运维(network)" in message
            assert re.search(r"\*\*程度\*\*：当前值 [\d.]+x baseline，阈值 \d+x baseline", message)
            assert "北京时间" in message
            message = service_level()[0]
            lines = message.splitlines()
            assert lines[0] == (
                '### <font color="warning">【严重告警】计费账务(billing) · '
                "VocflowServiceLevelBelowTarget</font>"
            )
            summary = f"队列 {SHORTFALL_QUEUE} 服务水平低于目标"
            assert f"**告警**：VocflowServiceLevelBelowTarget — {summary}" in lines
            assert f"**位置**：部门 计费账务(billing) · 队列 {SHORTFALL_QUEUE}" in lines
            assert any(re.fullmatch(r"\*\*程度\*\*：当前值 [\d.]+%，阈值 60%", ln) for ln in lines)
            assert any(ln.startswith("**开始**：") and "北京时间" in ln for ln in lines)

            # Prometheus itself saw the shortfall queue's alert pending or firing.
            # (A "no alert on untouched queues" control is not asserted: the
            # simulator's queues share agents, and whether a neighbour dips below
            # target depends on the time of day the test runs. Left open in issue 7.)
            alerted = {
                r["metric"].get("queue")
                for r in _prom_query(
                    prom,
                    'max_over_time(ALERTS{alertname="VocflowServiceLevelBelowTarget"}[15m])',
                )
            }
            assert SHORTFALL_QUEUE in alerted
    except AssertionError as error:
        raise AssertionError(f"{error}\n{logs()}") from None
    finally:
        robot.shutdown()
        robot.server_close()
