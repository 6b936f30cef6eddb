"""The worker's HTTP pages besides the wallboard: metrics, health, readiness,
KPIs, agent KPIs and pipeline stats. KPI pages answer 503 in a process that does not own
ClickHouse (the KPIs are computed there)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

import faust
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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


def register_pages(app: WorkerApp) -> None:
    """/metrics, /healthz, /readyz, /api/kpis, /api/agents and /api/stats on the worker's
    web server."""

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
