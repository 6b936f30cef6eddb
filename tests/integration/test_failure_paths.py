"""What a user sees when something around the worker is wrong."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port
from tests.integration.conftest import vocflow, worker_env


def test_worker_without_broker_exits_with_a_clear_message(tmp_path: Path) -> None:
    env = worker_env(f"127.0.0.1:{free_port()}", "nobroker.", tmp_path)
    # The bound is the subprocess timeout: a worker still waiting after 90 s fails the
    # test with TimeoutExpired. No wall-clock figure is asserted.
    result = vocflow("worker", env=env, timeout=90)
    assert result.returncode == 2
    assert "vocflow: error: no Kafka broker answered at 127.0.0.1:" in result.stderr
    assert "check VOCFLOW_KAFKA_BOOTSTRAP" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_config_file_stops_the_worker_before_it_starts(tmp_path: Path) -> None:
    config = tmp_path / "vocflow.yaml"
    config.write_text("partitions: 0\n")
    env = worker_env("127.0.0.1:1", "badconf.", tmp_path, VOCFLOW_CONFIG=str(config))
    result = vocflow("worker", env=env)
    assert result.returncode == 2
    assert f"{config}:1: partitions: Input should be greater than or equal to 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_sql_on_a_locked_embedded_clickhouse_says_who_holds_it(tmp_path: Path) -> None:
    # The worker of test_pipeline holds its own path; here a second process holds ours.
    import subprocess
    import sys

    path = tmp_path / "ch"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import clickhouse_connect, sys, time; "
            f"c = clickhouse_connect.get_client(dsn='chdb://{path}'); "
            "c.command('CREATE DATABASE d'); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        env = worker_env("127.0.0.1:1", "lock.", tmp_path, VOCFLOW_CLICKHOUSE_URL=f"chdb://{path}")
        result = vocflow("sql", "SELECT 1", env=env)
        assert result.returncode == 2
        # no worker answers /api/sql for it here: the message says both
        assert (
            f"vocflow: error: the embedded ClickHouse at chdb://{path} is held by another "
            "process and no worker answered at http://" in result.stderr
        )
        assert "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait()
