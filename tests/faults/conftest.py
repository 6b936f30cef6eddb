"""The clean run every faulted run is compared with: the seeded traffic through one
worker that nothing disturbs (tests/faults/oracle.py), once per session; and the
ClickHouse outage run, started with the first fault test of the session."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from tests.faults import oracle

OUTAGE_TESTS = "test_clickhouse_outage.py"


@pytest.fixture(scope="session")
def clean(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = oracle.new_run("clean", kafka_bootstrap, tmp_path_factory.mktemp("clean"))
    oracle.drain(run)
    return {"run": run, "snapshot": oracle.snapshot(run)}


@pytest.fixture(scope="session", autouse=True)
def outage_ahead(request: pytest.FixtureRequest) -> Iterator[Future[dict[str, Any]] | None]:
    """The ClickHouse outage run (test_clickhouse_outage.py), in a thread from the first
    fault test of the session on, when the session has its tests.

    Why: its worker waits out a fixed two-minute outage (the VocflowSinkBlocked rule
    needs more than its 1-minute `for`), mostly idle once the stages have taken in the
    backlog; one after the other with the other fault runs it added ~160 s to the
    suite. Its own topics, database and worker, on the session's broker (which no other
    fault run stops), so nothing it does can touch the runs beside it. The session
    waits for it before it ends: no worker is left behind."""
    if not any(item.path.name == OUTAGE_TESTS for item in request.session.items):
        yield None
        return
    bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    root = factory.mktemp("outage")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-outage") as pool:
        yield pool.submit(oracle.clickhouse_outage_run, bootstrap, root)
