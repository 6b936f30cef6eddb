"""deploy/prometheus: Prometheus accepts the rules and the example config, every alert fires
and stays quiet as its promtool unit tests say, and every alert keeps the contract of
docs/alerting.md (severity, source, department/where, bilingual summary, value vs threshold,
runbook) that Alertmanager's routing and inhibition and `vocflow notify` rely on.

promtool comes from the Debian package prometheus (`make test` installs it). A missing
promtool fails these tests: unchecked paging rules are not a skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
TESTS = sorted((PROM / "tests").glob("*.yml"))
THRESHOLDS = PROM / "rules" / "vocflow-thresholds.yml"
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
DOC = ROOT / "docs" / "alert-rules.md"
INSTALL = "apt-get update && apt-get install -y prometheus"
RUNBOOK_BASE = "https://github.com/vocflow/vocflow/blob/main/docs/alert-rules.md#"
SOURCES = {
    "vocflow-kpi.yml": "kpi",
    "vocflow-pipeline.yml": "pipeline",
    "vocflow-voc.yml": "voc",
}
ANNOTATIONS = {
    "summary",
    "summary_en",
    "description",
    "description_en",
    "value",
    "threshold",
    "runbook_url",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(f"promtool not found on PATH; install it with `{INSTALL}`")
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=300, check=False, cwd=PROM
    )


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def alerting_rules() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in RULES:
        for group in load(path)["groups"]:
            out += [(path.name, r) for r in group["rules"] if "alert" in r]
    return out


def test_the_rule_and_test_files_exist() -> None:
    names = {p.name for p in RULES}
    assert {"vocflow-thresholds.yml", *SOURCES} <= names, names
    assert {"kpi.test.yml", "pipeline.test.yml", "voc.test.yml"} <= {p.name for p in TESTS}


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", *[str(p) for p in RULES])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_of_the_example_prometheus_yml() -> None:
    result = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    config = load(PROM / "prometheus.yml")
    assert {Path(f).name for f in config["rule_files"]} == {p.name for p in RULES}
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["vocflow-worker"]["static_configs"][0]["targets"] == ["127.0.0.1:6066"]
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["127.0.0.1:9093"]


@pytest.mark.parametrize("test_file", TESTS, ids=[p.name for p in TESTS])
def test_promtool_test_rules(test_file: Path) -> None:
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_keeps_the_label_and_annotation_contract() -> None:
    rules = alerting_rules()
    assert rules
    for file, rule in rules:
        name = rule["alert"]
        labels = rule.get("labels", {})
        assert labels.get("severity") in {"warning", "critical"}, name
        assert labels.get("source") == SOURCES[file], (name, file)
        notes = rule.get("annotations", {})
        assert set(notes) >= ANNOTATIONS, (name, ANNOTATIONS - set(notes))
        assert re.search(r"[\u4e00-\u9fff]", notes["summary"]), f"{name}: summary is Chinese"
        assert not re.search(
            r"[\u4e00-\u9fff]", notes["summary_en"].replace("{{ $labels.key }}", "")
        )
        assert notes["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        # how bad: the value and the threshold are in the description, since when is the `for`
        if name != "VocflowWorkerDown":  # up == 0 is the whole story
            for text in (notes["description"], notes["description_en"]):
                assert "$value" in text, name
        if "for" in rule:
            minutes = str(int(rule["for"].rstrip("m")))
            assert minutes in notes["description"] and minutes in notes["description_en"], name


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for _, rule in alerting_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet (exp_alerts: [])"
    severities = {(r["alert"], r["labels"]["severity"]) for _, r in alerting_rules()}
    tested = set()
    for path in TESTS:
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                for exp in check["exp_alerts"]:
                    tested.add((check["alertname"], exp["exp_labels"]["severity"]))
                    assert "exp_annotations" in exp
    assert severities - tested == set(), "alert severities never tested firing"


def test_runbook_anchors_exist_in_docs() -> None:
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for _, rule in alerting_rules():
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in headings, f"docs/alert-rules.md has no heading for #{anchor}"
    assert "thresholds" in headings


def test_alertmanager_inhibition_sources_exist_as_critical_pipeline_alerts() -> None:
    inhibit = load(AM_CONFIG)["inhibit_rules"][0]["source_matchers"]
    names = re.search(r'alertname=~"([^"]+)"', " ".join(inhibit))
    assert names is not None
    rules = {
        (r["alert"], r["labels"]["severity"], r["labels"]["source"]) for _, r in alerting_rules()
    }
    for name in names.group(1).split("|"):
        assert (name, "critical", "pipeline") in rules, name


def test_every_threshold_used_has_exactly_one_default() -> None:
    defaults: dict[tuple[str, str], int] = {}
    for group in load(THRESHOLDS)["groups"]:
        for rule in group["rules"]:
            if rule.get("record") != "vocflow:threshold":
                continue
            labels = rule["labels"]
            if "queue" not in labels:
                key = (labels["name"], labels.get("severity", ""))
                defaults[key] = defaults.get(key, 0) + 1
    assert all(n == 1 for n in defaults.values()), defaults
    used = set()
    for path in RULES:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r'name="(\w+)"(?:,severity="(\w*)")?', text):
            used.add((m.group(1), m.group(2) or ""))
        for m in re.finditer(r'"(\w+)" "(warning|critical)"', text):
            used.add((m.group(1), m.group(2)))
    missing = {u for u in used if u not in defaults and (u[0], "") not in defaults}
    assert missing == set(), f"thresholds used without a default: {missing}"
