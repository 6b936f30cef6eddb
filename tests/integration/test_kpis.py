"""Live KPIs on the real broker: a simulated stretch of a day goes through the worker;
/api/kpis, /metrics and ClickHouse agree with each other and with the naive oracle."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import get_json, running_worker, vocflow, wait_for, worker_env
from tests.unit.kpi import oracle
from vocflow.schemas import ContactEvent
from vocflow.streams.core.settings import load_settings
from vocflow.streams.tools.simulator import SimConfig, simulate
from vocflow.streams.tools.simulator.publish import publish

pytestmark = [pytest.mark.integration, pytest.mark.clock]

# (name in /api/kpis, name in the oracle)
COMPARED = (
    ("contacts", "volume"),
    ("service_level_ratio", "service_level"),
    ("asa_seconds", "asa"),
    ("abandonment_ratio", "abandonment_rate"),
    ("aht_seconds", "aht"),
    ("transfer_ratio", "transfer_rate"),
    ("csat_ratio", "csat"),
    ("nps", "nps"),
)
BYS = (("all", None), ("queue", "queue"), ("channel", "channel"))


def sim_config() -> SimConfig:
    """A simulated busy morning (09:00-10:15) stamped to end five minutes before now.

    Stamped, not simulated at the wall-clock hour, so that the load is the same at
    any hour the suite runs. The rolling 60 minutes always hold most of it; '15m' and
    'today' hold whatever part of it the clock puts in them (at 00:03 'today' holds
    nothing), and every interval is compared with the oracle over its own bounds.
    """
    morning = SimConfig(
        seed=42,
        start_date=date(2026, 11, 23),
        start_hour=9.0,
        duration_hours=1.25,
        contacts_per_day=12_000,
        customers=3_000,
    )
    return morning.starting_at(datetime.now(UTC) - timedelta(hours=1, minutes=20))


def metric_lines(url: str) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for m in re.finditer(r"^(vocflow_\w+)(?:\{([^}]*)\})? (\S+)$", text, re.M):
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


@pytest.fixture(scope="module")
def kpi_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    prefix = f"kpi{uuid.uuid4().hex[:8]}."
    data = tmp_path_factory.mktemp("kpi")
    env = worker_env(kafka_bootstrap, prefix, data, VOCFLOW_KPI_REFRESH_SECONDS="1")
    assert vocflow("topics", "--create", env=env).returncode == 0
    config = sim_config()
    records = list(simulate(config))
    events = [ContactEvent.model_validate(r.value) for r in records if r.kind == "contact"]
    settings = load_settings(environ=env)
    counts = publish(settings, config)
    assert counts["contact"] == len(events)
    contacts = len({e.contact_id for e in events})
    with running_worker(env, data / "worker.log") as url:
        wait_for(
            lambda: (
                get_json(f"{url}/api/stats").get("clickhouse", {}).get("contact_events")
                == len(events)
            ),
            300,
            "every event in ClickHouse",
        )
        wait_for(
            lambda: get_json(f"{url}/api/stats")["clickhouse"]["contact_facts"] == contacts,
            300,
            "every contact fact in ClickHouse",
        )
        done = datetime.now(UTC)

        def fresh_and_consistent() -> bool:
            doc = get_json(f"{url}/api/kpis")
            if datetime.fromisoformat(doc["generated_at"]) < done + timedelta(seconds=1):
                return False
            lines = metric_lines(url)
            stamp = lines.get(("vocflow_kpi_refreshed_timestamp_seconds", frozenset()))
            again = get_json(f"{url}/api/kpis")
            if (
                again["generated_at"] != doc["generated_at"]
                or stamp is None
                or abs(stamp - datetime.fromisoformat(doc["generated_at"]).timestamp()) > 1e-3
            ):
                return False
            state.update(doc=doc, metrics=lines)
            return True

        state: dict[str, Any] = {}
        wait_for(fresh_and_consistent, 120, "a KPI document computed after all facts arrived")
    return {"env": env, "events": events, **state}


def test_api_matches_the_oracle_exactly(kpi_run: dict[str, Any]) -> None:
    records = oracle.contact_records(kpi_run["events"])
    doc = kpi_run["doc"]
    compared = 0
    for label, interval in doc["intervals"].items():
        iv = (
            int(datetime.fromisoformat(interval["start"]).timestamp() * 1000),
            int(datetime.fromisoformat(interval["end"]).timestamp() * 1000),
        )
        for by_label, by in BYS:
            for api_name, oracle_name in COMPARED:
                expected = oracle.kpi(
                    records,
                    oracle_name,
                    iv,
                    by,
                    threshold_ms=int(doc["sl_threshold_seconds"] * 1000),
                )
                got = interval["by"][by_label][api_name]
                want = {("_all" if by is None else g): (n, d) for g, (_, n, d) in expected.items()}
                assert {g: (k["numerator"], k["denominator"]) for g, k in got.items()} == want, (
                    label,
                    by_label,
                    api_name,
                )
                compared += len(want)
    assert compared > 200
    hour = doc["intervals"]["60m"]["by"]["all"]
    assert hour["contacts"]["_all"]["value"] > 500
    assert 0 < hour["service_level_ratio"]["_all"]["value"] <= 1


def test_metrics_equal_the_api(kpi_run: dict[str, Any]) -> None:
    doc, lines = kpi_run["doc"], kpi_run["metrics"]
    checked = 0
    for label, interval in doc["intervals"].items():
        for by_label, names in interval["by"].items():
            for name, groups in names.items():
                for group, kpi in groups.items():
                    labels = {"interval": label, "queue": "", "channel": "", "department": ""}
                    if by_label != "all":
                        labels[by_label] = group
                    key = (f"vocflow_{name}", frozenset(labels.items()))
                    if kpi["value"] is None:
                        assert key not in lines
                    else:
                        assert lines[key] == pytest.approx(kpi["value"], rel=1e-12), key
                        checked += 1
    assert checked > 300


def test_clickhouse_agrees_with_the_api(kpi_run: dict[str, Any]) -> None:
    doc = kpi_run["doc"]
    for label, interval in doc["intervals"].items():
        result = vocflow(
            "sql",
            "--json",
            (
                "SELECT count() AS n_contacts, countIf(answered) AS n_answered, "
                "sumIf(wait_seconds, answered) AS total_wait FROM vocflow.contact_facts FINAL "
                f"WHERE arrival_at >= parseDateTime64BestEffort('{interval['start']}', 3) "
                f"AND arrival_at < parseDateTime64BestEffort('{interval['end']}', 3)"
            ),
            env=kpi_run["env"],
        )
        assert result.returncode == 0, result.stderr
        row = json.loads(result.stdout)[0]
        api = interval["by"]["all"]
        # an interval without contacts has no '_all' group: its counts are 0
        contacts = api["contacts"].get("_all", {}).get("numerator", 0)
        asa = api["asa_seconds"].get("_all", {"numerator": 0, "denominator": 0})
        assert int(row["n_contacts"]) == contacts, label
        assert int(row["n_answered"]) == asa["denominator"], label
        assert round(float(row["total_wait"] or 0) * 1000) == asa["numerator"], label  # NULL: none
    assert contacts_in(doc, "60m") > 500


def contacts_in(doc: dict[str, Any], interval: str) -> int:
    return doc["intervals"][interval]["by"]["all"]["contacts"]["_all"]["numerator"]


def test_departments_and_repeat_fcr_come_from_the_routing(kpi_run: dict[str, Any]) -> None:
    """The facts agent joins contacts.routed: every contact is in exactly one
    department group, routed ones in their department, and FCR has a population."""
    hour = kpi_run["doc"]["intervals"]["60m"]["by"]
    total = hour["all"]["contacts"]["_all"]["numerator"]
    by_department = {g: k["numerator"] for g, k in hour["department"]["contacts"].items()}
    assert sum(by_department.values()) == total
    routed = sum(n for g, n in by_department.items() if g != "unknown")
    texts = len({e.contact_id for e in kpi_run["events"] if e.text})
    assert 0 < routed <= texts
    assert hour["all"]["fcr_ratio"]["_all"]["denominator"] > 0
    assert hour["all"]["complaint_ratio"]["_all"]["denominator"] == total


def test_worker_log_has_no_kpi_errors(kpi_run: dict[str, Any]) -> None:
    log = Path(kpi_run["env"]["VOCFLOW_DATA_DIR"]) / "worker.log"
    text = log.read_text(errors="replace")
    assert "KPI refresh failed" not in text
