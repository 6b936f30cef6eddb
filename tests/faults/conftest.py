"""The clean run every faulted run is compared with: the seeded traffic through one
worker that nothing disturbs (tests/faults/oracle.py), once per session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults import oracle


@pytest.fixture(scope="session")
def clean(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = oracle.new_run("clean", kafka_bootstrap, tmp_path_factory.mktemp("clean"))
    oracle.drain(run)
    return {"run": run, "snapshot": oracle.snapshot(run)}
