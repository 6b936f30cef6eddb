"""Live KPIs: read today's contact facts and agent events from ClickHouse, compute
every DOMAIN.md KPI with the oracle-tested functions of `vocflow.streams.kpi`,
and publish them as Prometheus gauges and as the `/api/kpis` document.

Computing from ClickHouse (rather than from each worker's table partition)
gives one consistent answer however many workers fold the facts: ratios cannot
be summed across workers, their numerators and denominators can only be
counted in one place. The process that owns ClickHouse runs this every
`VOCFLOW_KPI_REFRESH_SECONDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from prometheus_client import Gauge

from vocflow.schemas import AgentEvent
from vocflow.sinks.clickhouse import ClickHouseStore
from vocflow.streams.config import Settings
from vocflow.streams.kpi import kpis as K
from vocflow.streams.kpi.agents import AgentTimeline, all_agent_times, fold_agent, occupancy
from vocflow.streams.kpi.fold import annotate
from vocflow.streams.kpi.intervals import bucket, rolling, today
from vocflow.streams.kpi.models import ContactFact, Interval, Kpi, to_ms

log = logging.getLogger(__name__)

DIMENSIONS: tuple[K.GroupBy, ...] = (None, "queue", "channel", "department")
LABELS = ["interval", "queue", "channel", "department"]

GAUGES: dict[str, Gauge] = {
    name: Gauge(f"vocflow_{name}", doc, LABELS)
    for name, doc in {
        "service_level_ratio": "Answered within T / (answered + abandoned after T).",
        "asa_seconds": "Average speed of answer.",
        "abandonment_ratio": "Abandoned / offered, short abandons excluded.",
        "aht_seconds": "Average handling time (talk + hold + after-contact work).",
        "transfer_ratio": "Transferred / handled contacts.",
        "fcr_ratio": "1 - repeat-contact rate.",
        "fcr_survey_ratio": "Resolved-first-time answers / survey answers.",
        "repeat_contact_ratio": "Contacts followed by a repeat within the window.",
        "csat_ratio": "Satisfied (4-5) / survey answers.",
        "nps": "% promoters - % detractors.",
        "complaint_ratio": "Contacts routed to complaints / contacts.",
        "contacts": "Contact volume.",
        "queue_depth": "Contacts waiting now.",
        "oldest_waiting_seconds": "Wait of the longest-waiting contact now.",
        "backlog": "Async contacts received and not yet resolved.",
        "first_response_breach_ratio": "Async contacts past the first-response SLA.",
        "resolution_breach_ratio": "Async contacts past the resolution SLA.",
    }.items()
}
OCCUPANCY = Gauge("vocflow_occupancy_ratio", "Handling / (ready + handling).", ["interval", "team"])
REFRESHED = Gauge("vocflow_kpi_refreshed_timestamp_seconds", "When KPIs were last computed.")

FIRST_RESPONSE_SLA_MS = 4 * 3600 * 1000
RESOLUTION_SLA_MS = 24 * 3600 * 1000


def _interval_kpis(
    settings: Settings, facts: list[ContactFact], iv: Interval, by: K.GroupBy, at: int
) -> dict[str, dict[str, Kpi]]:
    t = settings.sl_threshold_seconds
    out = {
        "service_level_ratio": K.service_level(facts, iv, t, by),
        "asa_seconds": K.asa(facts, iv, by),
        "abandonment_ratio": K.abandonment_rate(facts, iv, by),
        "aht_seconds": K.aht(facts, iv, by),
        "transfer_ratio": K.transfer_rate(facts, iv, by),
        "fcr_ratio": K.fcr(facts, iv, by=by),
        "fcr_survey_ratio": K.fcr_survey(facts, iv, by),
        "repeat_contact_ratio": K.repeat_contact_rate(facts, iv, by=by),
        "csat_ratio": K.csat(facts, iv, by),
        "nps": K.nps(facts, iv, by),
        "complaint_ratio": K.complaint_rate(facts, iv, by),
        "contacts": K.volume(facts, iv, by),
        "first_response_breach_ratio": K.first_response_breaches(
            facts, iv, at, FIRST_RESPONSE_SLA_MS, by=by
        ),
        "resolution_breach_ratio": K.resolution_breaches(facts, iv, at, RESOLUTION_SLA_MS, by=by),
    }
    if by == "queue" and settings.sl_threshold_by_queue:
        for queue, threshold in settings.sl_threshold_by_queue.items():
            own = [f for f in facts if f.first_queue == queue]
            out["service_level_ratio"].update(K.service_level(own, iv, threshold, "queue"))
    return out


def compute(
    settings: Settings, facts: list[ContactFact], timelines: list[AgentTimeline], now: datetime
) -> dict[str, Any]:
    """The /api/kpis document: intervals x dimensions x KPIs, plus point-in-time gauges."""
    at = to_ms(now)
    intervals = {
        "15m": bucket(now, 15, settings.timezone),
        "60m": rolling(now, 60),
        "today": today(now, settings.timezone),
    }
    doc: dict[str, Any] = {
        "generated_at": now.isoformat(),
        "timezone": settings.timezone,
        "sl_threshold_seconds": settings.sl_threshold_seconds,
        "intervals": {},
        "now": {},
        "agents": {},
    }
    for label, iv in intervals.items():
        doc["intervals"][label] = {
            "start": datetime.fromtimestamp(iv.start_ms / 1000, UTC).isoformat(),
            "end": datetime.fromtimestamp(iv.end_ms / 1000, UTC).isoformat(),
            "by": {
                str(by or "all"): _as_json(_interval_kpis(settings, facts, iv, by, at))
                for by in DIMENSIONS
            },
        }
        times = all_agent_times(timelines, [], iv, as_of=at)
        doc["agents"][label] = {
            "occupancy_by_team": _one(occupancy(times, "team")),
            "occupancy": _one(occupancy(times, None)),
        }
    for by in DIMENSIONS:
        doc["now"][str(by or "all")] = _as_json(
            {
                "queue_depth": K.queue_depth(facts, at, by),
                "oldest_waiting_seconds": K.oldest_waiting(facts, at, by),
                "backlog": K.backlog(facts, at, by),
            }
        )
    return doc


def _one(kpis: dict[str, Kpi]) -> dict[str, dict[str, Any]]:
    return {group: _kpi_json(k) for group, k in kpis.items()}


def _kpi_json(k: Kpi) -> dict[str, Any]:
    value = None if k.value is None else float(k.value)
    return {"value": value, "numerator": k.numerator, "denominator": k.denominator}


def _as_json(by_name: dict[str, dict[str, Kpi]]) -> dict[str, dict[str, dict[str, Any]]]:
    return {name: _one(groups) for name, groups in by_name.items()}


def publish_gauges(doc: dict[str, Any]) -> None:
    """Mirror the document into gauges; a group with no value this round is removed."""
    for gauge in [*GAUGES.values(), OCCUPANCY]:
        gauge.clear()

    def labels(interval: str, by: str, group: str) -> dict[str, str]:
        out = {"interval": interval, "queue": "", "channel": "", "department": ""}
        if by != "all":
            out[by] = group
        return out

    for interval, body in doc["intervals"].items():
        for by, names in body["by"].items():
            for name, groups in names.items():
                for group, kpi in groups.items():
                    if kpi["value"] is not None:
                        GAUGES[name].labels(**labels(interval, by, group)).set(kpi["value"])
    for by, names in doc["now"].items():
        for name, groups in names.items():
            for group, kpi in groups.items():
                if kpi["value"] is not None:
                    GAUGES[name].labels(**labels("now", by, group)).set(kpi["value"])
    for interval, body in doc["agents"].items():
        for team, kpi in body["occupancy_by_team"].items():
            if kpi["value"] is not None:
                OCCUPANCY.labels(interval, team).set(kpi["value"])
    REFRESHED.set(datetime.fromisoformat(doc["generated_at"]).timestamp())


def load(store: ClickHouseStore, since: datetime) -> tuple[list[ContactFact], list[AgentTimeline]]:
    """Facts active since `since` (annotated with their routed department) and agent timelines."""
    db = store.database
    departments = dict(
        store.query(
            f"SELECT contact_id, department FROM {db}.routing_log FINAL "
            "WHERE occurred_at >= {since:DateTime64(3, 'UTC')}",
            {"since": since},
        )
    )
    facts = []
    for (raw,) in store.query(
        f"SELECT fact FROM {db}.contact_facts FINAL "
        "WHERE last_activity_at >= {since:DateTime64(3, 'UTC')}",
        {"since": since},
    ):
        fact = ContactFact.from_dict(orjson.loads(raw))
        department = departments.get(fact.contact_id)
        if department is not None:
            fact = annotate(fact, department=department) or fact
        facts.append(fact)
    timelines: dict[str, AgentTimeline] = {}
    for row in store.query_dicts(
        f"SELECT event_id, agent_id, team, state, reason, contact_id, occurred_at "
        f"FROM {db}.agent_events FINAL WHERE occurred_at >= {{since:DateTime64(3, 'UTC')}} "
        "ORDER BY occurred_at",
        {"since": since},
    ):
        event = AgentEvent(
            event_id=row["event_id"],
            agent_id=row["agent_id"],
            team=row["team"] or None,
            state=row["state"],
            reason=row["reason"] or None,
            contact_id=row["contact_id"],
            occurred_at=row["occurred_at"].replace(tzinfo=UTC),
        )
        updated = fold_agent(timelines.get(event.agent_id), event)
        if updated is not None:
            timelines[event.agent_id] = updated
    return facts, list(timelines.values())


def refresh(
    settings: Settings,
    store: ClickHouseStore,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """One round: load, compute, publish; returns the document for /api/kpis."""
    now = clock()
    # Yesterday too: FCR looks back one repeat window, and 'today' starts at local midnight.
    facts, timelines = load(store, now - timedelta(days=2))
    doc = compute(settings, facts, timelines, now)
    publish_gauges(doc)
    return doc
