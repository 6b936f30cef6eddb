"""Hand-computed agent times: occupancy, utilization, adherence for one scheduled hour pair."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

from tests.unit.kpi import gen
from tests.unit.kpi.helpers import T0, ms
from vocflow.schemas.source.agent_event import AgentEvent
from vocflow.streams.kpi.agent_kpis import (
    AgentTimeline,
    adherence,
    all_agent_times,
    build_timelines,
    fold_agent,
    occupancy,
    utilization,
)
from vocflow.streams.kpi.models import Interval, Shift, to_ms

MIN = 60_000


def agent_ev(n: int, minute: float, state: str, reason: str | None = None) -> AgentEvent:
    return AgentEvent(
        event_id=f"s{n:02d}",
        agent_id="a1",
        team="t1" if n == 1 else None,
        state=state,
        reason=reason,
        occurred_at=T0 + timedelta(minutes=minute),
    )


# minutes after 09:00
EVENTS = [
    agent_ev(1, -5, "login"),
    agent_ev(2, 2, "ready"),
    agent_ev(3, 10, "on_contact"),
    agent_ev(4, 20, "after_work"),
    agent_ev(5, 25, "ready"),
    agent_ev(6, 40, "not_ready", "training"),
    agent_ev(7, 50, "on_contact"),
    agent_ev(8, 62, "not_ready", "break"),
    agent_ev(9, 80, "ready"),
    agent_ev(10, 90, "on_contact"),
    agent_ev(11, 110, "logout"),
]
SHIFTS = [
    Shift("a1", "t1", T0, T0 + timedelta(minutes=60)),
    Shift("a1", "t1", T0 + timedelta(minutes=60), T0 + timedelta(minutes=75), "break"),
    Shift("a1", "t1", T0 + timedelta(minutes=75), T0 + timedelta(minutes=120)),
    Shift("a2", "t1", T0, T0 + timedelta(minutes=120)),  # never logs in
]
TWO_HOURS = Interval(ms(0), ms(7200))


def timeline(events: list[AgentEvent]) -> AgentTimeline:
    tl = None
    for e in events:
        tl = fold_agent(tl, e) or tl
    assert tl is not None
    return tl


def test_state_times_and_ratios() -> None:
    a1, a2 = all_agent_times([timeline(EVENTS)], SHIFTS, TWO_HOURS)
    assert a1.team == "t1" and a2.team == "t1"
    assert a1.logged_in_ms == 110 * MIN  # 09:00-10:50
    assert a1.login_ms == 2 * MIN
    assert a1.ready_ms == (8 + 15 + 10) * MIN
    assert a1.on_contact_ms == (10 + 12 + 20) * MIN
    assert a1.after_work_ms == 5 * MIN
    assert a1.not_ready_by_reason == {"training": 10 * MIN, "break": 18 * MIN}
    assert a1.scheduled_ms == 120 * MIN
    # work 09:00-10:00: 09:02-09:40 + 09:50-10:00 = 48; break 10:00-10:15 on break from
    # 10:02 = 13; work 10:15-11:00: ready/on contact 10:20-10:50 = 30
    assert a1.adherent_ms == 91 * MIN
    assert occupancy([a1], "agent")["a1"].value == Fraction(47, 80)
    assert utilization([a1], "agent")["a1"].value == Fraction(47, 120)
    assert adherence([a1], "agent")["a1"].value == Fraction(91, 120)
    # the team adds a2's 120 scheduled minutes with nothing done; a2 has no occupancy base
    assert adherence([a1, a2])["t1"].value == Fraction(91, 240)
    assert utilization([a1, a2])["t1"].value == Fraction(47, 240)
    assert occupancy([a1, a2])["t1"].value == Fraction(47, 80)
    assert occupancy([a2], "agent")["a2"].value is None


def test_as_of_cuts_the_open_interval() -> None:
    (a1,) = all_agent_times([timeline(EVENTS)], SHIFTS[:3], TWO_HOURS, as_of=ms(3600))
    assert a1.scheduled_ms == 60 * MIN
    assert (a1.on_contact_ms, a1.after_work_ms, a1.ready_ms) == (20 * MIN, 5 * MIN, 23 * MIN)
    assert occupancy([a1], None)["_all"].value == Fraction(25, 48)


def test_out_of_order_and_duplicates() -> None:
    shuffled = EVENTS[::-1] + EVENTS[3:7]
    tl = timeline(shuffled)
    assert tl.entries == timeline(EVENTS).entries and tl.team == "t1"
    assert tl.version == len(EVENTS)  # duplicates did not count
    assert fold_agent(tl, EVENTS[4]) is None


def test_bulk_timelines_equal_folding_one_by_one() -> None:
    scenario = gen.agents(7, n_agents=12)
    events = scenario.agent_events
    folded: dict[str, AgentTimeline] = {}
    for e in events:
        new = fold_agent(folded.get(e.agent_id), e)
        if new is not None:
            folded[e.agent_id] = new
    rows = [
        (e.agent_id, e.event_id, to_ms(e.occurred_at), e.state.value, e.reason, e.team)
        for e in events
    ]
    built = {t.agent_id: t for t in build_timelines(rows)}
    assert built == folded
    assert len(events) - sum(len(t.entries) for t in built.values()) > 0  # had duplicates
