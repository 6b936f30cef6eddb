"""Seeded generator of plausible contact and agent event streams for the KPI tests.

Lifecycles follow DOMAIN.md (offered -> queued -> answered | abandoned | timed
out -> holds / transfers -> ended -> wrap-up -> survey hours later; received
-> first response -> resolved for e-mail and app). The delivery order is the
event time plus a random delay (a few seconds, sometimes hours), and a share
of events is delivered twice; some offered events are lost altogether.
All times are whole milliseconds (agent events whole seconds).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from vocflow.schemas.source.agent_event import AgentEvent
from vocflow.schemas.source.contact import ContactEvent

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = datetime(2025, 3, 10, tzinfo=SHANGHAI)
QUEUES = ["billing_q", "network_q", "tech_q", "sales_q"]
ASYNC_QUEUES = {"email": "email_q", "app": "app_q"}
CATEGORIES = ["bill", "signal", "plan", "device"]
DEPARTMENTS = ["billing", "network", "tech_support", "sales_retention", "complaints"]
SHORT_BY_QUEUE = {"tech_q": 3000}


def at(ms: int) -> datetime:
    return DAY + timedelta(milliseconds=ms)


@dataclass
class Scenario:
    events: list[ContactEvent] = field(default_factory=list)  # delivery order
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_events: list[AgentEvent] = field(default_factory=list)
    shifts: list[tuple[str, str | None, int, int, str]] = field(default_factory=list)


class _Contact:
    def __init__(self, rng: random.Random, cid: str, customer: str) -> None:
        self.rng, self.cid, self.customer = rng, cid, customer
        self.out: list[tuple[int, ContactEvent]] = []
        self.n = 0

    def emit(self, ms: int, et: str, channel: str, **kw: Any) -> None:
        self.n += 1
        payload = kw.pop("payload", None)
        customer = self.customer if self.rng.random() < 0.7 else None
        event = ContactEvent(
            event_id=f"{self.cid}-{self.n:02d}",
            contact_id=self.cid,
            customer_id=customer,
            channel=channel,
            event_type=et,
            occurred_at=at(ms),
            payload=payload,
            **kw,
        )
        self.out.append((ms, event))


def _sync(c: _Contact, t0: int, agents: list[str]) -> None:
    rng = c.rng
    channel = "phone" if rng.random() < 0.7 else "chat"
    q = rng.choice(QUEUES)
    if rng.random() > 0.05:  # 5 % lose the offered event
        c.emit(t0, "offered", channel, queue=q)
    c.emit(t0 + rng.randint(0, 1500), "queued", channel, queue=q)
    r = rng.random()
    if r < 0.62:
        wait = rng.choice([rng.randint(0, 20_000), rng.randint(0, 120_000)])
        t = t0 + wait
        agent = rng.choice(agents)
        c.emit(
            t, "answered", channel, queue=q, agent_id=agent, payload={"wait_seconds": wait / 1000}
        )
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            t += rng.randint(5_000, 120_000)
            hold = rng.randint(1_000, 90_000)
            c.emit(
                t, "held", channel, queue=q, agent_id=agent, payload={"hold_seconds": hold / 1000}
            )
        if rng.random() < 0.15:
            t += rng.randint(10_000, 200_000)
            q2 = rng.choice([x for x in QUEUES if x != q])
            c.emit(t, "transferred", channel, queue=q, agent_id=agent, payload={"transfer_to": q2})
            w2 = rng.randint(0, 60_000)
            t += w2
            agent = rng.choice(agents)
            c.emit(
                t,
                "answered",
                channel,
                queue=rng.choice([q2, None]),
                agent_id=agent,
                payload={"wait_seconds": w2 / 1000},
            )
            q = q2
        if channel == "chat":
            for _ in range(rng.randint(0, 4)):
                c.emit(t + rng.randint(1, 60_000), "message", channel, queue=q, text="在吗")
        talk = rng.randint(20_000, 900_000)
        t += talk
        c.emit(
            t,
            "ended",
            channel,
            queue=rng.choice([q, None]),
            agent_id=agent,
            payload={"talk_seconds": talk / 1000},
        )
        if rng.random() < 0.05:  # the CTI re-sends the end with a corrected talk time
            c.emit(
                t + rng.randint(1, 5_000),
                "ended",
                channel,
                agent_id=agent,
                payload={"talk_seconds": (talk + rng.randint(-5_000, 5_000)) / 1000},
            )
        if rng.random() < 0.9:
            acw = rng.randint(0, 180_000)
            t += acw
            c.emit(
                t,
                "wrapup_done",
                channel,
                agent_id=agent,
                payload={"after_work_seconds": acw / 1000},
            )
        if rng.random() < 0.3:
            payload: dict[str, Any] = {}
            if rng.random() < 0.8:
                payload["csat"] = rng.randint(1, 5)
            if rng.random() < 0.6:
                payload["nps"] = rng.randint(0, 10)
            if rng.random() < 0.5 or not payload:
                payload["fcr"] = rng.random() < 0.7
            c.emit(
                t + rng.randint(60_000, 10 * 3_600_000),
                "survey",
                "survey",
                queue="survey_ivr",
                payload=payload,
            )
            if rng.random() < 0.15:  # a second, partial survey answer, later
                second = rng.choice(
                    [{"csat": rng.randint(1, 5)}, {"nps": rng.randint(0, 10)}, {"fcr": False}]
                )
                c.emit(
                    t + rng.randint(10 * 3_600_000, 12 * 3_600_000),
                    "survey",
                    "survey",
                    payload=second,
                )
    elif r < 0.84:
        wait = rng.choice([rng.randint(0, 6_000), rng.randint(0, 60_000)])
        c.emit(
            t0 + wait,
            "abandoned",
            channel,
            queue=rng.choice([q, None]),
            payload={"wait_seconds": wait / 1000},
        )
    elif r < 0.9:
        wait = rng.randint(120_000, 300_000)
        c.emit(t0 + wait, "timed_out", channel, queue=q, payload={"wait_seconds": wait / 1000})
    # else: still waiting, or its exit event was lost


def _async(c: _Contact, t0: int, agents: list[str]) -> None:
    rng = c.rng
    channel = rng.choice(["email", "app"])
    q = ASYNC_QUEUES[channel]
    c.emit(t0, "received", channel, queue=q, text="账单有误")
    for _ in range(rng.randint(0, 2)):
        c.emit(t0 + rng.randint(1, 3_600_000), "message", channel, queue=q, text="请尽快处理")
    if rng.random() < 0.85:
        agent = rng.choice(agents)
        t = t0 + rng.randint(300_000, 8 * 3_600_000)
        c.emit(t, "first_response", channel, queue=q, agent_id=agent)
        if rng.random() < 0.7:
            c.emit(
                t + rng.randint(600_000, 30 * 3_600_000),
                "resolved",
                channel,
                queue=q,
                agent_id=agent,
            )


def contacts(seed: int, target_events: int) -> Scenario:
    """Contacts arriving 08:00-20:00 until ``target_events`` deliveries (with duplicates)."""
    rng = random.Random(seed)
    agents = [f"a{i:02d}" for i in range(40)]
    customers = [f"cust{i}" for i in range(2500)]
    scenario = Scenario()
    deliveries: list[tuple[int, int, ContactEvent]] = []
    n = 0
    while len(deliveries) < target_events:
        n += 1
        c = _Contact(rng, f"c{n:05d}", rng.choice(customers))
        t0 = 8 * 3_600_000 + rng.randint(0, 12 * 3_600_000)
        (_sync if rng.random() < 0.75 else _async)(c, t0, agents)
        for ms, event in c.out:
            delay = rng.randint(0, 5_000) if rng.random() < 0.9 else rng.randint(0, 3 * 3_600_000)
            deliveries.append((ms + delay, rng.randint(0, 1 << 30), event))
            if rng.random() < 0.04:
                deliveries.append(
                    (ms + delay + rng.randint(0, 3_600_000), rng.randint(0, 1 << 30), event)
                )
        if rng.random() < 0.9:
            scenario.annotations[c.cid] = {
                "department": rng.choice(DEPARTMENTS),
                "category": rng.choice(CATEGORIES),
            }
    deliveries.sort(key=lambda d: (d[0], d[1]))
    scenario.events = [event for _, _, event in deliveries]
    return scenario


def agents(seed: int, n_agents: int = 40) -> Scenario:
    """A day of agent states at whole seconds, with shifts, breaks, shuffled and duplicated."""
    rng = random.Random(seed)
    scenario = Scenario()
    deliveries: list[tuple[int, int, AgentEvent]] = []
    for i in range(n_agents):
        agent = f"a{i:02d}"
        team = f"team{i % 4}" if i % 10 else None
        shift_start = (8 + rng.randint(0, 4)) * 3_600_000
        shift_end = shift_start + 8 * 3_600_000
        brk = shift_start + rng.randint(2, 5) * 3_600_000
        scenario.shifts.append((agent, f"team{i % 4}", shift_start, brk, "work"))
        scenario.shifts.append((agent, f"team{i % 4}", brk, brk + 1_800_000, "break"))
        scenario.shifts.append((agent, f"team{i % 4}", brk + 1_800_000, shift_end, "work"))
        if i == n_agents - 1:
            continue  # scheduled, never logs in
        t = shift_start + rng.randint(-600, 900) * 1000
        states: list[tuple[int, str, str | None]] = [(t, "login", None)]
        end = shift_end + rng.randint(-900, 1800) * 1000
        while t < end:
            t += rng.randint(1, 600) * 1000
            r = rng.random()
            if r < 0.35:
                states.append((t, "ready", None))
            elif r < 0.7:
                states.append((t, "on_contact", None))
            elif r < 0.85:
                states.append((t, "after_work", None))
            else:
                reason = rng.choice(["break", "training", "meeting", None])
                states.append((t, "not_ready", reason))
        states.append((t + 1000, "logout", None))
        for n, (ms, state, reason) in enumerate(states, start=1):
            event = AgentEvent(
                event_id=f"{agent}-{n:04d}",
                agent_id=agent,
                team=team if rng.random() < 0.5 else None,
                state=state,
                reason=reason,
                occurred_at=at(ms),
            )
            delay = rng.randint(0, 10_000) if rng.random() < 0.9 else rng.randint(0, 7_200_000)
            deliveries.append((ms + delay, rng.randint(0, 1 << 30), event))
            if rng.random() < 0.05:
                deliveries.append((ms + delay + 1, rng.randint(0, 1 << 30), event))
    deliveries.sort(key=lambda d: (d[0], d[1]))
    scenario.agent_events = [event for _, _, event in deliveries]
    return scenario
