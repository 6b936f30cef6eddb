"""`vocflow sql` and `vocflow contacts`: through the worker's API while a process
holds the embedded ClickHouse, straight from the files when none does."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ROOT
from tests.unit.kpi.test_kpi_sql import contacts, fold_with_deltas, store_facts
from tests.unit.worker.test_web_data import RANGE, TOKEN, serve
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.streams.cli import main
from vocflow.streams.core.settings import Settings

pytestmark = pytest.mark.clock


def run_cli(argv: list[str]) -> int:
    codes: list[int] = []
    main(argv, exit=codes.append)
    return codes[0]


def through_worker(
    store: ClickHouseStore,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    settings: Settings,
    token: str | None = None,
) -> int:
    """``vocflow ARGV`` against a worker's pages on this process's (locked) database."""
    codes: list[int] = []

    async def check(client: TestClient) -> None:
        monkeypatch.setenv("VOCFLOW_WEB_PORT", str(client.server.port))
        monkeypatch.setenv("VOCFLOW_CLICKHOUSE_URL", store.dsn)
        monkeypatch.setenv("VOCFLOW_CLICKHOUSE_DATABASE", store.database)
        if token:
            monkeypatch.setenv("VOCFLOW_API_TOKEN", token)
        loop = asyncio.get_running_loop()
        codes.append(await loop.run_in_executor(None, run_cli, argv))

    serve(check, store, settings)
    return codes[0]


def test_sql_goes_to_the_worker_that_holds_the_database(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT number AS n, '中文' AS t FROM numbers(3)"
    assert through_worker(store, monkeypatch, ["sql", sql], Settings()) == 0
    assert capsys.readouterr().out == "n  t\n-  ----\n0  中文\n1  中文\n2  中文\n"
    assert through_worker(store, monkeypatch, ["sql", sql, "--csv"], Settings()) == 0
    assert capsys.readouterr().out == "n,t\n0,中文\n1,中文\n2,中文\n"
    assert through_worker(store, monkeypatch, ["sql", sql, "--json"], Settings()) == 0
    assert capsys.readouterr().out.startswith('[{"n": 0, "t": "中文"}, ')
    code = through_worker(store, monkeypatch, ["sql", "SELECT * FROM nope"], Settings())
    assert code == 2
    assert "/api/sql answered 400: ClickHouse refused the query: " in capsys.readouterr().err


def test_sql_sends_the_token(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(api_token=TOKEN)
    assert through_worker(store, monkeypatch, ["sql", "SELECT 1 AS a"], settings, TOKEN) == 0
    assert capsys.readouterr().out == "a\n-\n1\n"
    assert through_worker(store, monkeypatch, ["sql", "SELECT 1"], settings, "wrong") == 2
    assert "answered 401: this page needs Authorization: Bearer" in capsys.readouterr().err


def test_contacts_lists_the_kpi_behind_a_number(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = contacts(11, 1_500)
    store_facts(store, fold_with_deltas(s.events, s.annotations)[1], random.Random(11))
    argv = ["contacts", "--kpi", "abandoned", "--queue", "billing_q", "--interval", RANGE]
    assert through_worker(store, monkeypatch, [*argv, "--limit", "2"], Settings()) == 0
    out = capsys.readouterr().out.splitlines()
    head = out[0]
    assert head.startswith(f"abandoned: numerator of abandonment_ratio, {RANGE}, queue=billing_q: ")
    listed = int(head.split(": ")[2].split(" contacts")[0])
    assert f"abandonment_ratio = {listed}/" in head
    assert out[1].split() == [
        "arrival_at",
        "contact",
        "queue",
        "channel",
        "department",
        "urgency",
        "summary",
    ]
    assert len(out) == 2 + 1 + 2 + 1 and out[-1] == "(more: --offset 2)"
    assert through_worker(store, monkeypatch, [*argv, "--csv"], Settings()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("contact_id,arrival_at,") and len(lines) == 1 + listed
    assert through_worker(store, monkeypatch, [*argv[:2], "nope"], Settings()) == 2
    assert "/api/contacts answered 400: unknown kpi 'nope'" in capsys.readouterr().err


def test_sql_opens_the_files_when_nobody_holds_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOCFLOW_")}
    env["VOCFLOW_DATA_DIR"] = str(tmp_path)
    cmd = [sys.executable, "-m", "vocflow.streams.cli", "sql"]
    done = subprocess.run(
        [*cmd, "SELECT count() AS facts FROM contact_facts", "--csv"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "facts\n0\n", "")
    refused = subprocess.run(
        [*cmd, "DROP TABLE contact_facts"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert refused.stderr == (
        "vocflow: error: only SELECT (or WITH ... SELECT) is served here, not DROP: "
        "the pipeline's data is read-only for queries\n"
    )
