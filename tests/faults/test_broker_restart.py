"""The broker goes away mid-stream and comes back on the same data directory, first
with a clean shutdown, later with kill -9, under one running worker, which then
drains: every KPI table, /api/kpis and the department topics equal the clean run's
(tests/faults/oracle.py). A broker of its own, so the session's broker stays up."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import free_port
from tests.faults import oracle
from vocflow.streams.tools.broker import LocalBroker

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# (kill -9?, after how many records taken in, in all)
FAULTS = [(False, 1500), (True, 4000)]


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("restarts")
    broker = LocalBroker(home=root / "kafka", port=free_port(pairs=True))
    broker.up()
    try:
        run = oracle.new_run("broker", broker.bootstrap, root)
        oracle.broker_restarts(run, broker, FAULTS)
        snap = oracle.snapshot(run)
    finally:
        broker.down()
    print(
        f"\nbroker restarts: published {dict(run.published)}; {oracle.crash_summary(run)}; "
        f"drained in {run.drained_s:.1f}s; contact_events {len(snap['contact_events'])}, "
        f"contact_facts {len(snap['contact_facts'])}, routing_log {len(snap['routing_log'])}, "
        f"department envelopes {len(snap['department_envelopes'])} "
        f"(duplicates {oracle.duplicates(snap['department_envelopes'])})"
    )
    return {"run": run, "snapshot": snap}


def test_everything_equals_the_clean_run(restarted: dict[str, Any], clean: dict[str, Any]) -> None:
    faulted = restarted["snapshot"]
    assert oracle.differences(clean["snapshot"], faulted) == {}
    assert oracle.duplicates(faulted["department_envelopes"]) == 0


def test_both_restarts_happened_mid_stream_and_the_worker_went_on(
    restarted: dict[str, Any],
) -> None:
    events = restarted["run"].crashes
    assert [e["point"] for e in events] == ["broker stop", "broker kill -9"]
    assert events[0]["after"] >= 1500 and events[1]["after"] >= 4000
    # How soon it went on is measured and printed (docs/reliability.md), not asserted.
    assert all(e["resumed_s"] is not None for e in events), events
