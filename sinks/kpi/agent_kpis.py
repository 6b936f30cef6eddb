"""Agent KPIs: per-agent occupancy, utilization, adherence, AHT and handled
contacts, the bottom 20 % of agents per KPI, and the ``agent_intervals`` table.

Computed in the process that owns ClickHouse, from ``agent_events``,
``agent_shifts`` and ``contact_facts``, with the oracle-tested functions of
``vocflow.streams.kpi``; agents never become a Prometheus label (hundreds of
series that churn with every shift). Two users:

* ``/api/agents`` (``AgentApi``, registered in streams/worker/app.py): recomputed at
  most once per ``kpi_refresh_seconds`` however many screens poll it.
* ``refresh``, called once per round by sinks/kpi/service.py: team
  utilization and adherence for the ``agents`` section of ``/api/kpis``, and
  after each 15-minute boundary the rewrite of that day's closed intervals
  into ``agent_intervals`` (late events, facts and schedule corrections land
  there at the next boundary; a new ``computed_at`` replaces the old rows).
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import orjson

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.streams.core.settings import Settings
from vocflow.streams.kpi import kpis as K
from vocflow.streams.kpi.agent_kpis import (
    AgentTimeline,
    AgentTimes,
    adherence,
    all_agent_times,
    build_timelines,
    occupancy,
    utilization,
)
from vocflow.streams.kpi.intervals import bucket, rolling, today
from vocflow.streams.kpi.models import ContactFact, Interval, Kpi, Shift, from_ms, to_ms

log = logging.getLogger(__name__)

INTERVAL_MINUTES = 15
INTERVAL_MS = INTERVAL_MINUTES * 60_000
# The state at an interval's start is the agent's last event within this long before it.
STATE_LOOKBACK = timedelta(days=1)
BOTTOM_SHARE = Fraction(1, 5)
# API name -> (Kpi name, unit), in the onion's order of asking (DOMAIN.md).
KPI_UNITS = {
    "adherence": ("adherence", "ratio"),
    "occupancy": ("occupancy", "ratio"),
    "utilization": ("utilization", "ratio"),
    "aht_seconds": ("aht", "seconds"),
}
KPIS = tuple(KPI_UNITS)
INTERVAL_COLUMNS = (
    "interval_start",
    "agent_id",
    "team",
    "scheduled_seconds",
    "logged_in_seconds",
    "ready_seconds",
    "on_contact_seconds",
    "after_work_seconds",
    "not_ready_seconds",
    "not_ready_by_reason",
    "adherent_seconds",
    "handled",
    "handle_seconds",
    "computed_at",
)
_SINCE = "{since:DateTime64(3, 'UTC')}"
_UNTIL = "{until:DateTime64(3, 'UTC')}"


def intervals(now: datetime, tz: str) -> dict[str, Interval]:
    """The intervals of /api/kpis, under the same names."""
    return {
        "15m": bucket(now, INTERVAL_MINUTES, tz),
        "60m": rolling(now, 60),
        "today": today(now, tz),
    }


def span(ivs: dict[str, Interval]) -> tuple[datetime, datetime]:
    """From the earliest start to the latest end: what the loaders must cover."""
    start = min(iv.start_ms for iv in ivs.values())
    return from_ms(start), from_ms(max(iv.end_ms for iv in ivs.values()))


# ---- loading ------------------------------------------------------------------


def load_timelines(store: ClickHouseStore, since: datetime) -> list[AgentTimeline]:
    """Timelines with every event from ``STATE_LOOKBACK`` before ``since`` on."""
    rows = store.query(
        "SELECT agent_id, event_id, toUnixTimestamp64Milli(occurred_at), state, reason, team "
        f"FROM {store.database}.agent_events FINAL WHERE occurred_at >= {_SINCE} "
        "ORDER BY occurred_at, event_id",
        {"since": since - STATE_LOOKBACK},
    )
    return build_timelines(
        (agent, eid, ms, state, reason or None, team or None)
        for agent, eid, ms, state, reason, team in rows
    )


def effective_shifts(segments: Iterable[tuple[Shift, datetime]]) -> list[Shift]:
    """(segment, published_at) -> the schedule in force: where segments of one
    agent overlap, the later published one wins and the older keeps only what
    is left of it. A corrected schedule whose break moved thus replaces the
    old break although its key (agent_id|start) differs."""
    by_agent: dict[str, list[tuple[Shift, datetime]]] = {}
    for segment, published in segments:
        by_agent.setdefault(segment.agent_id, []).append((segment, published))
    result: list[Shift] = []
    for agent_segments in by_agent.values():
        agent_segments.sort(key=lambda item: (item[1], item[0].start), reverse=True)
        newer: list[tuple[datetime, datetime]] = []
        for segment, _ in agent_segments:
            pieces = [(segment.start, segment.end)]
            for cut_from, cut_to in newer:
                pieces = [
                    part
                    for start, end in pieces
                    for part in ((start, min(end, cut_from)), (max(start, cut_to), end))
                    if part[0] < part[1]
                ]
            result.extend(replace(segment, start=s, end=e) for s, e in pieces)
            newer.append((segment.start, segment.end))
    return sorted(result, key=lambda s: (s.agent_id, s.start))


def load_shifts(store: ClickHouseStore, since: datetime, until: datetime) -> list[Shift]:
    """The schedule in force overlapping [since, until)."""
    rows = store.query(
        "SELECT agent_id, team, start, end, activity, published_at "
        f"FROM {store.database}.agent_shifts FINAL WHERE end > {_SINCE} AND start < {_UNTIL}",
        {"since": since, "until": until},
    )
    return effective_shifts(
        (
            Shift(
                agent, team or None, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), activity
            ),
            published,
        )
        for agent, team, start, end, activity, published in rows
    )


def load_facts(store: ClickHouseStore, since: datetime) -> list[ContactFact]:
    """Facts with an agent active since ``since`` (a contact ended in an
    interval was active in it): the AHT and handled-contacts input."""
    return [
        ContactFact.from_dict(orjson.loads(raw))
        for (raw,) in store.query(
            f"SELECT fact FROM {store.database}.contact_facts FINAL "
            f"WHERE last_activity_at >= {_SINCE} AND agent_id IS NOT NULL",
            {"since": since},
        )
    ]


# ---- per-agent KPIs -----------------------------------------------------------


@dataclass(frozen=True)
class AgentTable:
    """One interval: each present agent's team and KPIs (API name -> agent -> Kpi)."""

    interval: Interval
    team_of: dict[str, str]
    kpis: dict[str, dict[str, Kpi]]


def agent_table(
    timelines: list[AgentTimeline],
    shifts: list[Shift],
    facts: list[ContactFact],
    iv: Interval,
    as_of: int,
) -> AgentTable:
    """Agents logged in, scheduled or handling contacts in ``iv``; agents of
    other days (loaded for the state at the start) are left out."""
    times = [
        t for t in all_agent_times(timelines, shifts, iv, as_of) if t.logged_in_ms or t.scheduled_ms
    ]
    aht = K.aht(facts, iv, by="agent")
    team_of = {t.agent_id: t.team or K.UNKNOWN for t in times}
    for agent in aht:
        team_of.setdefault(agent, K.UNKNOWN)
    kpis = {
        "adherence": adherence(times, "agent"),
        "occupancy": occupancy(times, "agent"),
        "utilization": utilization(times, "agent"),
        "aht_seconds": aht,
    }
    return AgentTable(iv, team_of, kpis)


def kpi_json(k: Kpi | None) -> dict[str, Any]:
    if k is None:
        return {"value": None, "numerator": 0, "denominator": 0}
    return {
        "value": None if k.value is None else float(k.value),
        "numerator": k.numerator,
        "denominator": k.denominator,
    }


def _iso(ms: int) -> str:
    return from_ms(ms).isoformat()


def render_table(table: AgentTable, team: str | None = None, kpi: str | None = None) -> dict:
    """Agents (of ``team``), team totals (sums of numerators and denominators)
    and the bottom ``BOTTOM_SHARE`` per KPI among the agents shown."""
    agents = sorted(a for a, t in table.team_of.items() if team in (None, t))
    body: dict[str, Any] = {
        "start": _iso(table.interval.start_ms),
        "end": _iso(table.interval.end_ms),
        "agents": {},
        "teams": {},
        "bottom": {},
    }
    totals: dict[str, dict[str, list[int]]] = {}
    for agent in agents:
        row: dict[str, Any] = {"team": table.team_of[agent]}
        for name in KPIS:
            k = table.kpis[name].get(agent)
            row[name] = kpi_json(k)
            cell = totals.setdefault(table.team_of[agent], {}).setdefault(name, [0, 0])
            if k is not None:
                cell[0] += k.numerator
                cell[1] += k.denominator
        row["handled"] = row["aht_seconds"]["denominator"]
        body["agents"][agent] = row
    for team_name, sums in sorted(totals.items()):
        body["teams"][team_name] = {
            name: kpi_json(Kpi.of(*KPI_UNITS[name], n, d)) for name, (n, d) in sums.items()
        }
        body["teams"][team_name]["handled"] = sums["aht_seconds"][1]
    for name in KPIS:
        if kpi in (None, name):
            shown = {a: k for a, k in table.kpis[name].items() if a in body["agents"]}
            body["bottom"][name] = K.bottom_agents(shown, BOTTOM_SHARE)
    return body


class QueryError(ValueError):
    """A bad query parameter of /api/agents (answered with 400)."""


class AgentApi:
    """``GET /api/agents?interval=15m|60m|today&team=...&kpi=...``."""

    def __init__(
        self, settings: Settings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._tables: dict[str, AgentTable] = {}
        self._generated_at: datetime | None = None
        self._computed = 0.0

    def answer(self, store: ClickHouseStore, query: Mapping[str, str]) -> dict[str, Any]:
        """The document, or QueryError; blocking (ClickHouse): run it in a thread."""
        interval, team, kpi = query.get("interval"), query.get("team"), query.get("kpi")
        if interval not in (None, "15m", "60m", "today"):
            raise QueryError("interval must be 15m, 60m or today")
        if kpi not in (None, *KPIS):
            raise QueryError(f"kpi must be one of {', '.join(KPIS)}")
        tables, generated_at = self._current(store)
        return {
            "generated_at": generated_at.isoformat(),
            "timezone": self.settings.timezone,
            "bottom_share": float(BOTTOM_SHARE),
            "intervals": {
                label: render_table(table, team or None, kpi)
                for label, table in tables.items()
                if interval in (None, label)
            },
        }

    def _current(self, store: ClickHouseStore) -> tuple[dict[str, AgentTable], datetime]:
        with self._lock:
            fresh = time.monotonic() - self._computed < self.settings.kpi_refresh_seconds
            if self._generated_at is None or not fresh:
                now = self.clock()
                ivs = intervals(now, self.settings.timezone)
                since, until = span(ivs)
                timelines = load_timelines(store, since)
                shifts = load_shifts(store, since, until)
                facts = load_facts(store, since)
                at = to_ms(now)
                self._tables = {
                    label: agent_table(timelines, shifts, facts, iv, at)
                    for label, iv in ivs.items()
                }
                self._generated_at = now
                self._computed = time.monotonic()
            return self._tables, self._generated_at


# ---- the kpi_service round ----------------------------------------------------


def refresh(
    settings: Settings,
    store: ClickHouseStore,
    now: datetime,
    timelines: list[AgentTimeline],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Team (and centre) utilization and adherence for each interval of /api/kpis'
    ``agents`` section (interval -> ``utilization_by_team``, ``utilization``,
    ``adherence_by_team``, ``adherence``), from the round's own ``timelines``
    (those of its occupancy); then rewrite agent_intervals if an interval
    closed since the last round."""
    ivs = intervals(now, settings.timezone)
    shifts = load_shifts(store, *span(ivs))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for label, iv in ivs.items():
        times = all_agent_times(timelines, shifts, iv, as_of=to_ms(now))
        section = out[label] = {}
        for name, ratio in (("utilization", utilization), ("adherence", adherence)):
            section[f"{name}_by_team"] = {g: kpi_json(k) for g, k in ratio(times, "team").items()}
            section[name] = {g: kpi_json(k) for g, k in ratio(times, None).items()}
    try:
        write_due_intervals(settings, store, now)
    except Exception as exc:  # a by-product: /api/kpis must not stop for it; retried next round
        log.warning("agent_intervals rewrite failed: %s", str(exc).splitlines()[0][:300])
    return out


# (dsn, database) -> end of the last interval written; a restart rewrites the day once.
_written_until: dict[tuple[str, str], int] = {}


def write_due_intervals(settings: Settings, store: ClickHouseStore, now: datetime) -> None:
    """After each boundary, rewrite the local day of the interval that just
    closed (at 00:00 that is yesterday, which so gets its final version)."""
    closed_until = bucket(now, INTERVAL_MINUTES, settings.timezone).start_ms
    key = (store.dsn, store.database)
    if _written_until.get(key) == closed_until:
        return
    day = today(from_ms(closed_until - 1), settings.timezone)
    write_day(store, day, closed_until, now)
    _written_until[key] = closed_until


def _within(timeline: AgentTimeline, iv: Interval) -> AgentTimeline | None:
    """Only the entries that decide the states in ``iv`` (the last one before
    it and those inside): agent_times scans every entry it gets, and a day
    has 96 intervals."""
    entries = timeline.entries
    first = max(0, bisect_left(entries, (iv.start_ms,)) - 1)
    stop = bisect_left(entries, (iv.end_ms,))
    return replace(timeline, entries=entries[first:stop]) if stop > first else None


def _interval_row(
    iv_start: int, times: AgentTimes, handled: Kpi | None, computed_at: datetime
) -> list[Any]:
    return [
        from_ms(iv_start),
        times.agent_id,
        times.team or "",
        times.scheduled_ms / 1000,
        times.logged_in_ms / 1000,
        times.ready_ms / 1000,
        times.on_contact_ms / 1000,
        times.after_work_ms / 1000,
        times.not_ready_ms / 1000,
        {reason: ms / 1000 for reason, ms in times.not_ready_by_reason.items()},
        times.adherent_ms / 1000,
        handled.denominator if handled else 0,
        handled.numerator / 1000 if handled else 0.0,
        computed_at,
    ]


def interval_rows(
    timelines: list[AgentTimeline],
    shifts: list[Shift],
    facts: list[ContactFact],
    start_ms: int,
    end_ms: int,
    computed_at: datetime,
) -> list[list[Any]]:
    """Rows of the 15-minute intervals in [start_ms, end_ms) (start_ms on a
    local boundary) for each agent logged in, scheduled or handling in them."""
    team_of = {tl.agent_id: tl.team for tl in timelines if tl.team}
    for s in shifts:
        if s.team:
            team_of.setdefault(s.agent_id, s.team)
    ended: dict[int, list[ContactFact]] = {}
    for f in facts:
        if f.ended_ms is not None and start_ms <= f.ended_ms < end_ms:
            ended.setdefault((f.ended_ms - start_ms) // INTERVAL_MS * INTERVAL_MS, []).append(f)
    spans = [(to_ms(s.start), to_ms(s.end), s) for s in shifts]
    rows = []
    for offset in range(0, end_ms - start_ms, INTERVAL_MS):
        iv = Interval(start_ms + offset, start_ms + offset + INTERVAL_MS, f"{INTERVAL_MINUTES}m")
        sliced = [s for tl in timelines if (s := _within(tl, iv)) is not None]
        scheduled = [s for a, b, s in spans if a < iv.end_ms and b > iv.start_ms]
        times = {
            t.agent_id: t
            for t in all_agent_times(sliced, scheduled, iv)
            if t.logged_in_ms or t.scheduled_ms
        }
        handled = K.aht(ended.get(offset, ()), iv, by="agent")
        for agent in sorted(times.keys() | handled.keys()):
            agent_times = times.get(agent) or AgentTimes(agent, team_of.get(agent))
            rows.append(_interval_row(iv.start_ms, agent_times, handled.get(agent), computed_at))
    return rows


def write_day(store: ClickHouseStore, day: Interval, closed_until: int, now: datetime) -> None:
    """Rewrite the intervals of ``day`` that closed by ``closed_until``. A
    row written earlier that has nothing left (a late logout, a removed
    segment) is overwritten with zeros, as ReplacingMergeTree cannot forget."""
    since, until = from_ms(day.start_ms), from_ms(closed_until)
    rows = interval_rows(
        load_timelines(store, since),
        load_shifts(store, since, until),
        load_facts(store, since),
        day.start_ms,
        closed_until,
        now,
    )
    fresh = {(row[1], to_ms(row[0])) for row in rows}
    for agent, start, team in store.query(
        f"SELECT agent_id, interval_start, team FROM {store.database}.agent_intervals FINAL "
        f"WHERE interval_start >= {_SINCE} AND interval_start < {_UNTIL} "
        "AND (scheduled_seconds > 0 OR logged_in_seconds > 0 OR handled > 0)",
        {"since": since, "until": until},
    ):
        start_ms = to_ms(start.replace(tzinfo=UTC))
        if (agent, start_ms) not in fresh:
            rows.append(_interval_row(start_ms, AgentTimes(agent, team or None), None, now))
    if rows:
        token = f"agent_intervals|{day.start_ms}|{to_ms(now)}"
        store.insert("agent_intervals", INTERVAL_COLUMNS, rows, token)
