"""Agent KPIs from ClickHouse rows, hand-computed: per agent, per team, bottom 20 %,
the agent_intervals rows and the kpi_service hook. The scenario is reused by
tests/integration/test_agent_kpis.py on the real broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from vocflow.schemas import AgentEvent, ContactEvent, ShiftRecord
from vocflow.sinks.kpi import agent_kpis as A
from vocflow.streams.core.settings import Settings
from vocflow.streams.kpi.fold import fold_all
from vocflow.streams.kpi.models import ContactFact, Interval, Kpi, Shift, to_ms

pytestmark = pytest.mark.clock

TZ = ZoneInfo("Asia/Shanghai")
W0 = datetime(2025, 3, 10, 9, 0, tzinfo=TZ)  # on a 15-minute boundary
MIN = 60_000

# ---- the scenario (minutes after W0) ------------------------------------------

# agent, team, start, end, activity
SHIFTS = [
    ("a1", "t1", 0, 20, "work"),
    ("a1", "t1", 20, 25, "break"),
    ("a1", "t1", 25, 30, "work"),
    ("a2", "t1", 0, 30, "work"),
    ("a3", "t1", 0, 30, "work"),  # never logs in
    ("a4", "t2", 0, 30, "work"),
]
# agent, minute, state, not-ready reason
STATES = [
    ("a1", 0, "ready", None),
    ("a1", 5, "on_contact", None),
    ("a1", 10, "after_work", None),
    ("a1", 12, "ready", None),
    ("a1", 20, "not_ready", "break"),
    ("a1", 25, "ready", None),
    ("a1", 27, "on_contact", None),
    ("a1", 29, "after_work", None),
    ("a1", 30, "logout", None),
    ("a2", 2, "login", None),
    ("a2", 3, "ready", None),
    ("a2", 10, "on_contact", None),
    ("a2", 20, "after_work", None),
    ("a2", 22, "not_ready", "lunch"),  # scheduled to work: not adherent
    ("a2", 26, "ready", None),
    ("a2", 31, "logout", None),  # a minute of overtime
    ("a4", 0, "ready", None),
    ("a4", 1, "on_contact", None),
    ("a4", 25, "after_work", None),
    ("a4", 30, "logout", None),
]
TEAMS = {"a1": "t1", "a2": "t1", "a4": "t2"}
# contact, agent, ended minute, talk seconds, after-work seconds (wrap-up at the next state)
CONTACTS = [
    ("c1", "a1", 10, 300, 120),
    ("c2", "a1", 29, 120, 60),
    ("c3", "a2", 20, 600, 120),
    ("c4", "a4", 25, 1440, 300),
]

# (numerator, denominator): ratios in minutes of state time, AHT in (seconds, contacts).
EXPECTED_AGENTS = {
    "a1": {"adherence": (30, 30), "occupancy": (10, 25), "utilization": (10, 30), "aht": (600, 2)},
    "a2": {"adherence": (23, 30), "occupancy": (12, 24), "utilization": (12, 30), "aht": (720, 1)},
    "a3": {"adherence": (0, 30), "occupancy": (0, 0), "utilization": (0, 30), "aht": (0, 0)},
    "a4": {"adherence": (30, 30), "occupancy": (29, 30), "utilization": (29, 30), "aht": (1740, 1)},
}
EXPECTED_BOTTOM = {
    None: {"adherence": ["a3"], "occupancy": ["a1"], "utilization": ["a3"], "aht_seconds": ["a4"]},
    "t1": {"adherence": ["a3"], "occupancy": ["a1"], "utilization": ["a3"], "aht_seconds": ["a2"]},
}


def at(minute: float, w0: datetime = W0) -> datetime:
    return w0 + timedelta(minutes=minute)


def shift_csv(w0: datetime = W0) -> str:
    """The schedule as a WFM export: naive local times."""
    lines = ["agent_id,team,start,end,activity"]
    for agent, team, start, end, activity in SHIFTS:
        s, e = (at(m, w0).astimezone(TZ).strftime("%Y-%m-%d %H:%M") for m in (start, end))
        lines.append(f"{agent},{team},{s},{e},{activity}")
    return "\n".join(lines) + "\n"


def agent_events(w0: datetime = W0, prefix: str = "") -> list[AgentEvent]:
    return [
        AgentEvent(
            event_id=f"{prefix}s{n}",
            agent_id=agent,
            team=TEAMS[agent],
            state=state,
            reason=reason,
            occurred_at=at(minute, w0),
        )
        for n, (agent, minute, state, reason) in enumerate(STATES)
    ]


def contact_events(w0: datetime = W0, prefix: str = "") -> list[ContactEvent]:
    events = []
    for cid, agent, ended, talk, acw in CONTACTS:
        answered = at(ended, w0) - timedelta(seconds=talk)
        wrapped = next(m for a, m, *_ in STATES if a == agent and m > ended)
        common = {"contact_id": f"{prefix}{cid}", "channel": "phone", "queue": "q1"}
        for n, (kind, moment, payload) in enumerate(
            [
                ("offered", answered - timedelta(seconds=30), None),
                ("answered", answered, {"wait_seconds": 30}),
                ("ended", at(ended, w0), {"talk_seconds": talk}),
                ("wrapup_done", at(wrapped, w0), {"after_work_seconds": acw}),
            ]
        ):
            events.append(
                ContactEvent(
                    event_id=f"{prefix}{cid}-{n}",
                    event_type=kind,
                    occurred_at=moment,
                    agent_id=agent if kind != "offered" else None,
                    payload=payload,
                    **common,
                )
            )
    return events


def expected_kpi(agent: str, name: str) -> dict[str, Any]:
    """The /api/agents JSON of one agent's KPI."""
    kpi_name = "aht" if name == "aht_seconds" else name
    n, d = EXPECTED_AGENTS[agent][kpi_name]
    if kpi_name == "aht":
        return {"value": n / d if d else None, "numerator": n * 1000, "denominator": d}
    return {"value": n / d if d else None, "numerator": n * MIN, "denominator": d * MIN}


def expected_team(agents: list[str], name: str) -> dict[str, Any]:
    parts = [expected_kpi(a, name) for a in agents]
    n, d = sum(p["numerator"] for p in parts), sum(p["denominator"] for p in parts)
    value = n / d / 1000 if name == "aht_seconds" else n / d
    return {"value": value, "numerator": n, "denominator": d}


# ---- a ClickHouse stand-in answering the loaders' queries ---------------------


def naive(moment: datetime) -> datetime:
    """As clickhouse-connect returns DateTime64(3, 'UTC')."""
    return moment.astimezone(UTC).replace(tzinfo=None)


class FakeStore:
    database = "db"
    dsn = "fake://"

    def __init__(
        self,
        events: list[AgentEvent],
        shifts: list[ShiftRecord],
        facts: list[ContactFact],
        stored_intervals: list[tuple[str, datetime, str]] = (),  # type: ignore[assignment]
    ) -> None:
        self.events, self.shifts, self.facts = events, shifts, facts
        self.stored_intervals = list(stored_intervals)
        self.inserts: list[tuple[str, tuple[str, ...], list[list[Any]], str]] = []
        self.queries = 0

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        self.queries += 1
        if "agent_events" in sql:
            return [
                (e.agent_id, e.event_id, to_ms(e.occurred_at), e.state.value, e.reason or "",
                 e.team or "")
                for e in sorted(self.events, key=lambda e: (e.occurred_at, e.event_id))
            ]  # fmt: skip
        if "agent_shifts" in sql:
            return [
                (r.agent_id, r.team or "", naive(r.start), naive(r.end), r.activity,
                 naive(r.published_at))
                for r in self.shifts
            ]  # fmt: skip
        if "contact_facts" in sql:
            return [(orjson.dumps(f.to_dict()).decode(),) for f in self.facts]
        if "agent_intervals" in sql:
            return [(agent, naive(start), team) for agent, start, team in self.stored_intervals]
        raise AssertionError(sql)

    def insert(self, table: str, columns: Any, rows: list[list[Any]], token: str) -> None:
        self.inserts.append((table, tuple(columns), rows, token))


def shift_records(published_at: datetime = W0) -> list[ShiftRecord]:
    return [
        ShiftRecord(
            agent_id=agent,
            team=team,
            start=at(start),
            end=at(end),
            activity=activity,
            published_at=published_at,
        )
        for agent, team, start, end, activity in SHIFTS
    ]


def scenario_store(**extra: Any) -> FakeStore:
    facts = list(fold_all(contact_events()).values())
    return FakeStore(agent_events(), shift_records(), facts, **extra)


SETTINGS = Settings(kpi_refresh_seconds=60)


# ---- /api/agents ----------------------------------------------------------------


def test_api_values_and_bottom_lists_are_exact() -> None:
    store = scenario_store()
    api = A.AgentApi(SETTINGS, clock=lambda: at(35))
    doc = api.answer(store, {})
    assert doc["timezone"] == "Asia/Shanghai" and doc["bottom_share"] == 0.2
    assert set(doc["intervals"]) == {"15m", "60m", "today"}
    for label in ("60m", "today"):
        body = doc["intervals"][label]
        assert sorted(body["agents"]) == ["a1", "a2", "a3", "a4"]
        for agent, row in body["agents"].items():
            assert row["team"] == ("t2" if agent == "a4" else "t1")
            assert row["handled"] == EXPECTED_AGENTS[agent]["aht"][1]
            for name in A.KPIS:
                assert row[name] == expected_kpi(agent, name), (label, agent, name)
        assert body["bottom"] == EXPECTED_BOTTOM[None]
        assert body["teams"]["t1"] == {
            **{name: expected_team(["a1", "a2", "a3"], name) for name in A.KPIS},
            "handled": 3,
        }
    assert doc["intervals"]["today"]["teams"]["t1"]["adherence"]["value"] == 53 / 90
    # 09:30-09:45 holds a2's minute of overtime only: ready, nothing scheduled.
    (row,) = doc["intervals"]["15m"]["agents"].values()
    assert doc["intervals"]["15m"]["start"] == at(30).astimezone(UTC).isoformat()
    assert row["occupancy"] == {"value": 0.0, "numerator": 0, "denominator": MIN}
    assert row["adherence"] == {"value": None, "numerator": 0, "denominator": 0}


def test_api_filters_by_interval_team_and_kpi() -> None:
    api = A.AgentApi(SETTINGS, clock=lambda: at(35))
    doc = api.answer(scenario_store(), {"interval": "60m", "team": "t1", "kpi": "aht_seconds"})
    (body,) = doc["intervals"].values()
    assert sorted(body["agents"]) == ["a1", "a2", "a3"]
    assert set(body["teams"]) == {"t1"}
    assert body["bottom"] == {"aht_seconds": EXPECTED_BOTTOM["t1"]["aht_seconds"]}
    doc = api.answer(scenario_store(), {"interval": "60m", "team": "t1"})
    assert doc["intervals"]["60m"]["bottom"] == EXPECTED_BOTTOM["t1"]
    assert api.answer(scenario_store(), {"team": "nobody"})["intervals"]["today"] == {
        "start": at(-9 * 60).astimezone(UTC).isoformat(),
        "end": at(15 * 60).astimezone(UTC).isoformat(),
        "agents": {},
        "teams": {},
        "bottom": {name: [] for name in A.KPIS},
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [({"interval": "5m"}, "interval must be"), ({"kpi": "csat"}, "kpi must be one of")],
)
def test_api_rejects_bad_parameters(query: dict[str, str], message: str) -> None:
    with pytest.raises(A.QueryError, match=message):
        A.AgentApi(SETTINGS).answer(scenario_store(), query)


def test_api_reads_clickhouse_once_per_refresh_period() -> None:
    store = scenario_store()
    api = A.AgentApi(Settings(kpi_refresh_seconds=300), clock=lambda: at(35))
    first = api.answer(store, {})
    reads = store.queries
    assert api.answer(store, {"team": "t2"})["generated_at"] == first["generated_at"]
    assert store.queries == reads == 3


# ---- ranking edge cases ---------------------------------------------------------


def table_of(kpis: dict[str, dict[str, Kpi]]) -> A.AgentTable:
    agents = {a for by_agent in kpis.values() for a in by_agent}
    full = {name: kpis.get(name, {}) for name in A.KPIS}
    return A.AgentTable(Interval(0, 1), {a: "t" for a in agents}, full)


def test_ties_are_broken_by_agent_id_in_the_kpis_direction() -> None:
    ratio = {
        a: Kpi.of("adherence", "ratio", n, 2)
        for a, n in zip("fedcba", (2, 2, 2, 1, 1, 1), strict=True)
    }
    aht = {
        a: Kpi.of("aht", "seconds", s, 1)
        for a, s in zip("fedcba", (90, 90, 90, 30, 30, 30), strict=True)
    }
    body = A.render_table(table_of({"adherence": ratio, "aht_seconds": aht}))
    # six ranked: ceil(6 / 5) = 2; worst first, equal values by agent id
    assert body["bottom"]["adherence"] == ["a", "b"]
    assert body["bottom"]["aht_seconds"] == ["d", "e"]


def test_zero_denominators_are_not_ranked() -> None:
    util = {
        "a": Kpi.of("utilization", "ratio", 0, 0),  # not scheduled: no value
        "b": Kpi.of("utilization", "ratio", 1, 2),
        "c": Kpi.of("utilization", "ratio", 0, 5),  # scheduled, did nothing: 0, ranked
    }
    body = A.render_table(table_of({"utilization": util}))
    assert body["bottom"]["utilization"] == ["c"]  # ceil(2 ranked / 5) = 1
    assert body["agents"]["a"]["utilization"] == {"value": None, "numerator": 0, "denominator": 0}
    assert body["teams"]["t"]["utilization"]["value"] == 1 / 7
    nobody = {"a": Kpi.of("aht", "seconds", 0, 0)}
    assert A.render_table(table_of({"aht_seconds": nobody}))["bottom"]["aht_seconds"] == []


# ---- schedule corrections ---------------------------------------------------------


def test_later_published_segments_cut_the_ones_they_overlap() -> None:
    old, new = W0, W0 + timedelta(hours=1)

    def seg(start: float, end: float, activity: str = "work") -> Shift:
        return Shift("a1", "t1", at(start), at(end), activity)

    got = A.effective_shifts(
        [
            (seg(0, 60), old),
            (seg(60, 75, "break"), old),
            (seg(75, 180), old),
            (seg(60, 90), new),  # the break moved to 90-105
            (seg(90, 105, "break"), new),
            (seg(0, 10), new),  # same start: what the topic key would replace anyway
            (Shift("a2", None, at(0), at(10)), old),
        ]
    )
    assert got == [
        seg(0, 10),
        seg(10, 60),
        seg(60, 90),
        seg(90, 105, "break"),
        seg(105, 180),
        Shift("a2", None, at(0), at(10)),
    ]


# ---- agent_intervals ----------------------------------------------------------


def interval_row(minute: int, agent: str, team: str, **seconds: Any) -> list[Any]:
    values = {
        "scheduled": 0,
        "logged_in": 0,
        "ready": 0,
        "on_contact": 0,
        "after_work": 0,
        "not_ready": 0,
        "reasons": {},
        "adherent": 0,
        "handled": 0,
        "handle": 0,
        **seconds,
    }
    return [
        at(minute).astimezone(UTC),
        agent,
        team,
        *(float(values[k]) for k in ("scheduled", "logged_in", "ready", "on_contact")),
        *(float(values[k]) for k in ("after_work", "not_ready")),
        {k: float(v) for k, v in values["reasons"].items()},
        float(values["adherent"]),
        values["handled"],
        float(values["handle"]),
        COMPUTED,
    ]


COMPUTED = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
M = 60  # seconds
EXPECTED_ROWS = [
    interval_row(0, "a1", "t1", scheduled=15 * M, logged_in=15 * M, ready=8 * M,
                 on_contact=5 * M, after_work=2 * M, adherent=15 * M, handled=1, handle=420),
    interval_row(0, "a2", "t1", scheduled=15 * M, logged_in=13 * M, ready=7 * M,
                 on_contact=5 * M, adherent=12 * M),
    interval_row(0, "a3", "t1", scheduled=15 * M),
    interval_row(0, "a4", "t2", scheduled=15 * M, logged_in=15 * M, ready=1 * M,
                 on_contact=14 * M, adherent=15 * M),
    interval_row(15, "a1", "t1", scheduled=15 * M, logged_in=15 * M, ready=7 * M,
                 on_contact=2 * M, after_work=1 * M, not_ready=5 * M, reasons={"break": 5 * M},
                 adherent=15 * M, handled=1, handle=180),
    interval_row(15, "a2", "t1", scheduled=15 * M, logged_in=15 * M, ready=4 * M,
                 on_contact=5 * M, after_work=2 * M, not_ready=4 * M, reasons={"lunch": 4 * M},
                 adherent=11 * M, handled=1, handle=720),
    interval_row(15, "a3", "t1", scheduled=15 * M),
    interval_row(15, "a4", "t2", scheduled=15 * M, logged_in=15 * M, on_contact=10 * M,
                 after_work=5 * M, adherent=15 * M, handled=1, handle=1740),
    interval_row(30, "a2", "t1", logged_in=1 * M, ready=1 * M),
]  # fmt: skip


def test_interval_rows_are_exact_and_sum_to_the_day() -> None:
    store = scenario_store()
    rows = A.interval_rows(
        A.load_timelines(store, W0),
        A.load_shifts(store, W0, at(45)),
        A.load_facts(store, W0),
        to_ms(W0),
        to_ms(at(45)),
        COMPUTED,
    )
    assert rows == EXPECTED_ROWS
    # the same sums as the API's one-interval figures
    a2 = [r for r in rows if r[1] == "a2"]
    assert sum(r[10] for r in a2) == 23 * M and sum(r[3] for r in a2) == 30 * M


def test_write_day_rewrites_closed_intervals_and_zeroes_emptied_rows() -> None:
    stale = ("a9", at(15), "t9")  # written before; a late logout emptied it
    kept = ("a1", at(0), "t1")
    store = scenario_store(stored_intervals=[stale, kept])
    day = Interval(to_ms(at(-9 * 60)), to_ms(at(15 * 60)), "today")
    A.write_day(store, day, to_ms(at(30)), COMPUTED)
    ((table, columns, rows, token),) = store.inserts
    assert (table, columns) == ("agent_intervals", A.INTERVAL_COLUMNS)
    assert token == f"agent_intervals|{day.start_ms}|{to_ms(COMPUTED)}"
    assert rows == [*EXPECTED_ROWS[:8], interval_row(15, "a9", "t9")]


def test_refresh_hook_adds_team_kpis_and_writes_each_boundary_once() -> None:
    store = scenario_store()
    settings = Settings()
    A._written_until.clear()
    timelines = A.load_timelines(store, W0)
    doc = A.refresh(settings, store, at(35), timelines)
    assert set(doc) == {"15m", "60m", "today"}
    assert list(doc["60m"]) == [
        "utilization_by_team",
        "utilization",
        "adherence_by_team",
        "adherence",
    ]
    assert doc["60m"]["adherence_by_team"] == {
        "t1": expected_team(["a1", "a2", "a3"], "adherence"),
        "t2": expected_team(["a4"], "adherence"),
    }
    assert doc["today"]["utilization"] == {
        "_all": expected_team(["a1", "a2", "a3", "a4"], "utilization")
    }
    ((_, _, rows, _),) = store.inserts
    assert [r[:2] for r in rows] == [r[:2] for r in EXPECTED_ROWS[:8]]  # closed by 09:30
    A.refresh(settings, store, at(44), timelines)
    assert len(store.inserts) == 1  # same boundary: nothing to rewrite
    A.refresh(settings, store, at(45), timelines)
    assert len(store.inserts) == 2
    A._written_until.clear()
