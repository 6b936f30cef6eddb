"""Agent KPIs on the real broker: a schedule loaded with `vocflow shifts load`
(and corrected by a second load), agent and contact events with known timings
-> /api/agents with hand-computed values; then agent_intervals written from
the worker's ClickHouse. The scenario and its expected values are those of
tests/unit/sinks/test_agent_kpis.py, placed 40 minutes before now."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    get_json,
    read_topic,
    running_worker,
    vocflow,
    wait_for,
    worker_env,
)
from tests.unit.sinks.test_agent_kpis import (
    EXPECTED_AGENTS,
    EXPECTED_BOTTOM,
    TEAMS,
    TZ,
    agent_events,
    at,
    contact_events,
    expected_kpi,
    expected_team,
    shift_csv,
)
from vocflow.sinks.kpi.agent_kpis import KPIS
from vocflow.streams.core import kafka_clients
from vocflow.streams.kpi.intervals import bucket
from vocflow.streams.sources.publisher import Publisher

pytestmark = [pytest.mark.integration, pytest.mark.clock]

TEAM_OF = {**TEAMS, "a3": "t1"}

# Writes agent_intervals the way the kpi_service round does, for the local
# day(s) of the scenario; a child process, because one process may open only
# one embedded ClickHouse path and the test session may hold another.
WRITE_INTERVALS = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from vocflow.sinks.kpi import agent_kpis
    from vocflow.sinks.clickhouse.store import ClickHouseStore
    from vocflow.streams.core.settings import load_settings
    from vocflow.streams.kpi.intervals import today
    from vocflow.streams.kpi.models import to_ms

    settings = load_settings()
    store = ClickHouseStore.from_settings(settings)
    now = datetime.fromisoformat(sys.argv[1])
    days = {today(datetime.fromisoformat(m), settings.timezone) for m in sys.argv[2:]}
    # Computed now, from the complete data: newer than the worker's own rewrite at
    # its start (made before the backlog was folded), which FINAL would keep otherwise.
    computed_at = datetime.now(UTC)
    for day in days:
        agent_kpis.write_day(store, day, min(day.end_ms, to_ms(now)), computed_at)
    store.close()
    """
)


def expected_interval(agents: list[str]) -> dict[str, Any]:
    teams = sorted({TEAM_OF[a] for a in agents})
    return {
        "agents": {
            a: {
                "team": TEAM_OF[a],
                **{name: expected_kpi(a, name) for name in KPIS},
                "handled": EXPECTED_AGENTS[a]["aht"][1],
            }
            for a in agents
        },
        "teams": {
            t: {
                **{
                    name: expected_team([a for a in agents if TEAM_OF[a] == t], name)
                    for name in KPIS
                },
                "handled": sum(EXPECTED_AGENTS[a]["aht"][1] for a in agents if TEAM_OF[a] == t),
            }
            for t in teams
        },
    }


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_schedule_events_and_api_agree_exactly(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"agt{uuid.uuid4().hex[:8]}."
    env = worker_env(kafka_bootstrap, prefix, tmp_path, VOCFLOW_KPI_REFRESH_SECONDS="1")
    assert vocflow("topics", "--create", env=env).returncode == 0
    w0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=40)
    shifts_topic = f"{prefix}agents.shifts"

    # A file with one bad row publishes nothing.
    good = shift_csv(w0)
    bad = tmp_path / "bad.csv"
    bad.write_text(good.replace(",work\n", ",work,oops\n", 1), encoding="utf-8")
    result = vocflow("shifts", "load", str(bad), env=env)
    assert result.returncode == 2, result.stderr
    assert f"{bad}:2: more cells than header columns" in result.stderr
    assert "nothing was published" in result.stderr
    assert read_topic(kafka_bootstrap, shifts_topic) == []

    # A schedule with a2 on a 40-minute segment, then the corrected export.
    def local(minute: int) -> str:
        return at(minute, w0).astimezone(TZ).strftime("%Y-%m-%d %H:%M")

    a2_line = f"a2,t1,{local(0)},{local(30)},work\n"
    assert a2_line in good
    first = tmp_path / "first.csv"
    first.write_text(good.replace(a2_line, f"a2,t1,{local(0)},{local(40)},work\n"), "utf-8")
    corrected = tmp_path / "corrected.csv"
    corrected.write_text(good, encoding="utf-8")
    for path in (first, corrected):
        result = vocflow("shifts", "load", str(path), env=env)
        assert result.returncode == 0, result.stderr
        assert "published 6 shift segment(s) of 4 agent(s)" in result.stdout
    records = read_topic(kafka_bootstrap, shifts_topic)
    assert len(records) == 12 and len({r.key for r in records}) == 6

    producer = kafka_clients.producer(kafka_bootstrap)
    for event in agent_events(w0):
        producer.send(
            f"{prefix}agents.events",
            key=event.agent_id.encode(),
            value=event.model_dump_json().encode(),
        )
    producer.flush()
    producer.close()
    with Publisher(kafka_bootstrap, prefix) as publisher:
        publisher.publish_many(contact_events(w0))

    want = {
        **expected_interval(["a1", "a2", "a3", "a4"]),
        "bottom": EXPECTED_BOTTOM[None],
    }
    want_t1 = {**expected_interval(["a1", "a2", "a3"]), "bottom": EXPECTED_BOTTOM["t1"]}
    seen: dict[str, Any] = {}

    def body(doc: dict[str, Any], label: str) -> dict[str, Any]:
        return {k: v for k, v in doc["intervals"][label].items() if k not in ("start", "end")}

    with running_worker(env, tmp_path / "worker.log") as url:

        def settled() -> bool:
            seen["doc"] = get_json(f"{url}/api/agents")
            return body(seen["doc"], "60m") == want

        try:
            wait_for(settled, 300, "/api/agents to show the whole scenario")
        except AssertionError:
            assert body(seen["doc"], "60m") == want  # shows the difference
            raise
        doc = seen["doc"]
        today = doc["intervals"]["today"]
        if datetime.fromisoformat(today["start"]) <= w0:  # not in the first 40 minutes of a day
            assert body(doc, "today") == want
        team_doc = get_json(f"{url}/api/agents?interval=60m&team=t1")
        assert list(team_doc["intervals"]) == ["60m"]
        assert body(team_doc, "60m") == want_t1
        one_kpi = get_json(f"{url}/api/agents?interval=60m&kpi=adherence")
        assert one_kpi["intervals"]["60m"]["bottom"] == {"adherence": ["a3"]}
        assert http_status(f"{url}/api/agents?interval=1h") == 400
        assert http_status(f"{url}/api/agents?kpi=csat") == 400

    # agent_intervals: every interval up to the end of the scenario's last one.
    closed = datetime.fromtimestamp(bucket(at(31, w0)).end_ms / 1000, UTC)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            WRITE_INTERVALS,
            closed.isoformat(),
            w0.isoformat(),
            closed.isoformat(),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = vocflow(
        "sql",
        "--json",
        "SELECT agent_id, any(team) AS team, count() AS n_rows, "
        "sum(scheduled_seconds) AS scheduled, sum(adherent_seconds) AS adherent, "
        "sum(on_contact_seconds + after_work_seconds) AS handling, "
        "sum(ready_seconds + on_contact_seconds + after_work_seconds) AS available, "
        "sum(handled) AS handled, sum(handle_seconds) AS handle "
        "FROM vocflow.agent_intervals FINAL GROUP BY agent_id ORDER BY agent_id",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    rows = {r.pop("agent_id"): r for r in json.loads(result.stdout)}
    assert sorted(rows) == ["a1", "a2", "a3", "a4"]
    for agent, row in rows.items():
        e = EXPECTED_AGENTS[agent]
        assert row["team"] == TEAM_OF[agent]
        assert round(float(row["scheduled"])) == e["adherence"][1] * 60
        assert round(float(row["adherent"])) == e["adherence"][0] * 60
        assert round(float(row["handling"])) == e["utilization"][0] * 60
        assert round(float(row["available"])) == e["occupancy"][1] * 60
        assert (round(float(row["handle"])), int(row["handled"])) == e["aht"]

    # rows only where an agent was scheduled, logged in or handling
    def buckets(minutes: range) -> int:
        return len({bucket(at(m, w0)).start_ms for m in minutes})

    assert int(rows["a2"]["n_rows"]) == buckets(range(31))
    assert int(rows["a3"]["n_rows"]) == buckets(range(30))
