"""Agents (坐席), their skills and shifts, sized from the expected load.

The roster is planned the way a workforce-management team would: expected
workload per queue and hour (arrivals x mean handling time, in Erlangs),
square-root safety staffing (N = E + beta * sqrt(E)) for the synchronous
queues, a flat back-office staff for the asynchronous backlog, grossed up for
shrinkage (breaks, training, meetings) and covered greedily with 9-hour
shifts. The result is a day that runs near 80/20 at plan, so that injected
scenarios (an outage, a staffing shortfall) visibly break it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from vocflow.streams.tools.simulator.config import SimConfig
from vocflow.streams.tools.simulator.curves import (
    DEPARTMENTS,
    GROUPS,
    HANDLING,
    SYNC_GROUPS,
    ArrivalModel,
)

HOUR_MS = 3_600_000
MIN_MS = 60_000
SHIFT_HOURS = 9
SHRINKAGE = 0.18
SAFETY_BETA = 0.3
OFFICE_HOURS = range(8, 22)


def queue_name(group: str, dept: str) -> str:
    return f"{group}.{dept}"


@dataclass(slots=True, eq=False)
class Agent:
    """One agent and their live state; identity-hashed so it can key the idle sets."""

    id: str
    team: str
    group: str
    skills: tuple[str, ...]
    speed: float  # handling-time factor (<1 faster)
    skill: float  # added to the solve probability
    shift_start: int  # ms from horizon start (may be negative: started before it)
    shift_end: int
    breaks: list[tuple[int, int, str]] = field(default_factory=list)
    absent_from: int = -1
    absent_to: int = -1
    # live state
    seq: int = 0
    next_break: int = 0
    idle: bool = False
    logged_in: bool = False
    away: bool = False


def _breaks(rng: random.Random, start: int, end: int) -> list[tuple[int, int, str]]:
    """Two short breaks, a lunch break, sometimes training or a team meeting."""
    out = [
        (start + 2 * HOUR_MS + int(rng.uniform(-15, 15) * MIN_MS), 15 * MIN_MS, "break"),
        (start + 4 * HOUR_MS + int(rng.uniform(-30, 30) * MIN_MS), 45 * MIN_MS, "break"),
        (start + int(6.75 * HOUR_MS) + int(rng.uniform(-15, 15) * MIN_MS), 15 * MIN_MS, "break"),
    ]
    x = rng.random()
    if x < 0.1:
        out.append((start + int(rng.uniform(1, 1.8) * HOUR_MS), 60 * MIN_MS, "training"))
    elif x < 0.18:
        out.append((start + int(rng.uniform(5, 6) * HOUR_MS), 30 * MIN_MS, "meeting"))
    out.sort()
    kept: list[tuple[int, int, str]] = []
    for b in out:
        if kept and b[0] < kept[-1][0] + kept[-1][1] + 10 * MIN_MS:
            continue  # never two not-ready periods back to back
        if b[0] + b[1] < end - 15 * MIN_MS:
            kept.append(b)
    return kept


def required_agents(config: SimConfig, model: ArrivalModel) -> dict[str, list[int]]:
    """Agents needed per queue per horizon hour (before shrinkage is added)."""
    load = model.expected_load(config.escalation_rate)
    first_hour = model.first_minute // 60
    need: dict[str, list[int]] = {}
    for (group, dept), arrivals in load.items():
        aht = HANDLING[(group, dept)].mean_seconds
        q = queue_name(group, dept)
        if group in SYNC_GROUPS:
            row = []
            for a in arrivals:
                erlangs = a * aht / 3600
                n = erlangs + SAFETY_BETA * math.sqrt(erlangs) if erlangs > 0 else 0
                row.append(max(1, math.ceil(n * config.staffing_factor)))
            need[q] = row
        else:
            hours = len(arrivals)
            days = max(1.0, hours / 24)
            work_hours = sum(arrivals) * aht / 3600 / days
            per_hour = math.ceil(work_hours / len(OFFICE_HOURS) / 0.9 * config.staffing_factor)
            need[q] = [
                max(1, per_hour) if (first_hour + k) % 24 in OFFICE_HOURS else 0
                for k in range(hours)
            ]
    return need


def build_roster(config: SimConfig, model: ArrivalModel, rng: random.Random) -> list[Agent]:
    """Agents with shifts covering the horizon, skills, breaks and shortfall absences."""
    need = required_agents(config, model)
    first_hour = model.first_minute // 60
    offset_ms = model.first_minute * MIN_MS - first_hour * HOUR_MS  # horizon start in hour
    agents: list[Agent] = []
    for group in GROUPS:
        for dept in DEPARTMENTS:
            q = queue_name(group, dept)
            row = [math.ceil(n / (1 - SHRINKAGE)) if n else 0 for n in need[q]]
            coverage = [0] * len(row)
            team_size = 0
            for k, wanted in enumerate(row):
                deficit = wanted - coverage[k]
                for _ in range(max(0, deficit)):
                    for j in range(k, min(len(row), k + SHIFT_HOURS)):
                        coverage[j] += 1
                    start = k * HOUR_MS - offset_ms + int(rng.gauss(0, 2) * MIN_MS)
                    end = start + SHIFT_HOURS * HOUR_MS
                    skills = [q]
                    if rng.random() < 0.35:
                        other = rng.choice([d for d in DEPARTMENTS if d != dept])
                        skills.append(queue_name(group, other))
                    team_size += 1
                    agents.append(
                        Agent(
                            id="",
                            team=f"{group}-{dept}-T{(team_size - 1) // 15 + 1}",
                            group=group,
                            skills=tuple(skills),
                            speed=math.exp(rng.gauss(0, 0.18)),
                            skill=rng.gauss(0, 0.06),
                            shift_start=start,
                            shift_end=end,
                            breaks=_breaks(rng, start, end),
                        )
                    )
    agents.sort(key=lambda a: (a.shift_start, a.team))
    for i, a in enumerate(agents):
        a.id = f"{config.id_prefix}-A{i + 1:04d}"
    _apply_shortfalls(config, agents, rng, offset_ms, first_hour)
    return agents


def _apply_shortfalls(
    config: SimConfig, agents: list[Agent], rng: random.Random, offset_ms: int, first_hour: int
) -> None:
    horizon0 = first_hour * HOUR_MS + offset_ms  # ms from midnight of the horizon start
    for s in config.shortfalls:
        start = int(s.start_hour * HOUR_MS) - horizon0
        end = start + int(s.duration_minutes * MIN_MS)
        pool = [a for a in agents if a.skills[0] == s.queue and a.absent_from < 0]
        pool = [a for a in pool if a.shift_start < end and a.shift_end > start]
        for a in rng.sample(pool, round(len(pool) * s.intensity)):
            a.absent_from, a.absent_to = start, end
