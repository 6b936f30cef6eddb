"""Agent state folding: occupancy, utilization and schedule adherence.

An ``AgentEvent`` says the agent *entered* a state; the state lasts until the
agent's next event. Durations therefore depend on the neighbour events, so a
late event must be inserted at its place in time, not appended: the timeline
keeps the agent's events sorted by ``(occurred_at, event_id)`` and computes
durations on demand for any interval. Duplicates (same event_id) are ignored.
``prune`` bounds memory by dropping events older than a horizon while keeping
the one that gives the state at the horizon.

Formulas (DOMAIN.md): occupancy = handling / (available + handling);
utilization = handling / scheduled; adherence = time in the scheduled state /
scheduled time. Handling = on_contact + after_work; available = ready. Teams
sum the agents' numerators and denominators (never average the ratios).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from vocflow.schemas.source.agent_event import AgentEvent, AgentState
from vocflow.streams.kpi.kpis import ALL, UNKNOWN
from vocflow.streams.kpi.models import Interval, Kpi, Shift, to_ms

# (occurred_ms, event_id, state, not-ready reason)
Entry = tuple[int, str, str, str | None]

WORK = "work"
WORK_STATES = frozenset(
    {AgentState.ready.value, AgentState.on_contact.value, AgentState.after_work.value}
)
UNSPECIFIED_REASON = "unspecified"


@dataclass(slots=True)
class AgentTimeline:
    """One agent's state changes, sorted; the value of the agent table."""

    agent_id: str
    team_stamp: tuple[int, str, str] | None = None  # latest event naming a team
    entries: tuple[Entry, ...] = ()
    version: int = 0

    @property
    def team(self) -> str | None:
        return self.team_stamp[2] if self.team_stamp else None


def fold_agent(timeline: AgentTimeline | None, event: AgentEvent) -> AgentTimeline | None:
    """Insert ``event`` at its place in time; None for a duplicate."""
    eid = event.event_id
    if timeline is None:
        timeline = AgentTimeline(event.agent_id)
    elif any(entry[1] == eid for entry in timeline.entries):
        return None
    ms = to_ms(event.occurred_at)
    entries = list(timeline.entries)
    insort(entries, (ms, eid, event.state.value, event.reason))
    team_stamp = timeline.team_stamp
    if event.team is not None:
        stamp = (ms, eid, event.team)
        if team_stamp is None or stamp > team_stamp:
            team_stamp = stamp
    return AgentTimeline(event.agent_id, team_stamp, tuple(entries), timeline.version + 1)


# (agent_id, event_id, occurred_ms, state, not-ready reason, team)
AgentRow = tuple[str, str, int, str, str | None, str | None]


def build_timelines(rows: Iterable[AgentRow]) -> list[AgentTimeline]:
    """Every agent's timeline from stored state changes at once, equal to
    folding them one by one with `fold_agent` (first copy of an event_id wins,
    latest team, version = events kept) but with one sort per agent instead of
    an insert per event, which is quadratic in a busy agent's day."""
    entries: dict[str, dict[str, Entry]] = {}
    teams: dict[str, tuple[int, str, str]] = {}
    for agent_id, event_id, ms, state, reason, team in rows:
        own = entries.setdefault(agent_id, {})
        if event_id in own:
            continue
        own[event_id] = (ms, event_id, state, reason)
        if team is not None:
            stamp = (ms, event_id, team)
            if agent_id not in teams or stamp > teams[agent_id]:
                teams[agent_id] = stamp
    return [
        AgentTimeline(agent_id, teams.get(agent_id), tuple(sorted(own.values())), len(own))
        for agent_id, own in entries.items()
    ]


def prune(timeline: AgentTimeline, before_ms: int) -> AgentTimeline | None:
    """Forget events before ``before_ms`` except the last one (the state at
    ``before_ms``). Durations from ``before_ms`` on are unchanged. A duplicate of
    a forgotten event would be re-inserted before the kept one, so it cannot
    change durations after ``before_ms`` either."""
    entries = timeline.entries
    keep_from = 0
    for i, entry in enumerate(entries):
        if entry[0] < before_ms:
            keep_from = i
        else:
            break
    if keep_from == 0:
        return None
    return AgentTimeline(
        timeline.agent_id, timeline.team_stamp, entries[keep_from:], timeline.version + 1
    )


@dataclass(slots=True)
class AgentTimes:
    """Milliseconds per state of one agent within one interval."""

    agent_id: str
    team: str | None
    logged_in_ms: int = 0
    login_ms: int = 0  # logged in, not yet ready or not ready
    ready_ms: int = 0
    on_contact_ms: int = 0
    after_work_ms: int = 0
    not_ready_ms: int = 0
    not_ready_by_reason: dict[str, int] = field(default_factory=dict)
    scheduled_ms: int = 0
    adherent_ms: int = 0

    @property
    def handling_ms(self) -> int:
        return self.on_contact_ms + self.after_work_ms

    @property
    def available_or_handling_ms(self) -> int:
        return self.ready_ms + self.on_contact_ms + self.after_work_ms


def _segments(entries: tuple[Entry, ...], start: int, end: int) -> Iterator[tuple[int, int, Entry]]:
    """(from, to, entry) for each state overlapping [start, end); the last state
    lasts until ``end``. Before the first event the agent counts as logged out."""
    for i, entry in enumerate(entries):
        seg_from = max(entry[0], start)
        seg_to = min(entries[i + 1][0], end) if i + 1 < len(entries) else end
        if seg_to > seg_from:
            yield seg_from, seg_to, entry


def _in_scheduled_state(activity: str, state: str, reason: str | None) -> bool:
    if activity == WORK:
        return state in WORK_STATES
    return state == AgentState.not_ready.value and reason == activity


def agent_times(
    timeline: AgentTimeline | None,
    shifts: Iterable[Shift],
    iv: Interval,
    as_of: int | None = None,
    agent_id: str | None = None,
) -> AgentTimes:
    """State times of one agent in ``iv``, counted up to ``as_of`` (default: the
    interval end): "today" at 10:00 must not count the afternoon as logged in
    or as scheduled. ``shifts`` are this agent's schedule segments."""
    end = iv.end_ms if as_of is None else max(iv.start_ms, min(iv.end_ms, as_of))
    shifts = list(shifts)
    agent = timeline.agent_id if timeline else (agent_id or shifts[0].agent_id)
    team = timeline.team if timeline else None
    if team is None:
        team = next((s.team for s in shifts if s.team is not None), None)
    times = AgentTimes(agent, team)
    entries = timeline.entries if timeline else ()
    segments = list(_segments(entries, iv.start_ms, end))
    for seg_from, seg_to, (_, _, state, reason) in segments:
        duration = seg_to - seg_from
        if state == "logout":
            continue
        times.logged_in_ms += duration
        if state == "ready":
            times.ready_ms += duration
        elif state == "on_contact":
            times.on_contact_ms += duration
        elif state == "after_work":
            times.after_work_ms += duration
        elif state == "not_ready":
            times.not_ready_ms += duration
            why = reason or UNSPECIFIED_REASON
            times.not_ready_by_reason[why] = times.not_ready_by_reason.get(why, 0) + duration
        else:
            times.login_ms += duration
    for shift in shifts:
        s_from = max(to_ms(shift.start), iv.start_ms)
        s_to = min(to_ms(shift.end), end)
        if s_to <= s_from:
            continue
        times.scheduled_ms += s_to - s_from
        for seg_from, seg_to, (_, _, state, reason) in segments:
            overlap = min(seg_to, s_to) - max(seg_from, s_from)
            if overlap > 0 and _in_scheduled_state(shift.activity, state, reason):
                times.adherent_ms += overlap
    return times


def all_agent_times(
    timelines: Iterable[AgentTimeline],
    shifts: Iterable[Shift],
    iv: Interval,
    as_of: int | None = None,
) -> list[AgentTimes]:
    """Every agent with events or a shift; a scheduled agent who never logged in
    is included (adherence 0), which is exactly what adherence must show."""
    by_agent: dict[str, list[Shift]] = {}
    for shift in shifts:
        by_agent.setdefault(shift.agent_id, []).append(shift)
    result = []
    seen: set[str] = set()
    for timeline in timelines:
        seen.add(timeline.agent_id)
        result.append(agent_times(timeline, by_agent.get(timeline.agent_id, ()), iv, as_of))
    for agent, agent_shifts in by_agent.items():
        if agent not in seen:
            result.append(agent_times(None, agent_shifts, iv, as_of, agent_id=agent))
    return sorted(result, key=lambda t: t.agent_id)


def _ratio(
    name: str, times: Iterable[AgentTimes], by: str | None, num: str, den: str
) -> dict[str, Kpi]:
    acc: dict[str, list[int]] = {}
    for t in times:
        key = ALL if by is None else (t.agent_id if by == "agent" else (t.team or UNKNOWN))
        cell = acc.setdefault(key, [0, 0])
        cell[0] += getattr(t, num)
        cell[1] += getattr(t, den)
    return {k: Kpi.of(name, "ratio", n, d) for k, (n, d) in acc.items()}


def occupancy(times: Iterable[AgentTimes], by: str | None = "team") -> dict[str, Kpi]:
    """handling / (ready + handling); ``by`` is "agent", "team" or None."""
    return _ratio("occupancy", times, by, "handling_ms", "available_or_handling_ms")


def utilization(times: Iterable[AgentTimes], by: str | None = "team") -> dict[str, Kpi]:
    """handling / scheduled (paid) time; handling outside the shift counts too,
    so overtime can push it above 1."""
    return _ratio("utilization", times, by, "handling_ms", "scheduled_ms")


def adherence(times: Iterable[AgentTimes], by: str | None = "team") -> dict[str, Kpi]:
    """Time in the scheduled state / scheduled time."""
    return _ratio("adherence", times, by, "adherent_ms", "scheduled_ms")
