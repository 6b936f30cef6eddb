"""What runs beside the agents in a worker: the compacted views (profiles,
rules), the in-process ClickHouse sink, the KPI refresh, the backlog poller,
the surge detector and the consumer-lag poller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from mode import Service

from vocflow.sinks.clickhouse.tables import LatestFactDeltas
from vocflow.sinks.kpi import backlog
from vocflow.sinks.kpi import service as kpi_service
from vocflow.sinks.prometheus import metrics
from vocflow.sinks.prometheus.lag import LagMonitor
from vocflow.streams.core import topics as T
from vocflow.streams.worker import txloop
from vocflow.streams.worker.views import CompactedView
from vocflow.streams.worker.wiring import WorkerApp

R = TypeVar("R")

log = logging.getLogger(__name__)

LAG_POLL_SECONDS = 10.0
BACKLOG_POLL_SECONDS = 15.0
# Live KPI updates (sinks/kpi/live.py) follow the sink's delta inserts, at most this often.
LIVE_KPI_MIN_GAP_SECONDS = 0.2


class PipelineServices(Service):
    """Started with the app after its agents; stopped before the sink closes
    the store, waiting for rounds still running against it."""

    def __init__(self, app: WorkerApp, **kwargs: Any) -> None:
        self.app = app
        self.settings = app.settings_
        self.topics = T.Topics(app.settings_)
        self.views: list[CompactedView] = []
        # Rounds running on executor threads against the ClickHouse store:
        # stopping waits for them before the sink closes the store.
        self.store_rounds: set[asyncio.Future[Any]] = set()
        self.closing = False
        self.live_kpis: kpi_service.LiveKpis | None = None
        self._deltas_stored = asyncio.Event()
        self._fact_hooks: list[LatestFactDeltas] = []
        super().__init__(**kwargs)

    async def on_store(self, fn: Callable[..., R], *args: Any) -> R:
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
        app = self.app
        if app.sink is not None:
            await app.sink.start()
            assert app.sink.store is not None
            loop = asyncio.get_running_loop()
            stored = self._deltas_stored
            self.live_kpis = kpi_service.LiveKpis(
                app.sink.store, lambda: loop.call_soon_threadsafe(stored.set)
            )
            hooks = (t.before_insert for t in app.sink.tables)
            self._fact_hooks = [h for h in hooks if isinstance(h, LatestFactDeltas)]
            for hook in self._fact_hooks:
                hook.listeners.append(self.live_kpis.deltas.on_stored)
        self.views = [
            CompactedView(self.settings, self.topics.name(T.PROFILES), app.profiles.on_record),
            CompactedView(self.settings, self.topics.name(T.RULES), app.rules.on_record),
            CompactedView(self.settings, self.topics.name(T.MODELS), app.model.on_record),
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
        if self.live_kpis is not None:
            for hook in self._fact_hooks:
                hook.listeners.remove(self.live_kpis.deltas.on_stored)
        for view in self.views:
            await view.stop()
        if self.app.detector is not None:
            await self.app.detector.stop()
        if self.store_rounds:
            await asyncio.wait(self.store_rounds)
        if self.app.sink is not None:
            await self.app.sink.stop()

    @Service.task
    async def _refresh_kpis(self) -> None:
        sink, settings = self.app.sink, self.settings
        if sink is None:
            return
        loop = asyncio.get_running_loop()
        pause = settings.kpi_refresh_seconds
        while not self.should_stop:
            await self.sleep(pause)
            if self.closing:
                return
            started = loop.time()
            live = self.live_kpis
            if live is None:
                continue
            try:
                self.app.kpis = await self.on_store(live.refresh, settings)
            except Exception as exc:  # advisory: log and retry next round
                log.warning("KPI refresh failed: %s", str(exc).splitlines()[0][:300])
            # A big day makes a round expensive: never spend more than a third
            # of the time (and of the ClickHouse lock) recomputing KPIs.
            pause = max(settings.kpi_refresh_seconds, 2 * (loop.time() - started))

    @Service.task
    async def _live_kpi_updates(self) -> None:
        """Between rounds, publish the interval KPIs with the deltas just stored."""
        while not self.should_stop:
            await self._deltas_stored.wait()
            self._deltas_stored.clear()
            live = self.live_kpis
            if self.closing or live is None:
                return
            try:
                doc = await self.on_store(live.live, self.settings)
            except Exception as exc:  # advisory: the next round publishes anyway
                log.warning("live KPI update failed: %s", str(exc).splitlines()[0][:300])
            else:
                if doc is not None:
                    self.app.kpis = doc
            await self.sleep(LIVE_KPI_MIN_GAP_SECONDS)

    @Service.task
    async def _poll_backlog(self) -> None:
        sink = self.app.sink
        if sink is None:
            return
        while not self.should_stop:
            await self.sleep(BACKLOG_POLL_SECONDS)
            if self.closing:
                return
            departments = set(self.app.rules.current.departments)
            try:
                await self.on_store(
                    backlog.update_gauges, sink.store, departments, datetime.now(UTC)
                )
            except Exception as exc:  # advisory: log and retry next round
                log.warning("backlog poll failed: %s", str(exc).splitlines()[0][:200])

    @Service.task
    async def _poll_lag(self) -> None:
        topics, sink = self.topics, self.app.sink
        group = partial(txloop.group_id, self.settings)
        groups = {
            group("normalize"): [topics.name(T.RAW)],
            group("voc"): [topics.name(T.VOC)],
            group("facts"): [topics.name(T.EVENTS), topics.name(T.ROUTED)],
        }
        if sink is not None:
            groups[sink.group_id] = [topics.name(t.source) for t in sink.tables]
        monitor = LagMonitor(self.settings, groups)
        loop = asyncio.get_running_loop()
        try:
            while not self.should_stop:
                await loop.run_in_executor(None, monitor.poll)
                await self.sleep(LAG_POLL_SECONDS)
        finally:
            monitor.close()
