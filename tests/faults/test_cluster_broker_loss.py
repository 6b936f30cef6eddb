"""A three-broker KRaft cluster on loopback (every topic replicated three times,
min.insync.replicas 2, acks=all): one broker is killed with SIGKILL mid-stream and
stays down; the worker carries on with the other two and drains, and every KPI
table, /api/kpis and the department topics equal the clean run's
(tests/faults/oracle.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import free_port
from tests.faults import oracle
from vocflow.streams.tools.broker import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.faults]

NODES = 3
KILL_AFTER = 2500  # records taken in by the worker


def distinct_port_pairs(n: int) -> tuple[int, ...]:
    """n free (broker, controller) port pairs that do not overlap."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port(pairs=True)
        if all(abs(port - p) > 1 for p in ports):
            ports.append(port)
    return tuple(ports)


@pytest.fixture(scope="module")
def lost(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cluster")
    cluster = LocalCluster(home=root / "kafka", ports=distinct_port_pairs(NODES))
    cluster.up()
    try:
        run = oracle.new_run(
            "cluster", cluster.bootstrap, root, VOCFLOW_REPLICATION_FACTOR=str(NODES)
        )
        # The second node: not the one every client bootstraps from first.
        oracle.broker_restarts(run, cluster.brokers[1], [(True, KILL_AFTER)], restart=False)
        snap = oracle.snapshot(run)
    finally:
        cluster.down()
    print(
        f"\ncluster of {NODES}, one broker lost: published {dict(run.published)}; "
        f"{oracle.crash_summary(run)}; drained in {run.drained_s:.1f}s; contact_events "
        f"{len(snap['contact_events'])}, contact_facts {len(snap['contact_facts'])}, "
        f"routing_log {len(snap['routing_log'])}, department envelopes "
        f"{len(snap['department_envelopes'])} "
        f"(duplicates {oracle.duplicates(snap['department_envelopes'])})"
    )
    return {"run": run, "snapshot": snap}


def test_everything_equals_the_clean_run(lost: dict[str, Any], clean: dict[str, Any]) -> None:
    faulted = lost["snapshot"]
    assert oracle.differences(clean["snapshot"], faulted) == {}
    assert oracle.duplicates(faulted["department_envelopes"]) == 0


def test_the_broker_was_lost_mid_stream_and_the_worker_went_on(lost: dict[str, Any]) -> None:
    (event,) = lost["run"].crashes
    assert event["point"] == "broker kill -9 for good"
    assert event["after"] >= KILL_AFTER
    # It went on (how fast is measured and printed, not asserted).
    assert event["resumed_s"] is not None, event
