"""/api/contacts and /api/sql on the worker's web server: the documents, CSV,
the bearer token, the statuses a caller can cause, and 503 where no database is."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.kpi.test_kpi_sql import DAY, contacts, fold_with_deltas, store_facts
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.kpi import drilldown
from vocflow.streams.core.settings import Settings
from vocflow.streams.worker.web import register_pages

TOKEN = "t0ken-for-tests"
RANGE = f"{DAY:%Y-%m-%d}T00:00..{DAY + timedelta(days=2):%Y-%m-%d}T00:00"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.clock


def serve(
    check: Callable[[TestClient], Awaitable[None]],
    store: ClickHouseStore | None,
    settings: Settings,
) -> None:
    app: Any = faust.App("web-data-test", broker="memory://", store="memory://", autodiscover=False)
    app.kpis, app.settings_ = None, settings
    app.sink = None if store is None else SimpleNamespace(store=store)
    register_pages(app)

    async def main() -> None:
        async with TestClient(TestServer(app.web.web_app)) as client:
            await check(client)

    asyncio.run(main())


@pytest.fixture()
def loaded(store: ClickHouseStore) -> ClickHouseStore:
    s = contacts(7, 1_500)
    store_facts(store, fold_with_deltas(s.events, s.annotations)[1], random.Random(7))
    return store


def test_contacts_json_and_csv(loaded: ClickHouseStore) -> None:
    settings = Settings()
    expected = drilldown.contacts(settings, loaded, {"kpi": "abandoned", "interval": RANGE})

    async def check(client: TestClient) -> None:
        resp = await client.get("/api/contacts", params={"kpi": "abandoned", "interval": RANGE})
        assert resp.status == 200
        doc = await resp.json()
        assert doc["total"] == expected["total"] == len(doc["contacts"]) > 0
        assert doc["kpi"] == "abandonment_ratio" and doc["part"] == "numerator"
        assert doc["kpi_totals"]["numerator"] == doc["total"]
        params = {"kpi": "abandoned", "interval": RANGE, "format": "csv", "limit": "3"}
        resp = await client.get("/api/contacts", params=params)
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert 'filename="contacts-abandoned-' in resp.headers["Content-Disposition"]
        text = (await resp.read()).decode("utf-8")
        assert text.startswith("\ufeffcontact_id,arrival_at,")
        assert len(text.splitlines()) == 4
        resp = await client.get("/api/contacts", params={"kpi": "abandoned", "interval": "5m"})
        assert resp.status == 400
        assert "interval must be 15m, 60m, today" in (await resp.json())["error"]
        resp = await client.get("/api/contacts", params={"kpi": "abandoned", "format": "xml"})
        assert resp.status == 400

    serve(check, loaded, settings)


def test_sql_answers_rows_and_refuses_with_reasons(store: ClickHouseStore) -> None:
    settings = Settings(sql_max_rows=3)

    async def check(client: TestClient) -> None:
        resp = await client.get("/api/sql", params={"q": "SELECT number AS n FROM numbers(10)"})
        assert resp.status == 200
        assert await resp.json() == {
            "columns": ["n"],
            "types": ["UInt64"],
            "rows": [[0], [1], [2]],
            "row_count": 3,
            "truncated": True,
            "elapsed_ms": (await resp.json())["elapsed_ms"],
        }
        resp = await client.post("/api/sql", data="SELECT toDate('2026-12-07') AS d, 1.5 AS x")
        assert (await resp.json())["rows"] == [["2026-12-07", 1.5]]
        resp = await client.post("/api/sql", json={"sql": "SELECT count() AS c FROM contact_facts"})
        assert (await resp.json())["rows"] == [[0]]  # the configured database is the default
        resp = await client.post("/api/sql", data="DROP TABLE contact_facts")
        assert resp.status == 400
        assert (
            "only SELECT (or WITH ... SELECT) is served here, not DROP"
            in (await resp.json())["error"]
        )
        resp = await client.post("/api/sql", data="SELECT * FROM nope")
        assert resp.status == 400
        assert (await resp.json())["error"].startswith("ClickHouse refused the query: ")
        resp = await client.post(
            "/api/sql", data="[1", headers={"Content-Type": "application/json"}
        )
        assert resp.status == 400

    serve(check, store, settings)


def test_the_token_guards_contacts_and_sql(store: ClickHouseStore) -> None:
    settings = Settings(api_token=TOKEN)

    async def check(client: TestClient) -> None:
        for path, params in (("/api/sql", {"q": "SELECT 1"}), ("/api/contacts", {"kpi": "x"})):
            resp = await client.get(path, params=params)
            assert resp.status == 401, path
            wrong = {"Authorization": "Bearer nope"}
            assert (await client.get(path, params=params, headers=wrong)).status == 401
            assert (await client.get(path, params=params, headers=BEARER)).status in (200, 400)
        resp = await client.get("/api/sql", params={"q": "SELECT 1 AS one"}, headers=BEARER)
        assert (await resp.json())["rows"] == [[1]]

    serve(check, store, settings)


def test_a_process_without_the_database_says_where_it_is() -> None:
    async def check(client: TestClient) -> None:
        for path in ("/api/sql?q=SELECT%201", "/api/contacts?kpi=abandoned"):
            resp = await client.get(path)
            assert resp.status == 503
            assert "does not own ClickHouse" in (await resp.json())["error"]

    serve(check, None, Settings())
