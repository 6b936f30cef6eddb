"""A realistic, deterministic contact-center day as a stream of canonical records.

``simulate(SimConfig(...))`` yields customer profiles, then contact and agent
events in event-time order, each with the ground truth needed to evaluate the
pipeline (text labels, scenario windows). It knows nothing about Kafka: a CLI
or the demo decides where the records go and how fast they are replayed.

Example::

    config = SimConfig(seed=7, outages=(Outage(city="杭州", start_hour=14.0),))
    for rec in simulate(config):
        producer.send(TOPIC[rec.kind], key=rec.key, value=orjson.dumps(rec.value))
        if rec.labels:  # ground truth, kept apart
            truth[rec.value["event_id"]] = rec.labels
    windows = scenario_windows(config)

Measure its speed with ``python -m vocflow.streams.tools.simulator.bench``.
"""

from __future__ import annotations

from vocflow.streams.tools.simulator.config import (
    Outage,
    PromotionSpike,
    ScenarioWindow,
    SimConfig,
    StaffingShortfall,
    scenario_windows,
)
from vocflow.streams.tools.simulator.engine import SimRecord, simulate

__all__ = [
    "Outage",
    "PromotionSpike",
    "ScenarioWindow",
    "SimConfig",
    "SimRecord",
    "StaffingShortfall",
    "scenario_windows",
    "simulate",
]
