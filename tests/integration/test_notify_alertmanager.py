"""A real Alertmanager (Debian's /usr/bin/prometheus-alertmanager) -> `vocflow notify` -> a chat
robot on 127.0.0.1.

Alertmanager runs the deployed routing and inhibition (deploy/alertmanager/alertmanager.yml)
with its webhook pointed at this test's notify port and its waits shortened to one second.
A missing binary fails the test with the install line; it never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.conftest import free_port
from tests.integration.conftest import get_json, wait_for
from vocflow.streams.tools import procs

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
INSTALL = "apt-get install -y prometheus-alertmanager"


class ChatRobot(ThreadingHTTPServer):
    """A WeCom-like robot: records every JSON POST and answers errcode 0."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RobotHandler)

    def received(self, path: str) -> list[str]:
        with self.lock:
            return [m["markdown"]["content"] for m in self.messages if m["_path"] == path]


class _RobotHandler(BaseHTTPRequestHandler):
    server: ChatRobot

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.messages.append({**body, "_path": self.path.split("?")[0]})
        answer = b'{"errcode":0,"errmsg":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Stack:
    alertmanager: str
    robot: ChatRobot
    logs: Path

    def post_alerts(self, *alerts: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.alertmanager}/api/v2/alerts",
            data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def alert_status(self, alertname: str) -> list[dict[str, Any]]:
        query = urllib.parse.quote(f'alertname="{alertname}"')
        return list(get_json(f"{self.alertmanager}/api/v2/alerts?filter={query}"))

    def wait(self, condition: Any, what: str, timeout: float = 60) -> None:
        try:
            wait_for(condition, timeout, what)
        except AssertionError:
            tails = [f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs.glob("*.log")]
            raise AssertionError(f"timed out: {what}\n" + "\n".join(tails)) from None


def _shorten(route: dict[str, Any]) -> None:
    for key in ("group_wait", "group_interval"):
        if key in route:
            route[key] = "1s"
    for child in route.get("routes") or []:
        _shorten(child)


def _alertmanager_config(notify_port: int) -> str:
    """The deployed config with its webhooks on our notify port and 1 s waits."""
    config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text("utf-8"))
    config["route"].update(group_wait="1s", group_interval="1s")
    _shorten(config["route"])
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = hook["url"].replace("127.0.0.1:6071", f"127.0.0.1:{notify_port}")
    return yaml.safe_dump(config, sort_keys=False)


def _notify_routes(robot_port: int) -> str:
    base = f"http://127.0.0.1:{robot_port}"
    return f"""\
language: zh
delivery: {{timeout: 5s, initial_backoff: 100ms, max_backoff: 1s}}
receivers:
  billing: {{type: wecom, url: "{base}/billing?key=billing-key-0001"}}
  network: {{type: wecom, url: "{base}/network?key=network-key-0001"}}
  ops: {{type: wecom, url: "{base}/ops?key=ops-key-0001"}}
routes:
  - match: {{department: billing}}
    receivers: [billing]
  - match: {{department: network}}
    receivers: [network]
  - receivers: [ops]
"""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (os.path.exists(ALERTMANAGER) and shutil.which("amtool")):
        pytest.fail(f"{ALERTMANAGER} not found; install it with `{INSTALL}`")
    tmp = tmp_path_factory.mktemp("notify-am")
    robot = ChatRobot()
    threading.Thread(target=robot.serve_forever, daemon=True).start()
    notify_port, am_port = free_port(), free_port()
    routes = tmp / "notify.yaml"
    routes.write_text(_notify_routes(robot.server_address[1]), encoding="utf-8")
    am_config = tmp / "alertmanager.yml"
    am_config.write_text(_alertmanager_config(notify_port), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOCFLOW_")}
    env["VOCFLOW_DATA_DIR"] = str(tmp / "data")
    children: list[subprocess.Popen[bytes]] = []
    try:
        with open(tmp / "notify.log", "wb") as log:
            children.append(
                subprocess.Popen(
                    [*procs.CLI, "notify", "--routes",
                     str(routes), "--port", str(notify_port)],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        with open(tmp / "alertmanager.log", "wb") as log:
            children.append(
                subprocess.Popen(
                    [ALERTMANAGER, f"--config.file={am_config}",
                     f"--storage.path={tmp / 'am-data'}",
                     f"--web.listen-address=127.0.0.1:{am_port}",
                     "--cluster.listen-address=", "--log.level=debug"],
                    stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        result = Stack(f"http://127.0.0.1:{am_port}", robot, tmp)

        def up(url: str) -> bool:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)

        result.wait(lambda: up(f"http://127.0.0.1:{notify_port}/healthz"), "notify /healthz")
        result.wait(lambda: up(f"{result.alertmanager}/-/ready"), "alertmanager /-/ready")
        yield result
    finally:
        for proc in reversed(children):
            _stop(proc)
        robot.shutdown()
        robot.server_close()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _sl_alert(starts: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "ServiceLevelBelowTarget",
            "department": "billing",
            "queue": "voice.billing",
            "severity": "critical",
            "source": "kpi",
        },
        "annotations": {
            "summary": "队列 voice.billing 服务水平低于目标",
            "value": "62.5%",
            "threshold": "80%",
            "runbook_url": "https://wiki.example/runbooks/service-level",
        },
        "startsAt": _iso(starts),
        **extra,
    }


def test_alert_reaches_the_department_robot_in_chinese_and_resolves(stack: Stack) -> None:
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    stack.post_alerts(_sl_alert(starts))
    stack.wait(lambda: bool(stack.robot.received("/billing")), "firing message on /billing")
    message = stack.robot.received("/billing")[0]
    local = starts.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    lines = message.splitlines()
    assert lines[0] == (
        '### <font color="warning">【严重告警】计费账务(billing) · ServiceLevelBelowTarget</font>'
    )
    assert "**告警**：ServiceLevelBelowTarget — 队列 voice.billing 服务水平低于目标" in lines
    assert "**位置**：部门 计费账务(billing) · 队列 voice.billing" in lines
    assert "**程度**：当前值 62.5%，阈值 80%" in lines
    assert any(line.startswith(f"**开始**：{local} 北京时间，已持续 ") for line in lines)
    assert any("runbooks/service-level" in line for line in lines)

    stack.post_alerts(_sl_alert(starts, endsAt=_iso(datetime.now(UTC) - timedelta(seconds=1))))
    stack.wait(
        lambda: any("【已恢复】" in m for m in stack.robot.received("/billing")),
        "resolved message on /billing",
    )
    assert not stack.robot.received("/network") and not stack.robot.received("/ops")
    assert "billing-key-0001" not in (stack.logs / "notify.log").read_text("utf-8")


def test_pipeline_down_inhibits_kpi_alerts_and_pages_ops(stack: Stack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    stalled = {
        "labels": {"alertname": "VocflowPipelineStalled", "severity": "critical"},
        "annotations": {"summary": "流水线 3 分钟无输出", "value": "0 events/s"},
        "startsAt": _iso(now - timedelta(minutes=3)),
    }
    stack.post_alerts(stalled)
    stack.wait(lambda: bool(stack.robot.received("/ops")), "pipeline message on /ops")
    assert "VocflowPipelineStalled" in stack.robot.received("/ops")[0]

    kpi = {
        "labels": {
            "alertname": "AbandonRateHigh",
            "department": "network",
            "queue": "voice.network",
            "severity": "warning",
            "source": "kpi",
        },
        "annotations": {"summary": "放弃率过高", "value": "18%", "threshold": "10%"},
        "startsAt": _iso(now),
    }
    stack.post_alerts(kpi)

    def inhibited() -> bool:
        alerts = stack.alert_status("AbandonRateHigh")
        return bool(alerts and alerts[0]["status"]["inhibitedBy"])

    stack.wait(inhibited, "AbandonRateHigh inhibited by VocflowPipelineStalled")
    assert stack.alert_status("AbandonRateHigh")[0]["status"]["state"] == "suppressed"
    assert not any("AbandonRateHigh" in m for m in stack.robot.received("/network"))
