"""The worker's /api/kpis and /api/stats pages: `filter_kpis` on the typed document,
with exact expected values, and the bytes the pages answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from faust.utils import json as faust_json

from tests.unit.schemas.test_api import SETTINGS, small_document
from vocflow.schemas.api import IntervalKpis, KpiDocument, PipelineStats
from vocflow.sinks.prometheus import metrics
from vocflow.streams.worker.web import filter_kpis, pipeline_stats, register_pages

NO_INTERVAL_KPIS = {n: {} for n in IntervalKpis.model_fields}
NO_NOW_KPIS = {"queue_depth": {}, "oldest_waiting_seconds": {}, "backlog": {}}


def kv(value: float | None, numerator: int, denominator: int) -> dict[str, Any]:
    return {"value": value, "numerator": numerator, "denominator": denominator}


def wire(doc: KpiDocument) -> dict[str, Any]:
    return orjson.loads(faust_json.dumps(doc.model_dump()))


def test_no_query_is_the_document_itself() -> None:
    doc = small_document()
    assert filter_kpis(doc, {}) == doc
    assert faust_json.dumps(filter_kpis(doc, {}).model_dump()) == faust_json.dumps(doc.model_dump())


def test_a_queue_keeps_that_queue_in_every_interval_and_now() -> None:
    doc = small_document()
    before = faust_json.dumps(doc.model_dump())
    out = wire(filter_kpis(doc, {"interval": "15m", "queue": "tech_q"}))
    assert faust_json.dumps(doc.model_dump()) == before  # the shared document is untouched
    assert out == {
        **wire(doc),
        "intervals": {
            "15m": {
                "start": "2025-03-10T02:00:00+00:00",
                "end": "2025-03-10T02:15:00+00:00",
                "by": {
                    "queue": {
                        **NO_INTERVAL_KPIS,
                        "service_level_ratio": {"tech_q": kv(0.5, 2, 4)},
                    }
                },
            }
        },
        "now": {"queue": {**NO_NOW_KPIS, "queue_depth": {"tech_q": kv(1.0, 1, 1)}}},
    }
    assert list(out) == list(wire(doc))  # key order of the document
    assert out["agents"] == wire(doc)["agents"]  # agents are never filtered


def test_by_keeps_one_dimension_with_all_its_groups() -> None:
    out = wire(filter_kpis(small_document(), {"by": "all"}))
    assert list(out["intervals"]) == ["15m", "60m", "today"]
    for section in out["intervals"].values():
        assert list(section["by"]) == ["all"]
        assert section["by"]["all"]["service_level_ratio"] == {"_all": kv(0.7, 7, 10)}
        assert section["by"]["all"]["csat_ratio"] == {"_all": kv(None, 0, 0)}
        assert section["by"]["all"]["nps"] == {"_all": kv(-33.333333333333336, -1, 3)}
    assert out["now"] == {"all": {**NO_NOW_KPIS, "queue_depth": {"_all": kv(3.0, 3, 1)}}}
    department = wire(filter_kpis(small_document(), {"by": "department", "interval": "today"}))
    assert department["intervals"]["today"]["by"] == {"department": NO_INTERVAL_KPIS}
    assert department["now"] == {"department": NO_NOW_KPIS}


def test_group_filters_of_the_query() -> None:
    doc = small_document()
    # ?by= and a group of that dimension
    out = wire(filter_kpis(doc, {"by": "queue", "queue": "billing_q", "interval": "60m"}))
    assert out["intervals"]["60m"]["by"] == {
        "queue": {**NO_INTERVAL_KPIS, "service_level_ratio": {"billing_q": kv(5 / 6, 5, 6)}}
    }
    assert out["now"] == {
        "queue": {
            "queue_depth": {"billing_q": kv(2.0, 2, 1)},
            "oldest_waiting_seconds": {"billing_q": kv(95.4, 95400, 1)},
            "backlog": {},
        }
    }
    # two group filters and no ?by=: the first dimension of queue, channel, department
    two = wire(filter_kpis(doc, {"channel": "phone", "queue": "tech_q", "interval": "15m"}))
    assert list(two["intervals"]["15m"]["by"]) == ["queue"] and list(two["now"]) == ["queue"]
    phone = wire(filter_kpis(doc, {"channel": "phone", "interval": "15m"}))
    assert phone["intervals"]["15m"]["by"] == {
        "channel": {**NO_INTERVAL_KPIS, "contacts": {"phone": kv(12.0, 12, 1)}}
    }
    # unknown values select nothing, and still answer a document of the same shape
    none = wire(filter_kpis(doc, {"queue": "no_such_q", "interval": "bogus"}))
    assert none["intervals"] == {}
    assert none["now"] == {"queue": NO_NOW_KPIS}
    nothing = wire(filter_kpis(doc, {"by": "floor"}))
    assert [s["by"] for s in nothing["intervals"].values()] == [{}, {}, {}]
    assert nothing["now"] == {}


def serve(check: Callable[[TestClient], Awaitable[None]], kpis: KpiDocument | None = None) -> None:
    """The pages on a bare Faust app with the handles they read."""
    app: Any = faust.App("web-test", broker="memory://", store="memory://", autodiscover=False)
    app.kpis, app.sink, app.settings_ = kpis, None, SETTINGS
    register_pages(app)

    async def main() -> None:
        async with TestClient(TestServer(app.web.web_app)) as client:
            await check(client)

    asyncio.run(main())


def test_the_kpi_page_answers_the_filtered_document_as_json() -> None:
    doc = small_document()

    async def check(client: TestClient) -> None:
        resp = await client.get("/api/kpis")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert await resp.read() == faust_json.dumps(doc.model_dump())
        resp = await client.get("/api/kpis?interval=today&queue=tech_q")
        query = {"interval": "today", "queue": "tech_q"}
        assert await resp.read() == faust_json.dumps(filter_kpis(doc, query).model_dump())

    serve(check, doc)


def test_the_kpi_page_is_503_before_the_first_round() -> None:
    async def check(client: TestClient) -> None:
        resp = await client.get("/api/kpis")
        assert resp.status == 503
        assert "owns ClickHouse" in (await resp.json())["error"]

    serve(check, None)


def test_stats_come_from_the_stage_counters() -> None:
    metrics.STAGE_IN.labels("webtest").inc(3)
    metrics.STAGE_OUT.labels("webtest", "webtest.out").inc(2)
    metrics.DLQ.labels("webtest", "invalid_json").inc()
    stats = pipeline_stats(cast(Any, None))
    assert isinstance(stats, PipelineStats)
    assert stats.model_dump()["stages"]["webtest"] == {
        "in": 3,
        "out": {"webtest.out": 2},
        "dlq": 1,
    }
    assert stats.dlq_by_reason["webtest/invalid_json"] == 1

    async def check(client: TestClient) -> None:
        resp = await client.get("/api/stats")
        assert resp.status == 200
        body = await resp.json()
        assert body["stages"]["webtest"] == {"in": 3, "out": {"webtest.out": 2}, "dlq": 1}
        assert "clickhouse" not in body and "clickhouse_error" not in body  # no sink here

    serve(check)


@pytest.mark.parametrize("query", [{}, {"interval": "15m"}, {"by": "queue", "queue": "tech_q"}])
def test_filtered_documents_are_valid_documents(query: dict[str, str]) -> None:
    out = filter_kpis(small_document(), query)
    assert KpiDocument.model_validate_json(faust_json.dumps(out.model_dump())) == out
