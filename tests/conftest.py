"""Fixtures shared by the whole suite.

The integration tests need the real Kafka broker. It is started here, from the
project's own tooling, and a failure to start it fails those tests with the
reason: a missing broker is never a skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.streams.tools.broker import LocalBroker

ROOT = Path(__file__).resolve().parent.parent


def free_port(pairs: bool = False) -> int:
    """A free loopback port (and, with `pairs`, the one after it free too)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pairs or port >= 65535:
            return port
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair on 127.0.0.1")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real single-node KRaft broker for this test session (or VOCFLOW_TEST_BOOTSTRAP)."""
    external = os.environ.get("VOCFLOW_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    broker = LocalBroker(home=tmp_path_factory.mktemp("kafka"), port=free_port(pairs=True))
    broker.up()  # raises BrokerError with the reason: the test errors, it does not skip
    try:
        yield broker.bootstrap
    finally:
        broker.down()


@pytest.fixture()
def prefix() -> str:
    """Unique topic prefix / group id, so tests never see each other's data."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One process may open only one chdb path: the session shares one."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture()
def store(chdb_path: str) -> Iterator[ClickHouseStore]:
    """A migrated ClickHouse database of its own for each test."""
    s = ClickHouseStore(chdb_path, f"t_{uuid.uuid4().hex[:12]}")
    s.migrate()
    yield s
