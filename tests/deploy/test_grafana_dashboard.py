"""deploy/grafana: the dashboard is checked without Grafana (Debian does not package it).

What breaks a provisioned dashboard silently, and is checked here: a panel
bound to a datasource uid the provisioning does not create ("datasource not
found"), duplicate panel ids (Grafana drops or merges panels), a metric or
label name that the worker does not export (an empty panel that looks like
"no traffic"), a template variable used but not defined, and PromQL that does
not parse. The PromQL is parsed by promtool (Debian package `prometheus`),
the same parser Prometheus uses; a missing promtool is a failure, not a skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from tests.conftest import ROOT
from vocflow.sinks.kpi import service as kpi_service
from vocflow.sinks.prometheus import metrics

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "vocflow.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "vocflow.yaml"
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "__all"}
# Sample values for template variables, so that promtool sees what Prometheus will.
VARIABLE_SAMPLES = {"kpi_interval": "15m", "queue": ".+", "channel": ".+", "department": ".+"}


def exported_metrics() -> dict[str, set[str]]:
    """Every sample name the worker exports -> its label names (what a query may use)."""
    found: list[MetricWrapperBase] = [
        m for m in [*vars(metrics).values(), *vars(kpi_service).values()]
        if isinstance(m, MetricWrapperBase)
    ]  # fmt: skip
    found += [
        *kpi_service.GAUGES.values(),
        *kpi_service.TEAM_GAUGES.values(),
        *kpi_service.DENOMINATOR_GAUGES.values(),
    ]
    out: dict[str, set[str]] = {}
    for metric in found:
        labels = set(metric._labelnames)
        for family in metric.describe():
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",),
            }[family.type]
            for suffix in suffixes:
                out[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # collapsed rows nest theirs


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r}", target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            yield f"variable {var['name']}", query


def substitute(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
    return re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLE_SAMPLES[m.group(1)], expr)


def datasource_uid() -> str:
    doc = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    return str(source["uid"])


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["vocflow-contact-center.json"]


def test_provisioning_files_are_valid() -> None:
    assert datasource_uid() == "vocflow-prometheus"
    doc = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dash = load(path)
    assert dash["uid"] and len(dash["uid"]) <= 40 and dash.get("id") is None
    assert dash["schemaVersion"] >= 36 and dash["title"]
    panels = list(all_panels(dash["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    uid = datasource_uid()
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        targets = panel["targets"]
        assert targets, f"panel {panel['title']!r} has no query"
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            assert target["datasource"]["uid"] == uid and target["expr"].strip()
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"]["uid"] == uid


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_use_exported_metrics_labels_and_defined_variables(path: Path) -> None:
    dash = load(path)
    exported = exported_metrics()
    defined = {v["name"] for v in dash["templating"]["list"]} | BUILTIN_VARIABLES
    for where, expr in queries(dash):
        used_vars = set(re.findall(r"\$\{?(\w+)", expr))
        assert used_vars <= defined, f"{where}: undefined variable(s) {used_vars - defined}"
        names = re.findall(r"\b(vocflow_\w+)", expr)
        assert names, f"{where}: no vocflow metric in {expr!r}"
        for name in names:
            assert name in exported, f"{where}: {name} is not exported by the worker"
        for name, selector in re.findall(r"\b(vocflow_\w+)\{([^}]*)\}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector):
                assert label in exported[name], f"{where}: {name} has no label {label!r}"
        for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            labels = {x.strip() for x in clause.split(",")}
            known = set().union(*(exported[n] for n in names))
            assert labels <= known, f"{where}: grouping by unknown label(s) {labels - known}"


def test_wallboard_metrics_are_on_the_dashboard() -> None:
    """The per-queue view of the wallboard, by the label contract of kpi_service."""
    exprs = [e for _, e in queries(load(GRAFANA / "dashboards" / "vocflow-contact-center.json"))]
    for needed in (
        'vocflow_service_level_ratio{interval="$kpi_interval",queue=~"$queue"}',
        'vocflow_queue_depth{interval="now",queue=~"$queue"}',
        'vocflow_oldest_waiting_seconds{interval="now",queue=~"$queue"}',
        'vocflow_asa_seconds{interval="$kpi_interval",queue=~"$queue"}',
        'vocflow_abandonment_ratio{interval="$kpi_interval",queue=~"$queue"}',
        'vocflow_service_level_ratio{interval="$kpi_interval",queue="",channel="",department=""}',
    ):
        assert needed in exprs, needed
    # "All" must select real queues only: the empty string is the label of other groupings
    variables = {v["name"]: v for v in load(DASHBOARDS[0])["templating"]["list"]}
    for name in ("queue", "channel", "department"):
        assert variables[name]["allValue"] == ".+"
    assert {o["value"] for o in variables["kpi_interval"]["options"]} == {"15m", "60m", "today"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is needed to parse the dashboard's PromQL: apt-get install prometheus"
        )
    return found


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_promql_parses(path: Path, tmp_path: Path) -> None:
    """Each query as a recording rule: `promtool check rules` parses it with Prometheus' parser."""
    rules = []
    for i, (where, expr) in enumerate(queries(load(path))):
        if expr.startswith("label_values("):
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", expr)
            assert match, f"{where}: malformed {expr!r}"
            expr = match.group(1)  # the selector is PromQL; the wrapper is Grafana's
        rules.append({"record": f"vocflow:dashboard_check_{i}", "expr": substitute(expr)})
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
