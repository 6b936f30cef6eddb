"""`vocflow sink` is the worker's app without stage loops: the process that owns
ClickHouse, so it runs the KPI round, the detector and the pollers and serves the
worker's pages (docs/operations.md, "Workers plus one sink")."""

from __future__ import annotations

import argparse
import asyncio
import random
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.kpi.test_kpi_sql import DAY, contacts, fold_with_deltas, store_facts
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.kpi import drilldown
from vocflow.sinks.kpi import service as kpi_service
from vocflow.streams.cli import run
from vocflow.streams.core.settings import Settings
from vocflow.streams.worker.app import VocflowApp
from vocflow.streams.worker.detector_service import DetectorService

pytestmark = pytest.mark.clock

RANGE = f"{DAY:%Y-%m-%d}T00:00..{DAY + timedelta(days=2):%Y-%m-%d}T00:00"


def sink_app(store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch) -> VocflowApp:
    """What `vocflow sink` runs, built by the command itself (Kafka and the server
    stubbed out: run_app hands the app back instead of running it)."""
    apps: list[VocflowApp] = []
    monkeypatch.setattr(run, "check_port_free", lambda *args: None)
    monkeypatch.setattr(run, "prepare_kafka", lambda *args: None)
    monkeypatch.setattr(run, "open_store", lambda settings: store)
    monkeypatch.setattr(run, "run_app", lambda app: apps.append(app) or 0)
    args = argparse.Namespace(config=None, data_dir=None, bootstrap=None, web_port=None)
    assert run.cmd_sink(args) == 0
    (app,) = apps
    return app


def test_the_sink_runs_what_needs_clickhouse_and_no_stage(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = sink_app(store, monkeypatch)
    assert app.sink is not None and app.sink.store is store
    assert (app.stage_loops, app.stage_names) == ((), ())
    # The KPI round, backlog poller and detector run where there is a sink.
    assert isinstance(app.detector, DetectorService)


def test_the_sink_serves_kpis_contacts_and_readiness(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = contacts(7, 1_500)
    store_facts(store, fold_with_deltas(s.events, s.annotations)[1], random.Random(7))
    app = sink_app(store, monkeypatch)
    settings: Settings = app.settings_
    expected = drilldown.contacts(settings, store, {"kpi": "abandoned", "interval": RANGE})

    async def main() -> None:
        async with TestClient(TestServer(app.web.web_app)) as client:
            assert (await client.get("/api/kpis")).status == 503  # before the first round
            assert (await client.get("/readyz")).status == 503  # views not loaded yet
            app.kpis = kpi_service.refresh(settings, store)  # what PipelineServices runs
            app.views_loaded.set()
            resp = await client.get("/api/kpis")
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            assert body["generated_at"] == app.kpis.model_dump(mode="json")["generated_at"]
            resp = await client.get("/readyz")
            assert (resp.status, await resp.json()) == (200, {"status": "ready", "stages": {}})
            resp = await client.get("/api/contacts", params={"kpi": "abandoned", "interval": RANGE})
            assert resp.status == 200
            doc = await resp.json()
            assert doc["total"] == expected["total"] > 0
            resp = await client.get("/api/sql", params={"q": "SELECT 1 AS one"})
            assert (resp.status, (await resp.json())["rows"]) == (200, [[1]])
            for page in ("/metrics", "/wallboard"):
                assert (await client.get(page)).status == 200, page

    asyncio.run(main())
