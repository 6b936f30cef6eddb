"""The Faust application: settings -> app, topics and agents, web pages.

Agents only wire stage functions (normalize, ...) to topics and count what
passes; the logic lives in the stages, which are tested without Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import faust
import orjson
from aiohttp import web
from faust.types import EventT
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vocflow.schemas import ContactEvent, FieldError, Reason, RoutingEnvelope, SourceRef
from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
from vocflow.sinks.kpi import backlog
from vocflow.sinks.kpi import service as kpi_service
from vocflow.sinks.prometheus import metrics
from vocflow.sinks.prometheus.lag import LagMonitor
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings, fold_config, kpi_targets
from vocflow.streams.kpi.contributions import delta as kpi_delta
from vocflow.streams.kpi.fold import annotate, fold
from vocflow.streams.kpi.models import HOUR_MS, ContactFact
from vocflow.streams.stages.normalize import STAGE as NORMALIZE
from vocflow.streams.stages.normalize import dead_letter, normalize
from vocflow.streams.stages.routing import (
    STAGE as ROUTE,
)
from vocflow.streams.stages.routing import LastIssue, carries_voc_text
from vocflow.streams.stages.rules import RuleSet, load_rules
from vocflow.streams.stages.voc import analyse_and_route
from vocflow.streams.wallboard import register_wallboard
from vocflow.streams.worker.detector_service import DetectorService
from vocflow.streams.worker.eviction import LAST_ACTIVITY, idle_facts
from vocflow.streams.worker.views import CompactedView, ProfileStore, RulesHolder

T_ = TypeVar("T_")
log = logging.getLogger(__name__)

LAG_POLL_SECONDS = 10.0
FACTS_STAGE = "facts"
BACKLOG_POLL_SECONDS = 15.0
FACT_EVICTION_SECONDS = 300.0
ROUTED_MEMORY = timedelta(days=1)  # a contact longer than this may be routed twice


def _raw_topic(app: faust.App, topics: T.Topics, spec: T.TopicSpec) -> faust.TopicT:
    """Values stay bytes: stages parse and serialize themselves (pydantic + orjson)."""
    return app.topic(
        topics.name(spec),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=topics.partitions(spec),
    )


def source_of(event: EventT) -> SourceRef:
    msg = event.message
    key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else msg.key
    return SourceRef(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=int(msg.timestamp * 1000) if msg.timestamp else None,
        key=key,
    )


class VocflowApp(faust.App):
    """faust.App plus the handles the web pages and services need."""

    settings_: Settings
    sink: ClickHouseSink | None
    rules: RulesHolder
    profiles: ProfileStore
    views_loaded: asyncio.Event
    kpis: dict[str, Any] | None
    detector: DetectorService | None
    evict_idle_facts: Callable[[], Awaitable[int]]


def create_app(
    settings: Settings, sink: ClickHouseSink | None = None, rules: RuleSet | None = None
) -> VocflowApp:
    app = VocflowApp(
        settings.app_id,
        **kafka_clients.faust_broker(settings),
        store="memory://",
        autodiscover=False,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Batch sends a little: per-record requests with acks=all starve the agent.
        producer_linger=0.005,
        broker_commit_interval=1.0,
    )
    app.settings_ = settings
    app.sink = sink
    app.rules = RulesHolder(rules or load_rules(settings.rules_path))
    app.profiles = ProfileStore()
    app.views_loaded = asyncio.Event()
    app.kpis = None
    topics = T.Topics(settings)
    raw = _raw_topic(app, topics, T.RAW)
    events_out = _raw_topic(app, topics, T.EVENTS)
    voc_out = _raw_topic(app, topics, T.VOC)
    dlq = _raw_topic(app, topics, T.DLQ)

    @app.agent(raw, name="normalize")
    async def normalize_agent(stream: faust.StreamT) -> None:
        stage_in = metrics.STAGE_IN.labels(NORMALIZE)
        out_ok = metrics.STAGE_OUT.labels(NORMALIZE, T.EVENTS.name)
        out_voc = metrics.STAGE_OUT.labels(NORMALIZE, T.VOC.name)
        async for event in stream.events():
            stage_in.inc()
            raw_value = event.value or b""
            source = source_of(event)
            try:
                result = normalize(raw_value, source, settings.max_event_bytes)
            except Exception as exc:  # a stage bug must not stop the pipeline
                log.exception(
                    "normalize failed on %s[%d]@%d", source.topic, source.partition, source.offset
                )
                result = dead_letter(
                    raw_value,
                    source,
                    Reason.processing_error,
                    [FieldError(loc="", type=type(exc).__name__, msg=str(exc)[:500])],
                )
            if isinstance(result, ContactEvent):
                body = result.model_dump_json().encode()
                await events_out.send(key=result.contact_id.encode(), value=body)
                out_ok.inc()
                if carries_voc_text(result.event_type, result.text):
                    # Keyed by customer so repeat detection is partition-local;
                    # stamped with event time so the windowed tables use it.
                    await voc_out.send(
                        key=(result.customer_id or result.contact_id).encode(),
                        value=body,
                        timestamp=result.occurred_at.timestamp(),
                    )
                    out_voc.inc()
            else:
                await dlq.send(key=event.message.key, value=result.model_dump_json().encode())
                metrics.DLQ.labels(NORMALIZE, result.reason.value).inc()

    _register_voc_agent(app, settings, topics, dlq)
    _register_facts_agent(app, settings, topics)
    app.detector = DetectorService(settings) if sink is not None else None
    _register_pages(app)
    register_wallboard(
        app,
        lambda: app.kpis,
        lambda: app.detector.extras() if app.detector else {"hot_topics": [], "alerts": []},
    )
    _register_services(app, settings, topics)
    return app


def _register_facts_agent(app: VocflowApp, settings: Settings, topics: T.Topics) -> None:
    """contacts.events + contacts.routed -> one fact per contact -> contacts.facts (on change).

    Both inputs are keyed by contact_id with the same partition count, so a
    contact's events and its routing decision meet in the same table partition.
    The routing decision adds the department and category the fact needs for
    per-department KPIs and the repeat-based FCR."""
    routed_name = topics.name(T.ROUTED)
    facts_in = app.topic(
        topics.name(T.EVENTS),
        routed_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    facts_out = _raw_topic(app, topics, T.FACTS)
    facts = app.Table("contact-facts", default=dict, partitions=settings.partitions)
    config = fold_config(settings)
    targets = kpi_targets(settings)

    def step(topic: str, value: bytes) -> tuple[str, ContactFact | None, ContactFact | None]:
        if topic == routed_name:
            r = RoutingEnvelope.model_validate_json(value)
            stored = facts[r.contact_id]
            previous = ContactFact.from_dict(stored) if stored else None
            updated = annotate(
                previous or ContactFact(r.contact_id),
                department=r.department,
                category=r.tags.category.value,
                sentiment=r.sentiment,
                repeat=r.repeat_contact,
            )
            return r.contact_id, previous, updated
        e = ContactEvent.model_validate_json(value)
        stored = facts[e.contact_id]
        previous = ContactFact.from_dict(stored) if stored else None
        return e.contact_id, previous, fold(previous, e, config)

    newest = [0]  # latest event time folded (ms): the clock of eviction
    ttl_ms = round(settings.facts_ttl_hours * HOUR_MS)
    events_name, partitions = topics.name(T.EVENTS), topics.partitions(T.EVENTS)

    async def evict_idle_facts() -> int:
        """One eviction round; a failure is logged, never fatal (it is upkeep)."""
        if not newest[0]:
            return 0
        try:
            active = {
                tp.partition for tp in app.assignor.assigned_actives() if tp.topic == events_name
            }
            idle = idle_facts(list(facts.data.items()), newest[0] - ttl_ms, partitions, active)
            for key, partition in idle:
                facts.data.pop(key, None)
                facts.send_changelog(partition, key, None)
        except Exception:
            log.exception("facts: eviction round failed; retried in %.0f s", FACT_EVICTION_SECONDS)
            return 0
        metrics.FACTS_EVICTED.inc(len(idle))
        metrics.FACTS_HELD.set(len(facts.data))
        return len(idle)

    app.evict_idle_facts = evict_idle_facts
    app.timer(interval=FACT_EVICTION_SECONDS)(evict_idle_facts)

    @app.agent(facts_in, name="facts")
    async def facts_agent(stream: faust.StreamT) -> None:
        stage_in = metrics.STAGE_IN.labels(FACTS_STAGE)
        out = metrics.STAGE_OUT.labels(FACTS_STAGE, T.FACTS.name)
        async for event in stream.events():
            stage_in.inc()
            try:
                contact_id, previous, updated = step(event.message.topic, event.value or b"")
            except Exception:  # a stage bug must not stop the pipeline; the event is in Kafka
                log.exception("facts: fold failed at %s", source_of(event).offset)
                continue
            if updated is None:
                continue  # duplicate or no material change
            body = updated.to_dict()
            last = updated.last_activity_ms
            body[LAST_ACTIVITY] = last
            facts[contact_id] = body
            if last is None:
                continue  # routed before any of its events folded: nothing to count yet
            newest[0] = max(newest[0], last)
            # A copy: the table may serialize `body` for its changelog later.
            message = {k: v for k, v in body.items() if k != LAST_ACTIVITY}
            message["kpi_deltas"] = [
                [*key, counters] for key, counters in kpi_delta(previous, updated, targets)
            ]
            await facts_out.send(key=contact_id.encode(), value=orjson.dumps(message))
            out.inc()


def _register_voc_agent(
    app: VocflowApp, settings: Settings, topics: T.Topics, dlq: faust.TopicT
) -> None:
    """contacts.voc -> enrich -> tag -> repeat check -> route -> dept.<department>."""
    voc_in = _raw_topic(app, topics, T.VOC)
    routed_out = _raw_topic(app, topics, T.ROUTED)
    window = timedelta(hours=settings.repeat_window_hours)
    # Windowed by event time so both tables forget on their own (expires).
    recent = app.Table("voc-recent-issues", default=dict, partitions=settings.partitions).tumbling(
        window, expires=window * 2
    )
    routed = app.Table("voc-routed-contacts", default=str, partitions=settings.partitions).tumbling(
        ROUTED_MEMORY, expires=ROUTED_MEMORY * 2
    )
    department_topics: dict[str, faust.TopicT] = {}

    async def department_topic(department: str) -> faust.TopicT:
        if department not in department_topics:
            from vocflow.streams.core.admin import ensure_topics

            spec = T.department_spec(department)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, ensure_topics, settings, (spec,))
            department_topics[department] = _raw_topic(app, topics, spec)
        return department_topics[department]

    def last_of(window_set: Any, delta: timedelta) -> Any:
        return window_set.current() or window_set.delta(delta)

    @app.agent(voc_in, name="voc")
    async def voc_agent(stream: faust.StreamT) -> None:
        await app.views_loaded.wait()
        stage_in = metrics.STAGE_IN.labels(ROUTE)
        async for event in stream.events():
            stage_in.inc()
            raw_value = event.value or b""
            try:
                e = ContactEvent.model_validate_json(raw_value)
                result = analyse_and_route(
                    e,
                    app.profiles,
                    app.rules.current,
                    datetime.now(UTC),
                    last_issue=lambda key: LastIssue.from_json(last_of(recent[key], window)),
                    already_routed=bool(last_of(routed[e.contact_id], ROUTED_MEMORY)),
                    window=window,
                )
                for kind, n in result.contact.analysis.pii_masked.items():
                    metrics.PII_MASKED.labels(kind).inc(n)
                if result.previous_contact_id is not None:
                    metrics.REPEATS.inc()
                if result.repeat_key is not None:
                    recent[result.repeat_key] = result.last_issue.to_json()
                envelope = result.envelope
                if envelope is None:
                    continue  # the contact's department already has it
                body = envelope.model_dump_json().encode()
                out = await department_topic(envelope.department)
                await out.send(key=e.contact_id.encode(), value=body)
                await routed_out.send(key=e.contact_id.encode(), value=body)
                routed[e.contact_id] = envelope.department
                metrics.ROUTED.labels(envelope.department, envelope.tags.urgency.value).inc()
                metrics.STAGE_OUT.labels(ROUTE, "dept").inc()
            except Exception as exc:  # a stage bug must not stop the pipeline
                source = source_of(event)
                log.exception(
                    "voc failed on %s[%d]@%d", source.topic, source.partition, source.offset
                )
                letter = dead_letter(
                    raw_value,
                    source,
                    Reason.processing_error,
                    [FieldError(loc="", type=type(exc).__name__, msg=str(exc)[:500])],
                    stage=ROUTE,
                )
                await dlq.send(key=event.message.key, value=letter.model_dump_json().encode())
                metrics.DLQ.labels(ROUTE, Reason.processing_error.value).inc()


def _register_services(app: VocflowApp, settings: Settings, topics: T.Topics) -> None:
    sink = app.sink

    class PipelineServices(Service):
        """Runs the ClickHouse sink (when in-process) and the lag poller beside the agents."""

        def __post_init__(self) -> None:
            self.views: list[CompactedView] = []
            # Rounds running on executor threads against the ClickHouse store:
            # stopping waits for them before the sink closes the store.
            self.store_rounds: set[asyncio.Future[Any]] = set()
            self.closing = False

        async def on_store(self, fn: Callable[..., T_], *args: Any) -> T_:
            """Run ``fn(*args)`` on a thread, tracked so `on_stop` can wait for it."""
            if self.closing:
                raise RuntimeError("stopping: the ClickHouse store is closing")
            future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
            self.store_rounds.add(future)
            try:
                return await future
            finally:
                self.store_rounds.discard(future)

        async def on_start(self) -> None:
            if sink is not None:
                await sink.start()
            bootstrap = settings.bootstrap_servers
            self.views = [
                CompactedView(bootstrap, topics.name(T.PROFILES), app.profiles.on_record),
                CompactedView(bootstrap, topics.name(T.RULES), app.rules.on_record),
            ]
            for view in self.views:
                await view.start()
            for view in self.views:
                await view.loaded.wait()
            app.views_loaded.set()
            if app.detector is not None:
                await app.detector.start()
            metrics.UP.set(1)

        async def on_stop(self) -> None:
            metrics.UP.set(0)
            self.closing = True
            for view in self.views:
                await view.stop()
            if app.detector is not None:
                await app.detector.stop()
            if self.store_rounds:
                await asyncio.wait(self.store_rounds)
            if sink is not None:
                await sink.stop()

        @Service.task
        async def _refresh_kpis(self) -> None:
            if sink is None:
                return
            loop = asyncio.get_running_loop()
            pause = settings.kpi_refresh_seconds
            while not self.should_stop:
                await self.sleep(pause)
                if self.closing:
                    return
                started = loop.time()
                try:
                    app.kpis = await self.on_store(kpi_service.refresh, settings, sink.store)
                except Exception as exc:  # advisory: log and retry next round
                    log.warning("KPI refresh failed: %s", str(exc).splitlines()[0][:300])
                # A big day makes a round expensive: never spend more than a third
                # of the time (and of the ClickHouse lock) recomputing KPIs.
                pause = max(settings.kpi_refresh_seconds, 2 * (loop.time() - started))

        @Service.task
        async def _poll_backlog(self) -> None:
            if sink is None:
                return
            while not self.should_stop:
                await self.sleep(BACKLOG_POLL_SECONDS)
                if self.closing:
                    return
                departments = set(app.rules.current.departments)
                try:
                    await self.on_store(
                        backlog.update_gauges, sink.store, departments, datetime.now(UTC)
                    )
                except Exception as exc:  # advisory: log and retry next round
                    log.warning("backlog poll failed: %s", str(exc).splitlines()[0][:200])

        @Service.task
        async def _poll_lag(self) -> None:
            groups = {
                settings.app_id: [topics.name(T.RAW), topics.name(T.VOC), topics.name(T.EVENTS)]
            }
            if sink is not None:
                groups[sink.group_id] = [topics.name(t.source) for t in sink.tables]
            monitor = LagMonitor(settings.bootstrap_servers, groups)
            loop = asyncio.get_running_loop()
            try:
                while not self.should_stop:
                    await loop.run_in_executor(None, monitor.poll)
                    await self.sleep(LAG_POLL_SECONDS)
            finally:
                monitor.close()

    app.service(PipelineServices)


def counter_values(counter: Any) -> dict[tuple[str, ...], float]:
    """Label values -> value of a prometheus Counter's `_total` samples."""
    out = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[tuple(sample.labels.values())] = sample.value
    return out


def pipeline_stats(app: VocflowApp) -> dict[str, Any]:
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


def _register_pages(app: VocflowApp) -> None:
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
