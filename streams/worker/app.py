"""The Faust application of a worker: settings -> app with its stages, services
and web pages.

The three stages (normalize, voc, facts) are exactly-once transactional loops
(`worker/txloop.py`), each in its own module, wiring stage functions to topics;
the logic lives in the stages, which are tested without Kafka. Faust stays the
application framework: app, web pages, timers, services and the worker's
lifecycle.
"""

from __future__ import annotations

import logging
import os
import threading

from mode import Service

from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.rules import RuleSet
from vocflow.streams.wallboard import register_wallboard
from vocflow.streams.worker import web
from vocflow.streams.worker.facts_loop import FactsLoop
from vocflow.streams.worker.normalize_loop import NormalizeLoop
from vocflow.streams.worker.services import PipelineServices
from vocflow.streams.worker.txloop import TxLoop
from vocflow.streams.worker.voc_loop import VocLoop
from vocflow.streams.worker.wiring import WorkerApp

log = logging.getLogger(__name__)

STAGE_LOOPS: tuple[type[TxLoop], ...] = (NormalizeLoop, VocLoop, FactsLoop)  # type: ignore[type-arg]

# Faust's own consumer subscribes to nothing now (the stages are our loops), and
# after a broker restart its thread was seen never to stop, holding the process
# past SIGTERM until the supervisor's SIGKILL (the broker-restart fault test).
EXIT_GRACE_S = 15.0


class ExitGuard(Service):
    """Stopped after every stage loop and service of ours (it is added before them
    and mode stops children in reverse order): from then on nothing of vocflow's
    holds data, and Faust gets `EXIT_GRACE_S` to finish its own shutdown before
    the process exits anyway (exit code 0: everything of ours stopped cleanly)."""

    async def on_stop(self) -> None:
        def exit_now() -> None:
            log.warning(
                "Faust's shutdown did not finish %.0f s after the pipeline stopped; exiting",
                EXIT_GRACE_S,
            )
            logging.shutdown()
            os._exit(0)

        timer = threading.Timer(EXIT_GRACE_S, exit_now)
        timer.daemon = True
        timer.start()


class VocflowApp(WorkerApp):
    """The worker: the normalize, voc and facts loops, the services beside them
    (views, sink, KPI refresh, detector, pollers) and the web pages.

    With no stage loops (`create_sink_app`) it is `vocflow sink`: the same
    services and pages around the sink, so that a deployment of workers without
    the sink still has one process computing KPIs and answering the API."""

    def __init__(
        self,
        settings: Settings,
        sink: ClickHouseSink | None = None,
        rules: RuleSet | None = None,
        stage_loops: tuple[type[TxLoop], ...] = STAGE_LOOPS,  # type: ignore[type-arg]
    ) -> None:
        super().__init__(settings, sink, rules)
        self.services: PipelineServices | None = None
        self.exit_guard: ExitGuard | None = None
        self.stage_loops = stage_loops
        self.loops: list[TxLoop] = []  # type: ignore[type-arg]
        self.stage_names = tuple(kind.stage for kind in stage_loops)  # what /readyz waits for
        self.topics_ = T.Topics(settings)
        web.register_pages(self)
        register_wallboard(
            self,
            lambda: self.kpis,
            lambda: self.detector.extras() if self.detector else {"hot_topics": [], "alerts": []},
        )

    async def on_started_init_extra_services(self) -> None:
        """Start the pipeline services and the stage loops with the app's own extra
        services (the hook `@app.service` uses), built here because they need this app."""
        await super().on_started_init_extra_services()
        if self.exit_guard is None:
            self.exit_guard = ExitGuard(loop=self.loop, beacon=self.beacon)
            await self.add_runtime_dependency(self.exit_guard)
        if self.services is None:
            self.services = PipelineServices(self, loop=self.loop, beacon=self.beacon)
            await self.add_runtime_dependency(self.services)
        if not self.loops:
            for kind in self.stage_loops:
                stage = kind(self, self.topics_, loop=self.loop, beacon=self.beacon)
                self.loops.append(stage)
                await self.add_runtime_dependency(stage)


def create_app(
    settings: Settings, sink: ClickHouseSink | None = None, rules: RuleSet | None = None
) -> VocflowApp:
    """The worker's app (kept as a function: the CLI and tests call it)."""
    return VocflowApp(settings, sink, rules)


def create_sink_app(
    settings: Settings, sink: ClickHouseSink, rules: RuleSet | None = None
) -> VocflowApp:
    """`vocflow sink`: the sink with the services of the process that owns ClickHouse
    (KPI round, detector, backlog and lag pollers, rules view) and the worker's pages
    (/metrics, /api/kpis, /api/contacts, /api/sql, /wallboard), but no stage loops."""
    return VocflowApp(settings, sink, rules, stage_loops=())
