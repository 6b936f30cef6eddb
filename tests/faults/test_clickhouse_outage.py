"""ClickHouse unavailable for two minutes under load (every call of the store fails
as a refused connection: VOCFLOW_CLICKHOUSE_OUTAGE, streams/core/faults.py, since
the embedded database of the suite cannot go away). The sink pauses and retries,
`vocflow_sink_blocked_seconds` shows it (the VocflowSinkBlocked rule fires on it),
the stages go on, and after the outage everything catches up: every KPI table,
/api/kpis and the department topics equal the clean run's."""

from __future__ import annotations

import re
from concurrent.futures import Future
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.faults import oracle

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module")
def outage(outage_ahead: Future[dict[str, Any]]) -> dict[str, Any]:
    """The run started with the session's first fault test (conftest.outage_ahead):
    oracle.clickhouse_outage_run, ClickHouse down OUTAGE_S from OUTAGE_START_S."""
    done = outage_ahead.result()
    run, snap = done["run"], done["snapshot"]
    print(
        f"\n{oracle.crash_summary(run)}; drained in {run.drained_s:.1f}s; contact_events "
        f"{len(snap['contact_events'])}, contact_facts {len(snap['contact_facts'])}, "
        f"department envelopes {len(snap['department_envelopes'])} "
        f"(duplicates {oracle.duplicates(snap['department_envelopes'])})"
    )
    return done


def test_everything_equals_the_clean_run(outage: dict[str, Any], clean: dict[str, Any]) -> None:
    faulted = outage["snapshot"]
    assert oracle.differences(clean["snapshot"], faulted) == {}
    assert oracle.duplicates(faulted["department_envelopes"]) == 0


def test_the_outage_showed_in_the_metric_the_alert_rule_watches(outage: dict[str, Any]) -> None:
    (event,) = outage["run"].crashes
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/vocflow-pipeline.yml").read_text())
    (rule,) = [
        r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "VocflowSinkBlocked"
    ]
    metric, threshold = re.fullmatch(r"(\w+) > (\d+)", rule["expr"]).groups()  # type: ignore[union-attr]
    hold_s = float(rule["for"].rstrip("m")) * 60
    assert metric == "vocflow_sink_blocked_seconds"
    # Above the threshold for longer than the rule's `for`: the alert fired.
    assert event["blocked_max_s"] > float(threshold) + hold_s, event


def test_the_stages_went_on_while_the_sink_waited(outage: dict[str, Any]) -> None:
    (event,) = outage["run"].crashes
    assert event["taken_during"] > 0, event
