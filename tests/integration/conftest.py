"""Helpers for tests against the real broker: a worker process, topic readers."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from tests.conftest import free_port
from tests.integration.secured_kafka import SecuredKafka, secured_kafka
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import Settings
from vocflow.streams.tools import procs


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    """A broker of its own with SASL_SSL and mutual-TLS listeners (secured_kafka.py);
    started only by the tests that ask for it."""
    with secured_kafka(tmp_path_factory.mktemp("secured-kafka")) as kafka:
        yield kafka


def worker_env(bootstrap: str, prefix: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return procs.env_without_vocflow(
        VOCFLOW_KAFKA_BOOTSTRAP=bootstrap,
        VOCFLOW_TOPIC_PREFIX=prefix,
        VOCFLOW_APP_ID=prefix.rstrip("."),
        VOCFLOW_DATA_DIR=str(data_dir),
        VOCFLOW_WEB_PORT=str(free_port()),
        VOCFLOW_SINK_FLUSH_SECONDS="0.5",
        **extra,
    )


def vocflow(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return procs.run(*args, env=env, timeout=timeout)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextmanager
def running_command(command: str, env: dict[str, str], log: Path, port_var: str) -> Iterator[str]:
    """A `vocflow <command>` child process serving /healthz on $port_var; yields its
    base URL; stops it with SIGTERM and checks it exited cleanly."""
    child = procs.Child(command, log, env=env, url=f"http://127.0.0.1:{env[port_var]}")
    try:
        child.wait_healthy(120)
        assert child.url is not None
        yield child.url
    finally:
        child.stop()
    assert child.returncode == 0, f"{command} exit code {child.returncode}: {child.log_tail()}"


def running_worker(env: dict[str, str], log: Path):  # type: ignore[no-untyped-def]
    """A `vocflow worker` child process (see running_command)."""
    return running_command("worker", env, log, "VOCFLOW_WEB_PORT")


def read_topic(conn: Settings | str, topic: str) -> list[Any]:
    """Every record currently in `topic`, read as an independent consumer without a group
    (from a plaintext bootstrap, or with the Settings of a secured cluster)."""
    # read_committed, as department systems must read (the voc loop writes in transactions)
    consumer = kafka_clients.consumer(
        conn, max_partition_fetch_bytes=16 * 1024 * 1024, isolation_level="read_committed"
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
