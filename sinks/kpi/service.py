"""Live KPIs: every DOMAIN.md KPI from ClickHouse's named queries (sinks/kpi/kpis.sql),
published as Prometheus gauges and as the `/api/kpis` document.

Interval KPIs are sums over the 1-minute aggregates (`kpi_minutes`), so a
refresh costs a few small GROUP BYs however many contacts the day had; the
point-in-time gauges, repeat-based FCR and async SLA breaches read the facts
that can still matter. Computing in ClickHouse (rather than from each worker's
table partition) gives one consistent answer however many workers fold the
facts: ratios cannot be summed across workers, their numerators and
denominators can. The process that owns ClickHouse runs this every
`VOCFLOW_KPI_REFRESH_SECONDS`. `facts_results` is the same computation in
Python over facts: the reference the SQL is tested against, and the source of
the wallboard's test documents.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from vocflow.schemas.api import KpiDocument, KpiSet
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.kpi import agent_kpis, live
from vocflow.sinks.kpi import queries as kpi_queries
from vocflow.streams.core.settings import Settings
from vocflow.streams.kpi import kpis as K
from vocflow.streams.kpi.agent_kpis import AgentTimeline, all_agent_times, occupancy
from vocflow.streams.kpi.config import kpi_targets
from vocflow.streams.kpi.models import HOUR_MS, ContactFact, Interval, Kpi, from_ms, to_ms

log = logging.getLogger(__name__)

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
        "misroute_ratio": "Routed items their department reassigned / items routed to it.",
    }.items()
}
TEAM_GAUGES = {
    "occupancy": Gauge(
        "vocflow_occupancy_ratio", "Handling / (ready + handling).", ["interval", "team"]
    ),
    "utilization": Gauge(
        "vocflow_utilization_ratio", "Handling / scheduled time.", ["interval", "team"]
    ),
    "adherence": Gauge(
        "vocflow_adherence_ratio",
        "Time in the scheduled state / scheduled time.",
        ["interval", "team"],
    ),
}
# Denominators an alert rule needs to tell a real drop from small-sample noise.
DENOMINATOR_GAUGES = {
    "csat_ratio": Gauge("vocflow_csat_answers", "Survey answers with a CSAT score.", LABELS),
}
REFRESHED = Gauge("vocflow_kpi_refreshed_timestamp_seconds", "When KPIs were last computed.")
AGE = Gauge(
    "vocflow_kpi_age_seconds",
    "Seconds since KPIs were last computed (since this process started, before the first "
    "round), measured on this process's own clock when scraped.",
)
# Why an age and not only the timestamp: `time() - timestamp` in a rule mixes
# Prometheus's clock with ours, and a skew between the two hosts reads as staleness
# (or hides it). The age needs only our clock.
_clock_started = time.time()
_last_refresh: float = 0.0  # epoch seconds of the last published round; 0 = none yet


def kpi_age_seconds(now: float) -> float:
    """Seconds from the last published round (or this process's start) to ``now``."""
    return now - (_last_refresh or _clock_started)


AGE.set_function(lambda: kpi_age_seconds(time.time()))

FIRST_RESPONSE_SLA_MS = 4 * 3600 * 1000
RESOLUTION_SLA_MS = 24 * 3600 * 1000


# Named-query KPI -> name in /api/kpis and in the gauges (vocflow_<name>).
API_NAMES = {
    "volume": "contacts",
    "service_level": "service_level_ratio",
    "asa": "asa_seconds",
    "abandonment_rate": "abandonment_ratio",
    "aht": "aht_seconds",
    "transfer_rate": "transfer_ratio",
    "fcr": "fcr_ratio",
    "fcr_survey": "fcr_survey_ratio",
    "repeat_contact_rate": "repeat_contact_ratio",
    "csat": "csat_ratio",
    "nps": "nps",
    "complaint_rate": "complaint_ratio",
    "first_response_breach_rate": "first_response_breach_ratio",
    "resolution_breach_rate": "resolution_breach_ratio",
    "misroute_rate": "misroute_ratio",
    "queue_depth": "queue_depth",
    "oldest_waiting": "oldest_waiting_seconds",
    "backlog": "backlog",
}
NOW_KPIS = ("queue_depth", "oldest_waiting", "backlog")
INTERVAL_KPIS = tuple(k for k in API_NAMES if k not in NOW_KPIS)
BYS = ("all", "queue", "channel", "department")
# Misroute rate only for `today`: a department says "not ours" hours after the
# routing, so over the items of the last 15 or 60 minutes it reads near 0 whatever
# the routing's quality (docs/kpis.md, "Misroute rate").
MISROUTE_INTERVALS = frozenset({"today"})


def sql_results(
    settings: Settings, store: ClickHouseStore, iv: Interval | None, at: datetime
) -> kpi_queries.Result:
    """The interval KPIs of ``iv`` (None: the point-in-time ones at ``at``)."""
    names = ("waiting", "backlog") if iv is None else ("interval", *fact_queries(iv))
    return named_results(settings, store, names, iv, at)


def fact_queries(iv: Interval) -> tuple[str, ...]:
    """The named queries of ``iv``'s KPIs read from the facts, not the 1-minute sums."""
    return ("fcr", "sla_breaches", *(("misroutes",) if iv.label in MISROUTE_INTERVALS else ()))


def named_results(
    settings: Settings,
    store: ClickHouseStore,
    names: Iterable[str],
    iv: Interval | None,
    at: datetime,
) -> kpi_queries.Result:
    """The named queries ``names`` run for ``iv`` at ``at``, merged."""
    return _merge(
        *(kpi_queries.run(store, n, query_parameters(settings, n, iv, at)) for n in names)
    )


def query_parameters(
    settings: Settings, name: str, iv: Interval | None, at: datetime
) -> dict[str, Any]:
    """The ClickHouse parameters of the named query ``name`` for ``iv`` at ``at``:
    one place, so the KPIs and the drill-down lists (sinks/kpi/drilldown.py) bind
    the same values. The point-in-time queries ignore ``iv``."""
    if name == "waiting":
        return {"at": at, "stale_ms": K.DEFAULT_STALE_WAIT_MS}
    if name == "backlog":
        return {"at": at}
    if iv is None:
        raise ValueError(f"the named query {name} needs an interval")
    span: dict[str, Any] = {"start": from_ms(iv.start_ms), "end": from_ms(iv.end_ms)}
    if name == "fcr":
        span["window_ms"] = round(settings.repeat_window_hours * HOUR_MS)
    elif name == "sla_breaches":
        span.update(at=at, fr_sla_ms=FIRST_RESPONSE_SLA_MS, res_sla_ms=RESOLUTION_SLA_MS)
    elif name == "misroutes":
        span["at"] = at
    return span


def facts_results(
    settings: Settings, facts: list[ContactFact], iv: Interval | None, at: datetime
) -> kpi_queries.Result:
    """`sql_results` computed in Python from folded facts (see the module doc).

    Without the misroute rate: facts do not hold routings and department
    corrections; its reference is `vocflow.streams.kpi.misroute`, which
    tests/unit/sinks/test_misroutes.py holds the SQL to."""
    targets = kpi_targets(settings)
    at_ms = to_ms(at)
    out: kpi_queries.Result = {}
    for label in BYS:
        by: K.GroupBy = None if label == "all" else label  # type: ignore[assignment]
        if iv is None:
            out[label] = {
                "queue_depth": K.queue_depth(facts, at_ms, by),
                "oldest_waiting": K.oldest_waiting(facts, at_ms, by),
                "backlog": K.backlog(facts, at_ms, by),
            }
            continue
        window = round(settings.repeat_window_hours * HOUR_MS)
        by_threshold: dict[int, list[ContactFact]] = {}
        for f in facts:
            by_threshold.setdefault(targets.sl_threshold(f.first_queue), []).append(f)
        out[label] = {
            "volume": K.volume(facts, iv, by),
            "service_level": _sum_groups(
                K.service_level(own, iv, t / 1000, by) for t, own in by_threshold.items()
            ),
            "asa": K.asa(facts, iv, by),
            "abandonment_rate": K.abandonment_rate(facts, iv, by),
            "aht": K.aht(facts, iv, by),
            "transfer_rate": K.transfer_rate(facts, iv, by),
            "fcr": K.fcr(facts, iv, window, by),
            "fcr_survey": K.fcr_survey(facts, iv, by),
            "repeat_contact_rate": K.repeat_contact_rate(facts, iv, window, by),
            "csat": K.csat(facts, iv, by),
            "nps": K.nps(facts, iv, by),
            "complaint_rate": K.complaint_rate(facts, iv, by),
            "first_response_breach_rate": K.first_response_breaches(
                facts, iv, at_ms, FIRST_RESPONSE_SLA_MS, by
            ),
            "resolution_breach_rate": K.resolution_breaches(
                facts, iv, at_ms, RESOLUTION_SLA_MS, by
            ),
        }
    return out


def _sum_groups(parts: Iterable[dict[str, Kpi]]) -> dict[str, Kpi]:
    out: dict[str, Kpi] = {}
    for part in parts:
        for group, k in part.items():
            o = out.get(group)
            out[group] = (
                k
                if o is None
                else Kpi.of(
                    k.name, k.unit, o.numerator + k.numerator, o.denominator + k.denominator
                )
            )
    return out


def _merge(*results: kpi_queries.Result) -> kpi_queries.Result:
    out: kpi_queries.Result = {}
    for result in results:
        for by, kpis in result.items():
            out.setdefault(by, {}).update(kpis)
    return out


def compute(
    settings: Settings,
    results: Callable[[Interval | None, datetime], kpi_queries.Result],
    timelines: list[AgentTimeline],
    now: datetime,
    team_kpis: Mapping[str, dict[str, Any]] | None = None,
) -> KpiDocument:
    """The /api/kpis document: intervals x dimensions x KPIs, plus point-in-time
    gauges and the agent KPIs (occupancy from ``timelines``; ``team_kpis`` from
    `agent_kpis.refresh`, added to each interval's section).

    Built as plain JSON values and validated once, in pydantic's core: cheaper
    than constructing an object per KPI value in Python (docs/kpis.md, "Performance")."""
    at = to_ms(now)
    doc: dict[str, Any] = {
        "generated_at": now,
        "timezone": settings.timezone,
        "sl_threshold_seconds": settings.sl_threshold_seconds,
        "intervals": {},
        "now": {},
        "agents": {},
    }

    def section(result: kpi_queries.Result, names: tuple[str, ...]) -> dict[str, Any]:
        return {
            by: {API_NAMES[n]: _one(result.get(by, {}).get(n, {})) for n in names} for by in BYS
        }

    for label, iv in agent_kpis.intervals(now, settings.timezone).items():
        doc["intervals"][label] = {
            "start": datetime.fromtimestamp(iv.start_ms / 1000, UTC),
            "end": datetime.fromtimestamp(iv.end_ms / 1000, UTC),
            "by": section(results(iv, now), INTERVAL_KPIS),
        }
        times = all_agent_times(timelines, [], iv, as_of=at)
        doc["agents"][label] = {
            "occupancy_by_team": _one(occupancy(times, "team")),
            "occupancy": _one(occupancy(times, None)),
            **(team_kpis or {}).get(label, {}),
        }
    doc["now"] = section(results(None, now), NOW_KPIS)
    return KpiDocument.model_validate(doc)


def _one(kpis: dict[str, Kpi]) -> dict[str, dict[str, Any]]:
    return {group: _kpi_json(k) for group, k in kpis.items()}


def _kpi_json(k: Kpi) -> dict[str, Any]:
    value = None if k.value is None else float(k.value)
    return {"value": value, "numerator": k.numerator, "denominator": k.denominator}


def publish_gauges(doc: KpiDocument) -> None:
    """Mirror the document into gauges; a group with no value this round is removed.

    Series are set first and stale ones removed after, never cleared and
    refilled: a scrape in between must not find a KPI missing (alert rules
    would see it vanish and come back)."""
    values: dict[Gauge, dict[tuple[str, ...], float]] = {
        g: {} for g in [*GAUGES.values(), *TEAM_GAUGES.values(), *DENOMINATOR_GAUGES.values()]
    }

    def put(interval: str, by: str, kpis: KpiSet) -> None:
        for name, groups in kpis.by_name().items():
            for group, kpi in groups.items():
                if kpi.value is not None:
                    labels = {"interval": interval, "queue": "", "channel": "", "department": ""}
                    if by != "all":
                        labels[by] = group
                    key = tuple(labels[n] for n in LABELS)
                    values[GAUGES[name]][key] = kpi.value
                    if name in DENOMINATOR_GAUGES:
                        values[DENOMINATOR_GAUGES[name]][key] = kpi.denominator

    for interval, body in doc.intervals.items():
        for by, kpis in body.by.items():
            put(interval, by, kpis)
    for by, now_kpis in doc.now.items():
        put("now", by, now_kpis)
    for interval, agents in doc.agents.items():
        for name, gauge in TEAM_GAUGES.items():
            for team, kpi in (getattr(agents, f"{name}_by_team") or {}).items():
                if kpi.value is not None:
                    values[gauge][(interval, team)] = kpi.value
    for gauge, series in values.items():
        for label_values, value in series.items():
            gauge.labels(*label_values).set(value)
        for stale in _published.get(gauge, set()) - series.keys():
            gauge.remove(*stale)
        _published[gauge] = set(series)
    global _last_refresh
    _last_refresh = doc.generated_at.timestamp()
    REFRESHED.set(_last_refresh)


# Label values each gauge was last published with (to remove what went away).
_published: dict[Gauge, set[tuple[str, ...]]] = {}


def refresh(
    settings: Settings,
    store: ClickHouseStore,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> KpiDocument:
    """One round: query, compute, publish; returns the document for /api/kpis."""
    return LiveKpis(store).refresh(settings, clock)


@dataclass
class _Round:
    """What a round read, kept so the live path can add deltas to it."""

    now: datetime
    timelines: list[AgentTimeline]
    team_kpis: Mapping[str, dict[str, Any]]
    # label -> (interval, mark, the interval query's rows)
    rows: dict[str, tuple[Interval, int, list[dict[str, Any]]]]
    other: dict[str | None, kpi_queries.Result]  # label (None: point in time) -> results


class LiveKpis:
    """The KPI rounds of one store, and the live interval KPIs between them
    (sinks/kpi/live.py): `refresh` runs a round, `live` adds the deltas this
    process stored since to the round's sums and publishes."""

    def __init__(self, store: ClickHouseStore, changed: Callable[[], None] | None = None) -> None:
        self.store = store
        self.deltas = live.LiveDeltas(store, changed)
        self._round: _Round | None = None
        self._publish = threading.Lock()  # a round and a live update publish in turn
        self._published_live = 0  # last delta batch a live update published
        self._applied: dict[str, tuple[int, live.Sums]] = {}  # label -> (last batch, sums)

    def refresh(
        self, settings: Settings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> KpiDocument:
        now = clock()
        since, _ = agent_kpis.span(agent_kpis.intervals(now, settings.timezone))
        timelines = agent_kpis.load_timelines(self.store, since)
        team_kpis = agent_kpis.refresh(settings, self.store, now, timelines)
        base = _Round(now, timelines, team_kpis or {}, {}, {})
        store = self.store

        def results(iv: Interval | None, at: datetime) -> kpi_queries.Result:
            if iv is None:
                out = base.other[None] = sql_results(settings, store, None, at)
                return out
            other = base.other[iv.label] = named_results(settings, store, fact_queries(iv), iv, at)
            sql = kpi_queries.sql("interval", store.database)
            parameters = query_parameters(settings, "interval", iv, at)
            with store.lock:  # the mark and the sums see the same inserts
                mark = self.deltas.mark()
                rows = store.query_dicts(sql, parameters)
            base.rows[iv.label] = (iv, mark, rows)
            return _merge(kpi_queries.kpis_of_rows(rows), other)

        doc = compute(settings, results, timelines, now, team_kpis)
        oldest = min(mark for _, mark, _ in base.rows.values())
        with self._publish:
            publish_gauges(doc)
            self._round = base
            self._applied = {}
            self._published_live = oldest  # a batch after it is news to some interval
        self.deltas.drop_until(oldest)
        return doc

    def live(self, settings: Settings) -> KpiDocument | None:
        """The last round's document with the deltas stored since added to its
        interval KPIs, published; None when there is nothing new to add or the
        live path must wait for the next round (deltas withdrawn, no round yet)."""
        with self._publish:
            base = self._round
            if base is None:
                return None
            latest = self.deltas.mark()
            if latest <= self._published_live:
                return None
            # Per interval: the sums of the batches added so far, and the last one added:
            # each update adds only what is new (a round holds thousands of cells).
            for label, (iv, mark, _) in base.rows.items():
                applied, sums = self._applied.get(label, (mark, {}))
                new = self.deltas.since(mark, after=applied)
                if new is None:
                    return None
                seq, cells = new
                self._applied[label] = (seq, live.sum_cells(cells, iv, sums))

            def results(iv: Interval | None, at: datetime) -> kpi_queries.Result:
                if iv is None:
                    return base.other[None]
                rows = live.add_sums(base.rows[iv.label][2], self._applied[iv.label][1])
                return _merge(kpi_queries.kpis_of_rows(rows), base.other[iv.label])

            doc = compute(settings, results, base.timelines, base.now, base.team_kpis)
            publish_gauges(doc)
            self._published_live = latest
            return doc
