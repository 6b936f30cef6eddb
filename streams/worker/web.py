"""The worker's HTTP pages besides the wallboard: metrics, health, KPIs, agent
KPIs and pipeline stats. KPI pages answer 503 in a process that does not own
ClickHouse (the KPIs are computed there)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vocflow.sinks.prometheus import metrics
from vocflow.streams.worker.wiring import WorkerApp


def counter_values(counter: Any) -> dict[tuple[str, ...], float]:
    """Label values -> value of a prometheus Counter's `_total` samples."""
    out = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[tuple(sample.labels.values())] = sample.value
    return out


def pipeline_stats(app: WorkerApp) -> dict[str, Any]:
    stage_in = counter_values(metrics.STAGE_IN)
    stage_out = counter_values(metrics.STAGE_OUT)
    dlq = counter_values(metrics.DLQ)
    return {
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


def filter_kpis(doc: dict[str, Any], query: Any) -> dict[str, Any]:
    """?interval=15m|60m|today, ?by=all|queue|channel|department, ?queue=/channel=/department=."""
    intervals = {k: v for k, v in doc["intervals"].items() if query.get("interval") in (None, k)}
    dims = {"queue", "channel", "department"}
    wanted_by = query.get("by") or next((d for d in dims if d in query), None)

    def keep_groups(by: str, names: dict[str, Any]) -> dict[str, Any]:
        value = query.get(by)
        if value is None:
            return names
        return {n: {g: k for g, k in groups.items() if g == value} for n, groups in names.items()}

    def pick(by_map: dict[str, Any]) -> dict[str, Any]:
        return {
            by: keep_groups(by, names) for by, names in by_map.items() if wanted_by in (None, by)
        }

    return {
        **doc,
        "intervals": {k: {**v, "by": pick(v["by"])} for k, v in intervals.items()},
        "now": pick(doc["now"]),
    }


def register_pages(app: WorkerApp) -> None:
    """/metrics, /healthz, /api/kpis, /api/agents and /api/stats on the worker's web server."""
    @app.page("/metrics")
    async def prometheus_metrics(self: faust.web.View, request: faust.web.Request) -> Any:
        # aiohttp refuses a charset inside content_type=, so set the header as is.
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(self: faust.web.View, request: faust.web.Request) -> Any:
        return self.json({"status": "ok", "app": app.conf.id})

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
        return self.json(filter_kpis(app.kpis, request.query))

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
                body["clickhouse"] = await loop.run_in_executor(None, app.sink.row_counts)
            except Exception as exc:  # stats must answer even when ClickHouse does not
                body["clickhouse_error"] = str(exc).strip().splitlines()[0][:300]
        return self.json(body)
