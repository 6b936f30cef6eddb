"""The Faust application of a worker: settings -> app with its agents, services
and web pages.

Each agent lives in its own module and only wires stage functions to topics
(`worker/wiring.py` holds what they share: the app's handles and the one error
path); the logic lives in the stages, which are tested without Kafka.
"""

from __future__ import annotations

from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.rules import RuleSet
from vocflow.streams.wallboard import register_wallboard
from vocflow.streams.worker import normalize_agent, web
from vocflow.streams.worker.facts_agent import FactsAgent
from vocflow.streams.worker.services import PipelineServices
from vocflow.streams.worker.voc_loop import VocLoop
from vocflow.streams.worker.wiring import WorkerApp, raw_topic


class VocflowApp(WorkerApp):
    """The worker: two Faust agents (normalize, facts) and the transactional voc
    loop on their topics, the services beside them (views, sink, KPI refresh,
    detector, pollers) and the web pages."""

    def __init__(
        self, settings: Settings, sink: ClickHouseSink | None = None, rules: RuleSet | None = None
    ) -> None:
        super().__init__(settings, sink, rules)
        self.services: PipelineServices | None = None
        self.voc: VocLoop | None = None
        topics = self.topics_ = T.Topics(settings)
        dlq = raw_topic(self, topics, T.DLQ)
        normalize_agent.register(self, topics, dlq)
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
        if self.voc is None:
            self.voc = VocLoop(self, self.topics_, loop=self.loop, beacon=self.beacon)
            await self.add_runtime_dependency(self.voc)


def create_app(
    settings: Settings, sink: ClickHouseSink | None = None, rules: RuleSet | None = None
) -> VocflowApp:
    """The worker's app (kept as a function: the CLI and tests call it)."""
    return VocflowApp(settings, sink, rules)
