"""The Faust application of a worker: settings -> app with its agents, services
and web pages.

Each agent lives in its own module and only wires stage functions to topics
(`worker/wiring.py` holds what they share, including the one error path); the
logic lives in the stages, which are tested without Kafka.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.rules import RuleSet, load_rules
from vocflow.streams.wallboard import register_wallboard
from vocflow.streams.worker import normalize_agent, voc_agent, web
from vocflow.streams.worker.detector_service import DetectorService
from vocflow.streams.worker.facts_agent import FactsAgent
from vocflow.streams.worker.services import PipelineServices
from vocflow.streams.worker.views import ProfileStore, RulesHolder
from vocflow.streams.worker.wiring import raw_topic


class VocflowApp(faust.App):
    """faust.App plus the handles its agents, services and pages share.

    ``sink`` is the in-process ClickHouse sink, or None in a worker that
    leaves the database to `vocflow sink` (then no KPIs, detector or backlog
    here: they run where the database is)."""

    def __init__(
        self, settings: Settings, sink: ClickHouseSink | None = None, rules: RuleSet | None = None
    ) -> None:
        super().__init__(
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
        self.settings_ = settings
        self.sink = sink
        self.rules = RulesHolder(rules or load_rules(settings.rules_path))
        self.profiles = ProfileStore()
        self.views_loaded = asyncio.Event()
        self.kpis: dict[str, Any] | None = None
        self.detector = DetectorService(settings) if sink is not None else None
        self.services: PipelineServices | None = None

        topics = T.Topics(settings)
        dlq = raw_topic(self, topics, T.DLQ)
        normalize_agent.register(self, topics, dlq)
        voc_agent.register(self, topics, dlq)
        self.facts = FactsAgent(self, topics, dlq)
        web.register_pages(self)
        register_wallboard(
            self,
            lambda: self.kpis,
            lambda: self.detector.extras() if self.detector else {"hot_topics": [], "alerts": []},
        )

    async def on_started_init_extra_services(self) -> None:
        """Start the pipeline services with the app's own extra services (the
        hook `@app.service` uses), built here because they need this app."""
        await super().on_started_init_extra_services()
        if self.services is None:
            self.services = PipelineServices(self, loop=self.loop, beacon=self.beacon)
            await self.add_runtime_dependency(self.services)


def create_app(
    settings: Settings, sink: ClickHouseSink | None = None, rules: RuleSet | None = None
) -> VocflowApp:
    """The worker's app (kept as a function: the CLI and tests call it)."""
    return VocflowApp(settings, sink, rules)
