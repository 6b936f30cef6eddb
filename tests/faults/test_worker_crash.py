"""kill -9 of the worker at the four points where data is between two homes, then a
restart that drains: every KPI table, /api/kpis at a fixed instant and the department
topics equal those of a clean run of the same traffic (tests/faults/oracle.py).

The crashes come from the worker itself (VOCFLOW_CRASH_AT, streams/core/faults.py):
SIGKILL at a named point, so each run hits the narrow states that matter instead of
wherever a timer happens to land.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults import oracle
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import DEFAULT_RULES_FILE

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# (crash point, pass that kills): early enough that most traffic is still ahead.
# In pipeline order: each restarted worker still finds work for the next point.
CRASHES = (
    ("normalize.between_outputs", 150),
    ("sink.after_insert", 2),
    ("voc.mid_transaction", 3),
    ("facts.after_table_write", 200),
)


def push_broken_rules(run: oracle.Run) -> None:
    """A rules version with a broken regex straight onto config.rules (bypassing the
    CLI's own check), as a buggy deploy script would push it."""
    broken = (
        DEFAULT_RULES_FILE.read_text("utf-8").replace('version: "', 'version: "broken-', 1)
        + "\n  - id: broken.regex\n    when: {regex: '金卡('}\n    set: {urgency: P1}\n"
    )
    producer = kafka_clients.producer(run.env["VOCFLOW_KAFKA_BOOTSTRAP"])
    producer.send(f"{run.prefix}config.rules", key=b"rules", value=broken.encode())
    producer.flush()
    producer.close()


@pytest.fixture(scope="module")
def runs(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, clean: dict[str, Any]
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("faults")
    faulted = oracle.new_run("crash", kafka_bootstrap, root)
    for n, (point, nth) in enumerate(CRASHES):
        if n == 1:
            push_broken_rules(faulted)  # under load, and there for every later start
        oracle.crash_at(faulted, point, nth)
    restart_s = oracle.drain(faulted)
    out = {
        "clean": clean["run"],
        "faulted": faulted,
        "restart_s": restart_s,
        "clean_snapshot": clean["snapshot"],
        "faulted_snapshot": oracle.snapshot(faulted),
    }
    snap = out["faulted_snapshot"]
    print(
        f"\nkill -9 x{len(CRASHES)}: published {dict(faulted.published)}; "
        f"{oracle.crash_summary(faulted)}; drained in {faulted.drained_s:.1f}s "
        f"(clean {clean['run'].drained_s:.1f}s); contact_events {len(snap['contact_events'])}, "
        f"contact_facts {len(snap['contact_facts'])}, routing_log {len(snap['routing_log'])}, "
        f"department envelopes {len(snap['department_envelopes'])} "
        f"(duplicates {oracle.duplicates(snap['department_envelopes'])}); each restart, "
        f"launch to first record: {', '.join(f'{x:.1f}s' for x in restarts(out))}"
    )
    return out


def test_the_traffic_is_not_trivial(runs: dict[str, Any]) -> None:
    snap = runs["clean_snapshot"]
    assert runs["clean"].published == runs["faulted"].published
    assert len(snap["contact_facts"]) > 500
    assert len(snap["routing_log"]) > 100
    assert len(snap["dead_letters"]) > 10
    assert len({d for d, _, _ in snap["department_envelopes"]}) >= 4


def test_each_crash_point_was_hit(runs: dict[str, Any]) -> None:
    assert [(c["point"], c["nth"]) for c in runs["faulted"].crashes] == list(CRASHES)


def test_kpi_tables_and_api_equal_the_clean_run(runs: dict[str, Any]) -> None:
    diff = oracle.differences(
        {k: v for k, v in runs["clean_snapshot"].items() if k != "department_envelopes"},
        runs["faulted_snapshot"],
    )
    assert diff == {}, f"{diff}\nsnapshots: {runs['faulted'].data}/snapshot.json, clean's"


def test_department_topics_hold_each_envelope_once(runs: dict[str, Any]) -> None:
    clean = runs["clean_snapshot"]["department_envelopes"]
    faulted = runs["faulted_snapshot"]["department_envelopes"]
    assert oracle.duplicates(clean) == 0
    assert oracle.duplicates(faulted) == 0
    assert faulted == clean


def test_the_broken_rules_were_rejected_and_the_old_ones_kept_routing(
    runs: dict[str, Any],
) -> None:
    # Every start after the push that lived to load its rules view read the broken
    # version and refused it (the drain worker at least); none put it in force; the
    # department topics equal the clean run's (test above): the old rules routed.
    faulted = runs["faulted"]
    logs = [faulted.log(n).read_text("utf-8", "replace") for n in range(1, len(CRASHES) + 1)]
    rejected = "rules version rejected, keeping 2026.11-1: config.rules (config.rules@0)"
    assert rejected in logs[-1]
    assert sum(rejected in log for log in logs) >= 2
    assert not any("rules broken-" in log for log in logs)


def restarts(runs: dict[str, Any]) -> list[float]:
    """Launch to first record of every start after a kill (the crashing ones, the drain)."""
    return [c["first_record_s"] for c in runs["faulted"].crashes[1:]] + [runs["restart_s"]]
