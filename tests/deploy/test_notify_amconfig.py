"""deploy/alertmanager: Alertmanager's own checker accepts the config, routes go to the right
department, and alertmanager.yml and notify.yaml agree with each other.

amtool comes from the Debian package prometheus-alertmanager (`make test` installs it). A
missing amtool fails these tests: an unchecked paging config is not a skip.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from vocflow.streams.notify.config import load_notify_config, parse_duration

ROOT = Path(__file__).resolve().parents[2]
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
NOTIFY_CONFIG = ROOT / "deploy" / "alertmanager" / "notify.yaml"
INSTALL = "apt-get install -y prometheus-alertmanager"
DEPARTMENTS = ("billing", "network", "tech_support", "sales_retention", "complaints")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("amtool")
    if exe is None:
        pytest.fail(f"amtool not found; install it with `{INSTALL}`")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, check=False)


def am() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(AM_CONFIG.read_text(encoding="utf-8"))
    return data


def test_amtool_check_config_accepts_the_deployed_config() -> None:
    result = amtool("check-config", str(AM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "2 inhibit rules" in result.stdout


@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
@pytest.mark.parametrize("department", DEPARTMENTS)
def test_each_department_pages_its_own_on_call(department: str, severity: str) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={AM_CONFIG}",
        f"department={department}", f"severity={severity}", "alertname=ServiceLevelBelowTarget",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{department.replace('_', '-')}-oncall"


@pytest.mark.parametrize(
    "labels", [["alertname=VocflowWorkerDown", "severity=critical"], ["department=unknown"]]
)
def test_pipeline_and_unknown_departments_go_to_ops(labels: list[str]) -> None:
    result = amtool("config", "routes", "test", f"--config.file={AM_CONFIG}", *labels)
    assert result.stdout.strip() == "ops-oncall", result.stderr


def _routes(route: dict[str, Any], inherited: dict[str, Any]) -> list[dict[str, Any]]:
    merged = {**inherited, **{k: v for k, v in route.items() if k != "routes"}}
    found = [merged]
    for child in route.get("routes") or []:
        found += _routes(child, merged)
    return found


def test_timings_fit_a_contact_center() -> None:
    route = am()["route"]
    assert route["group_by"] == ["alertname", "department", "queue"]
    by_severity = {
        r["matchers"][0]: r for r in route["routes"] if r.get("matchers")
    }  # fmt: skip
    critical, warning = by_severity['severity="critical"'], by_severity['severity="warning"']
    assert parse_duration(critical["repeat_interval"]) < parse_duration(warning["repeat_interval"])
    assert parse_duration(critical["group_wait"]) <= 30
    assert parse_duration(critical["repeat_interval"]) <= 3600


def test_notify_dedup_window_is_shorter_than_every_repeat_interval() -> None:
    """Otherwise vocflow notify would swallow Alertmanager's deliberate reminders."""
    config = load_notify_config(NOTIFY_CONFIG, environ=_dummy_env())
    repeats = [parse_duration(r["repeat_interval"]) for r in _routes(am()["route"], {})]
    assert config.dedup_window_s < min(repeats)


def test_inhibition_rules() -> None:
    rules = am()["inhibit_rules"]
    pipeline, critical = rules
    assert pipeline["source_matchers"] == [
        'alertname=~"VocflowWorkerDown|VocflowPipelineStalled"',
        'severity="critical"',
    ]
    assert pipeline["target_matchers"] == ['source="kpi"']
    assert not pipeline.get("equal")  # pipeline down blinds every queue's KPIs
    assert critical == {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "queue"],
    }


def _dummy_env() -> dict[str, str]:
    import re

    names = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", NOTIFY_CONFIG.read_text("utf-8"))
    return {name: f"dummy-{name.lower()}" for name in names}


def test_every_webhook_names_a_department_that_notify_routes() -> None:
    config = load_notify_config(NOTIFY_CONFIG, environ=_dummy_env())
    catch_all = config.route({"department": "?", "severity": "warning"})
    segments = []
    for receiver in am()["receivers"]:
        for hook in receiver["webhook_configs"]:
            url = urllib.parse.urlsplit(hook["url"])
            assert hook["send_resolved"] is True
            assert (url.hostname, url.port) == ("127.0.0.1", 6071)
            assert url.path.startswith("/alertmanager/")
            segments.append(url.path.rsplit("/", 1)[1])
    assert sorted(segments) == sorted([*DEPARTMENTS, "ops"])
    for department in DEPARTMENTS:
        assert config.route({"department": department, "severity": "warning"}) != catch_all
    everyone = set(config.route({"department": "ops", "severity": "critical"}))
    assert len(everyone) >= len(DEPARTMENTS)  # pipeline down: every department hears it
