"""What every part of a worker shares: the app and its handles (`WorkerApp`).

Faust is the application framework (app, web, timers, worker lifecycle); the
three stages run as transactional loops beside it (`worker/txloop.py`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

import faust

from vocflow.schemas.api import KpiDocument
from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.deptcorpus import holdout, prepare
from vocflow.streams.stages.deptmodel import default_model
from vocflow.streams.stages.rules import RuleSet, load_rules
from vocflow.streams.worker.detector_service import DetectorService
from vocflow.streams.worker.views import ModelHolder, ProfileStore, RulesHolder

R = TypeVar("R")
log = logging.getLogger(__name__)


class WorkerApp(faust.App):
    """faust.App configured from the settings, plus the handles its agents,
    services and pages share (`app.VocflowApp` wires them).

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
            # Faust's own folder (it creates one even for memory:// tables) goes in
            # the data dir with everything else, not `<app id>-data` in the cwd.
            datadir=settings.data_dir / "faust",
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
            # Static membership: a worker restarted with the same id rejoins with its
            # partitions at once (measured: first record 2.7 s after kill -9, vs 60 s).
            consumer_group_instance_id=settings.group_instance_id,
        )
        self.settings_ = settings
        self.sink = sink
        self.rules = RulesHolder(rules or load_rules(settings.rules_path))
        self.model = ModelHolder(
            default_model(),
            rules=lambda: self.rules.current,
            holdout=lambda: prepare(holdout()),
        )
        self.profiles = ProfileStore()
        self.views_loaded = asyncio.Event()
        self.kpis: KpiDocument | None = None  # the last KPI round's /api/kpis document
        self.detector = DetectorService(settings) if sink is not None else None
