"""The worker's HTTP pages besides the wallboard: metrics, health, readiness, KPIs, agent
KPIs, pipeline stats, the contacts behind a KPI (`/api/contacts`) and
read-only SQL (`/api/sql`). Pages that need the database answer 503 in a
process that does not own ClickHouse (only one process can open the embedded
one; it serves everyone else).

`/api/contacts` and `/api/sql` show stored contacts (masked text, pseudonymized
ids), so with `VOCFLOW_API_TOKEN` set they want `Authorization: Bearer <token>`
(docs/security.md); the KPI pages stay open for the wallboards."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from typing import Any, TypeVar

import faust
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from vocflow.schemas.api import Dimension, KpiDocument, KpiSet, PipelineStats
from vocflow.sinks.prometheus import metrics
from vocflow.streams.worker import readiness
from vocflow.streams.worker.wiring import WorkerApp

S = TypeVar("S", bound=KpiSet)


def counter_values(counter: Any) -> dict[tuple[str, ...], float]:
    """Label values -> value of a prometheus Counter's `_total` samples."""
    out = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[tuple(sample.labels.values())] = sample.value
    return out


def pipeline_stats(app: WorkerApp) -> PipelineStats:
    """/api/stats without the ClickHouse row counts (the page adds them)."""
    stage_in = counter_values(metrics.STAGE_IN)
    stage_out = counter_values(metrics.STAGE_OUT)
    dlq = counter_values(metrics.DLQ)
    return PipelineStats.model_validate(
        {
            "stages": {
                stage: {
                    "in": int(value),
                    "out": {t: int(v) for (s, t), v in stage_out.items() if s == stage},
                    "dlq": int(sum(v for (s, _), v in dlq.items() if s == stage)),
                }
                for (stage,), value in stage_in.items()
            },
            "dlq_by_reason": {f"{s}/{r}": int(v) for (s, r), v in dlq.items()},
        }
    )


# The dimension a group filter picks when ?by= is not given (first one in the query).
_GROUP_FILTERS: tuple[Dimension, ...] = ("queue", "channel", "department")


def filter_kpis(doc: KpiDocument, query: Mapping[str, str]) -> KpiDocument:
    """?interval=15m|60m|today, ?by=all|queue|channel|department, ?queue=/channel=/department=.

    The same document with fewer intervals, dimensions or groups; ``agents`` as is."""
    wanted_by = query.get("by") or next((d for d in _GROUP_FILTERS if d in query), None)

    def pick(by_map: Mapping[Dimension, S]) -> dict[Dimension, S]:
        out = {}
        for by, kpis in by_map.items():
            if wanted_by in (None, by):
                group = query.get(by)
                out[by] = kpis if group is None else kpis.only({group})
        return out

    return doc.model_copy(
        update={
            "intervals": {
                label: body.model_copy(update={"by": pick(body.by)})
                for label, body in doc.intervals.items()
                if query.get("interval") in (None, label)
            },
            "now": pick(doc.now),
        }
    )


def authorized(headers: Mapping[str, str], token: SecretStr | None) -> bool:
    """No token configured, or ``Authorization: Bearer <token>`` (compared in constant time)."""
    if token is None:
        return True
    given = headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode())


def json_body(body: Any, status: int = 200) -> web.Response:
    """JSON for query results: ClickHouse values (dates, decimals, maps) as text when
    JSON has no type for them."""
    data = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(body=data, status=status, content_type="application/json")


UNAUTHORIZED = {"error": "this page needs Authorization: Bearer <VOCFLOW_API_TOKEN>"}
NOT_OWNER = {
    "error": "this process does not own ClickHouse: ask the worker that runs the sink "
    "(VOCFLOW_SINK_ENABLED=true)"
}


def register_pages(app: WorkerApp) -> None:
    """/metrics, /healthz, /readyz, /api/kpis, /api/agents, /api/stats, /api/contacts and
    /api/sql on the worker's web server."""

    @app.page("/metrics")
    async def prometheus_metrics(self: faust.web.View, request: faust.web.Request) -> Any:
        # aiohttp refuses a charset inside content_type=, so set the header as is.
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(self: faust.web.View, request: faust.web.Request) -> Any:
        return self.json({"status": "ok", "app": app.conf.id})

    @app.page("/readyz")
    async def readyz(self: faust.web.View, request: faust.web.Request) -> Any:
        # The stage loops (app.VocflowApp.loops) exist once the app has started.
        states = [
            await readiness.loop_state(loop.stage, loop.consumer, set(loop.partitions))
            for loop in getattr(app, "loops", [])
        ]
        expected = getattr(app, "stage_names", ())
        if not expected:  # `vocflow sink`: no stages; ready once its views are loaded
            ready = app.views_loaded.is_set()
            return self.json(
                {"status": "ready" if ready else "not_ready", "stages": {}},
                status=200 if ready else 503,
            )
        ready, body = readiness.evaluate(states, app.settings_.ready_max_lag, expected)
        return self.json(body, status=200 if ready else 503)

    @app.page("/api/kpis")
    async def kpis(self: faust.web.View, request: faust.web.Request) -> Any:
        if app.kpis is None:
            return self.json(
                {
                    "error": "KPIs are computed by the process that owns ClickHouse; "
                    "not ready yet or not this process"
                },
                status=503,
            )
        return self.json(filter_kpis(app.kpis, request.query).model_dump())

    from vocflow.sinks.kpi.agent_kpis import AgentApi, QueryError

    agent_api = AgentApi(app.settings_)

    @app.page("/api/agents")
    async def agents(self: faust.web.View, request: faust.web.Request) -> Any:
        store = app.sink.store if app.sink is not None else None
        if store is None:
            return self.json(
                {"error": "agent KPIs are computed by the process that owns ClickHouse"},
                status=503,
            )
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(None, agent_api.answer, store, request.query)
        except QueryError as exc:
            return self.json({"error": str(exc)}, status=400)
        return self.json(body)

    @app.page("/api/stats")
    async def stats(self: faust.web.View, request: faust.web.Request) -> Any:
        body = pipeline_stats(app)
        if app.sink is not None and app.sink.store is not None:
            loop = asyncio.get_running_loop()
            try:
                rows = await loop.run_in_executor(None, app.sink.row_counts)
                body = body.model_copy(update={"clickhouse": rows})
            except Exception as exc:  # stats must answer even when ClickHouse does not
                error = str(exc).strip().splitlines()[0][:300]
                body = body.model_copy(update={"clickhouse_error": error})
        return self.json(body.model_dump())

    from vocflow.sinks.clickhouse.readonly import ReadOnlySql, SqlBusy, SqlFailed, SqlRefused
    from vocflow.sinks.kpi import drilldown

    settings = app.settings_
    runners: dict[str, ReadOnlySql] = {}

    def owned_store() -> Any:
        return app.sink.store if app.sink is not None else None

    @app.page("/api/contacts")
    async def contacts(self: faust.web.View, request: faust.web.Request) -> Any:
        if not authorized(request.headers, settings.api_token):
            return json_body(UNAUTHORIZED, 401)
        store = owned_store()
        if store is None:
            return json_body(NOT_OWNER, 503)
        query = dict(request.query)
        fmt = query.pop("format", "json")
        if fmt not in ("json", "csv"):
            return json_body({"error": "format must be json or csv"}, 400)
        loop = asyncio.get_running_loop()
        try:
            doc = await loop.run_in_executor(None, drilldown.contacts, settings, store, query)
        except drilldown.DrilldownError as exc:
            return json_body({"error": str(exc)}, 400)
        if fmt == "csv":
            name = f"contacts-{doc['list']}-{(doc['interval'] or {}).get('label', 'now')}.csv"
            name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            # A BOM, so that a spreadsheet opens the Chinese text as UTF-8.
            return web.Response(
                body=("\ufeff" + drilldown.to_csv(doc)).encode(),
                content_type="text/csv",
                charset="utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return json_body(doc)

    @app.page("/api/sql")
    class SqlPage(faust.web.View):
        """GET ?q=SELECT... or POST the query (text, or JSON {"sql": ...})."""

        async def get(self, request: faust.web.Request) -> Any:
            return await self.answer(request, request.query.get("q") or "")

        async def post(self, request: faust.web.Request) -> Any:
            raw = await request.text()
            if request.content_type == "application/json":
                try:
                    raw = orjson.loads(raw).get("sql") or ""
                except (orjson.JSONDecodeError, AttributeError):
                    return json_body({"error": 'the JSON body is {"sql": "SELECT ..."}'}, 400)
            return await self.answer(request, raw)

        async def answer(self, request: faust.web.Request, sql: str) -> Any:
            if not authorized(request.headers, settings.api_token):
                return json_body(UNAUTHORIZED, 401)
            store = owned_store()
            if store is None:
                return json_body(NOT_OWNER, 503)
            if "runner" not in runners:
                runners["runner"] = ReadOnlySql(
                    store, settings.sql_max_rows, settings.sql_max_seconds
                )
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(None, runners["runner"].run, sql)
            except (SqlRefused, SqlFailed) as exc:
                return json_body({"error": str(exc)}, 400)
            except SqlBusy as exc:
                return json_body({"error": str(exc)}, 429)
            return json_body(result.to_json())
