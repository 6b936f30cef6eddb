"""50,000 shuffled, duplicated events: fold + KPIs must equal the naive oracle exactly."""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from tests.unit.kpi import gen, oracle
from vocflow.streams.kpi import kpis as K
from vocflow.streams.kpi.agent_kpis import (
    AgentTimeline,
    adherence,
    all_agent_times,
    fold_agent,
    occupancy,
    prune,
    utilization,
)
from vocflow.streams.kpi.fold import annotate, fold
from vocflow.streams.kpi.models import HOUR_MS, ContactFact, FoldConfig, Interval, Kpi, Shift
from vocflow.streams.kpi.models import to_ms as fold_to_ms

SEED = 20250310
N_EVENTS = 50_000
CONFIG = FoldConfig(short_abandon_ms_by_queue=gen.SHORT_BY_QUEUE)
DAY0 = oracle.ms_of(gen.DAY)
GROUPINGS: list[Any] = [None, "queue", "last_queue", "channel", "department", "category", "agent"]

Table = dict[str, tuple[Fraction | None, int, int]]


def plain(result: dict[str, Kpi]) -> Table:
    return {g: (k.value, k.numerator, k.denominator) for g, k in result.items()}


def fold_stream(
    events: list[Any], annotations: dict[str, dict[str, Any]]
) -> dict[str, ContactFact]:
    facts: dict[str, ContactFact] = {}
    for event in events:
        new = fold(facts.get(event.contact_id), event, CONFIG)
        if new is None:
            continue
        if new.department is None and event.contact_id in annotations:
            new = annotate(new, **annotations[event.contact_id]) or new
        facts[event.contact_id] = new
    return facts


@pytest.fixture(scope="module")
def scenario() -> gen.Scenario:
    return gen.contacts(SEED, N_EVENTS)


@pytest.fixture(scope="module")
def facts(scenario: gen.Scenario) -> list[ContactFact]:
    return list(fold_stream(scenario.events, scenario.annotations).values())


@pytest.fixture(scope="module")
def records(scenario: gen.Scenario) -> dict[str, dict[str, Any]]:
    return oracle.contact_records(
        scenario.events, scenario.annotations, 5000, dict(gen.SHORT_BY_QUEUE)
    )


def test_stream_is_hostile_enough(scenario: gen.Scenario) -> None:
    events = scenario.events
    assert len(events) >= N_EVENTS
    ids = [e.event_id for e in events]
    assert len(ids) - len(set(ids)) > 1000  # duplicates
    last_seen: dict[str, int] = {}
    out_of_order = 0
    for e in events:
        ms = oracle.ms_of(e.occurred_at)
        if ms < last_seen.get(e.contact_id, -1):
            out_of_order += 1
        last_seen[e.contact_id] = max(ms, last_seen.get(e.contact_id, -1))
    assert out_of_order > 1000
    kinds = {e.event_type.value for e in events}
    assert kinds >= {
        "offered",
        "answered",
        "abandoned",
        "timed_out",
        "held",
        "transferred",
        "ended",
        "wrapup_done",
        "survey",
        "received",
        "first_response",
        "resolved",
        "message",
    }


def test_fold_is_order_independent(scenario: gen.Scenario, facts: list[ContactFact]) -> None:
    shuffled = list(scenario.events)
    random.Random(7).shuffle(shuffled)
    shuffled += shuffled[: len(shuffled) // 10]  # more duplicates, at the end
    other = fold_stream(shuffled, scenario.annotations)

    def strip(f: ContactFact) -> dict[str, Any]:
        d = f.to_dict()
        del d["version"], d["seen"]
        return d

    assert len(other) == len(facts)
    for f in facts:
        assert strip(other[f.contact_id]) == strip(f), f.contact_id
        assert ContactFact.from_dict(f.to_dict()) == f


def intervals() -> list[tuple[int, int]]:
    rng = random.Random(SEED)
    quarter = 15 * 60_000
    out = [(DAY0, DAY0 + 24 * HOUR_MS), (DAY0 + 8 * HOUR_MS, DAY0 + 48 * HOUR_MS)]
    out += [(DAY0 + q * quarter, DAY0 + (q + 1) * quarter) for q in rng.sample(range(32, 88), 8)]
    out += [
        (DAY0 + m * 60_000 - HOUR_MS, DAY0 + m * 60_000) for m in rng.sample(range(540, 1320), 4)
    ]
    return out


INTERVAL_KPIS: dict[str, Callable[..., dict[str, Kpi]]] = {
    "volume": K.volume,
    "offered": K.offered,
    "service_level": K.service_level,
    "asa": K.asa,
    "abandonment_rate": K.abandonment_rate,
    "aht": K.aht,
    "transfer_rate": K.transfer_rate,
    "csat": K.csat,
    "nps": K.nps,
    "fcr_survey": K.fcr_survey,
    "fcr": K.fcr,
    "repeat_contact_rate": K.repeat_contact_rate,
    "complaint_rate": K.complaint_rate,
}


@pytest.mark.parametrize("name", sorted(INTERVAL_KPIS))
def test_interval_kpis_match_oracle(
    name: str, facts: list[ContactFact], records: dict[str, dict[str, Any]]
) -> None:
    fn = INTERVAL_KPIS[name]
    checked = 0
    for i, (start, end) in enumerate(intervals()):
        iv = Interval(start, end)
        if i < 3:
            groupings = GROUPINGS
        elif name in ("fcr", "repeat_contact_rate"):
            groupings = [None]
        else:
            groupings = [None, "queue", "agent"]
        for by in groupings:
            if name == "service_level":
                for t in (3, 10, 20):
                    got = plain(fn(facts, iv, threshold_s=t, by=by))
                    want = oracle.kpi(records, name, (start, end), by, threshold_ms=t * 1000)
                    assert got == want, (name, t, iv, by)
            elif name in ("fcr", "repeat_contact_rate"):
                for hours in (1, 3, 24):
                    got = plain(fn(facts, iv, window_ms=hours * HOUR_MS, by=by))
                    want = oracle.kpi(records, name, (start, end), by, window_ms=hours * HOUR_MS)
                    assert got == want, (name, hours, iv, by)
            else:
                got = plain(fn(facts, iv, by=by))
                assert got == oracle.kpi(records, name, (start, end), by), (name, iv, by)
            checked += sum(1 for k in got.values() if k[0] is not None)
    assert checked > 20  # the comparison saw real values, not only empty groups


def test_point_in_time_kpis_match_oracle(
    facts: list[ContactFact], records: dict[str, dict[str, Any]]
) -> None:
    nonzero = 0
    for minute in range(8 * 60, 23 * 60, 17):
        t = DAY0 + minute * 60_000
        for by in (None, "queue", "channel"):
            depth, oldest = oracle.waiting(records, t, by, K.DEFAULT_STALE_WAIT_MS)
            assert plain(K.queue_depth(facts, t, by=by)) == depth, (t, by)
            assert plain(K.oldest_waiting(facts, t, by=by)) == oldest, (t, by)
            assert plain(K.backlog(facts, t, by=by)) == oracle.backlog(records, t, by)
            nonzero += len(depth)
    assert nonzero > 50


def test_async_sla_breaches_match_oracle(
    facts: list[ContactFact], records: dict[str, dict[str, Any]]
) -> None:
    for start_h in range(8, 20, 3):
        iv = (DAY0 + start_h * HOUR_MS, DAY0 + (start_h + 3) * HOUR_MS)
        for at_h in (start_h + 3, start_h + 6, 48):
            at = DAY0 + at_h * HOUR_MS
            for by in (None, "queue"):
                got = K.first_response_breaches(facts, Interval(*iv), at, by=by)
                want = oracle.sla_breaches(records, iv, at, 4 * HOUR_MS, "first_response", by)
                assert plain(got) == want
                got = K.resolution_breaches(facts, Interval(*iv), at, by=by)
                want = oracle.sla_breaches(records, iv, at, 24 * HOUR_MS, "resolved", by)
                assert plain(got) == want


# --- agents -----------------------------------------------------------------


@pytest.fixture(scope="module")
def agent_scenario() -> gen.Scenario:
    return gen.agents(SEED)


def _timelines(events: list[Any]) -> dict[str, AgentTimeline]:
    timelines: dict[str, AgentTimeline] = {}
    for event in events:
        new = fold_agent(timelines.get(event.agent_id), event)
        if new is not None:
            timelines[event.agent_id] = new
    return timelines


AGENT_CASES = [  # (start h, end h, as_of h)
    (0, 24, 24),
    (8, 16, 14.5),
    (9, 10, 10),
    (13, 14, 14),
    (17.25, 17.5, 18),
    (20, 21, 20.5),
]


@pytest.mark.parametrize(("start_h", "end_h", "as_of_h"), AGENT_CASES)
def test_agent_times_match_per_second_oracle(
    agent_scenario: gen.Scenario, start_h: float, end_h: float, as_of_h: float
) -> None:
    iv = Interval(DAY0 + int(start_h * HOUR_MS), DAY0 + int(end_h * HOUR_MS))
    as_of = DAY0 + int(as_of_h * HOUR_MS)
    timelines = _timelines(agent_scenario.agent_events)
    shifts = [
        Shift(a, team, gen.at(s), gen.at(e), activity)
        for a, team, s, e, activity in agent_scenario.shifts
    ]
    got = {t.agent_id: t for t in all_agent_times(timelines.values(), shifts, iv, as_of)}
    abs_shifts = [(a, tm, DAY0 + s, DAY0 + e, act) for a, tm, s, e, act in agent_scenario.shifts]
    want = oracle.agent_seconds(
        agent_scenario.agent_events, abs_shifts, (iv.start_ms, iv.end_ms), as_of
    )
    assert set(got) == set(want)
    for agent, w in want.items():
        g = got[agent]
        assert g.team == w["team"]
        assert (
            g.logged_in_ms,
            g.ready_ms,
            g.on_contact_ms,
            g.after_work_ms,
            g.not_ready_ms,
            g.login_ms,
            g.scheduled_ms,
            g.adherent_ms,
        ) == tuple(
            1000 * w[k]
            for k in (
                "logged_in",
                "ready",
                "on_contact",
                "after_work",
                "not_ready",
                "login",
                "scheduled",
                "adherent",
            )
        ), agent
        assert g.not_ready_by_reason == {r: 1000 * s for r, s in w["reasons"].items()}
    times = list(got.values())
    for by in (None, "team", "agent"):
        teams: dict[str, list[int]] = {}
        for agent, w in want.items():
            key = "_all" if by is None else (agent if by == "agent" else (w["team"] or "unknown"))
            cell = teams.setdefault(key, [0, 0, 0, 0])
            handling = w["on_contact"] + w["after_work"]
            cell[0] += handling
            cell[1] += w["ready"] + handling
            cell[2] += w["scheduled"]
            cell[3] += w["adherent"]

        def ratio(n: int, d: int) -> Fraction | None:
            return Fraction(n, d) if d else None

        assert {k: v.value for k, v in occupancy(times, by).items()} == {
            k: ratio(c[0], c[1]) for k, c in teams.items()
        }
        assert {k: v.value for k, v in utilization(times, by).items()} == {
            k: ratio(c[0], c[2]) for k, c in teams.items()
        }
        assert {k: v.value for k, v in adherence(times, by).items()} == {
            k: ratio(c[3], c[2]) for k, c in teams.items()
        }


def test_prune_keeps_durations_after_horizon(agent_scenario: gen.Scenario) -> None:
    timelines = _timelines(agent_scenario.agent_events)
    horizon = DAY0 + 14 * HOUR_MS
    iv = Interval(horizon, DAY0 + 24 * HOUR_MS)
    pruned = [prune(t, horizon) or t for t in timelines.values()]
    assert sum(len(t.entries) for t in pruned) < sum(len(t.entries) for t in timelines.values())
    full = all_agent_times(timelines.values(), [], iv)
    short = all_agent_times(pruned, [], iv)
    assert full == short
    # a duplicate of a forgotten event does not disturb the times after the horizon
    first = agent_scenario.agent_events[0]
    again = [fold_agent(t, first) or t if t.agent_id == first.agent_id else t for t in pruned]
    assert all_agent_times(again, [], iv) == full
    assert fold_to_ms(first.occurred_at) < horizon
