"""Discrete-event simulation of a contact-center day, yielded in event-time order.

One heap holds everything that will happen: arrivals, queue entries,
abandonment deadlines, ends of talk and wrap-up, agent timers (login, breaks,
shift end, absences) and finished records due later (hold, survey,
resolution). Popping it in time order and emitting each record when its time
comes makes the output ordered by construction, and makes the lifecycle
consistent by construction too: a contact is only answered by an agent that
is idle at that instant, so no agent ever handles two contacts at once, and
``wait_seconds`` is computed from the same integer-millisecond clock that
stamps ``queued`` and ``answered``.

The clock is pure event time (milliseconds from the horizon start); how fast
the records are replayed (``speedup``) is the caller's business.

Randomness comes from separate streams (customers, roster, baseline
arrivals, each scenario, service, texts) so that adding a scenario leaves the
baseline arrivals unchanged: the difference between two runs is the
scenario's effect, not noise.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from vocflow.streams.tools.simulator.config import SimConfig
from vocflow.streams.tools.simulator.curves import (
    CHANNEL_GROUP,
    DEPARTMENTS,
    GROUPS,
    HANDLING,
    MAX_WAIT_MS,
    PATIENCE,
    SHORT_ABANDON_SHARE,
    SYNC_GROUPS,
    TRANSFER_ACW,
    TRANSFER_TALK,
    ArrivalModel,
    pick_cum,
)
from vocflow.streams.tools.simulator.people import Customer, CustomerBase, make_customers
from vocflow.streams.tools.simulator.roster import (
    HOUR_MS,
    MIN_MS,
    Agent,
    build_roster,
    queue_name,
)
from vocflow.streams.tools.simulator.texts import ISSUE_BY_ID, OUTAGE_ISSUES, Issue, TextGenerator

SOURCE = "simulator"


class SimRecord(NamedTuple):
    """One simulated record: what a channel adapter would publish, plus ground truth.

    ``value`` validates as ContactEvent (kind "contact"), AgentEvent ("agent")
    or CustomerProfile ("profile"); ``key`` is its Kafka key. ``labels`` is set
    on records that carry customer text and says what the text was built to
    mean (department, business_type, sentiment, ...): it must never be
    published with the value, it is for measuring the pipeline.
    """

    kind: str
    key: str
    value: dict[str, Any]
    at: datetime
    labels: dict[str, Any] | None = None


# Action codes (the heap's third element); EMIT carries a finished SimRecord.
EMIT, ARRIVE, SCEN_ARRIVE, REPEAT, QUEUE, ABANDON, LEG_END, WRAP_END = range(8)
AGENT_FREE, LOGIN, BREAK_DUE, SHIFT_END, ABSENT_START, ABSENT_END = range(8, 14)

WAITING, TALKING, DONE = 1, 2, 3

SOLVE_P = {
    "billing": 0.82,
    "network": 0.68,
    "tech_support": 0.76,
    "sales_retention": 0.86,
    "complaints": 0.6,
}
SURVEY_P = {
    "phone": 0.22,
    "chat": 0.35,
    "wechat": 0.3,
    "email": 0.15,
    "app": 0.2,
    "weibo": 0.05,
    "sms": 0.1,
}
MISROUTE_P = {"voice": 0.08, "chat": 0.05, "office": 0.04}
OUTAGE_CHANNELS = (
    ("phone", 0.45),
    ("chat", 0.15),
    ("wechat", 0.15),
    ("app", 0.1),
    ("weibo", 0.1),
    ("sms", 0.05),
)
PROMO_CHANNELS = (("phone", 0.3), ("chat", 0.25), ("wechat", 0.25), ("app", 0.15), ("sms", 0.05))
PROMO_ISSUES = (("sales.promotion", 0.6), ("sales.plan_change", 0.3), ("sales.data_pack", 0.1))


class _Contact:
    """Live state of one contact across its legs (a transfer starts a new leg)."""

    __slots__ = (
        "agent",
        "attempt",
        "channel",
        "customer",
        "group",
        "hold",
        "id",
        "issue",
        "leg",
        "queue",
        "queued_at",
        "scenario",
        "seq",
        "state",
        "talk",
        "total_wait",
        "transfer_to",
        "transfers",
        "true_dept",
    )

    agent: Agent | None
    attempt: int
    channel: str
    customer: Customer | None
    group: str
    hold: float
    id: str
    issue: Issue
    leg: int
    queue: str
    queued_at: int
    scenario: str | None
    seq: int
    state: int
    talk: float
    total_wait: int
    transfer_to: str | None
    transfers: int
    true_dept: str

    def __init__(self) -> None:
        self.seq = 0
        self.leg = 0
        self.transfers = 0
        self.state = 0
        self.agent: Agent | None = None
        self.transfer_to: str | None = None
        self.queued_at = 0
        self.total_wait = 0
        self.talk = 0.0
        self.hold = 0.0


class _Scenario:
    """An injected arrival stream (outage or promotion spike) with its own random stream."""

    __slots__ = ("channels", "city", "issues", "kind", "promo", "rates", "rng", "t")

    def __init__(
        self,
        kind: str,
        rng: random.Random,
        rates: list[float],
        channels: tuple[tuple[str, float], ...],
        issues: tuple[tuple[Issue, float], ...],
        city: str | None = None,
        promo: str | None = None,
    ) -> None:
        self.kind = kind
        self.rng = rng
        self.rates = rates
        self.channels = channels
        self.issues = issues
        self.city = city
        self.promo = promo
        self.t = 0.0


def _trapezoid_rates(
    start_ms: int, duration_ms: int, per_minute: float, minutes: int
) -> list[float]:
    """Per-minute rate (per ms) of a burst: ramp up over 10 %, decay over the last 30 %."""
    rates = [0.0] * minutes
    if duration_ms <= 0:
        return rates
    for i in range(minutes):
        mid = i * MIN_MS + MIN_MS // 2 - start_ms
        if not 0 <= mid < duration_ms:
            continue
        f = mid / duration_ms
        shape = f / 0.1 if f < 0.1 else (1.0 - f) / 0.3 if f > 0.7 else 1.0
        rates[i] = per_minute * shape / MIN_MS
    return rates


def _weighted(rng: random.Random, items: tuple[tuple[Any, float], ...]) -> Any:
    x = rng.random() * sum(w for _, w in items)
    for item, w in items:
        x -= w
        if x < 0:
            return item
    return items[-1][0]


class _Sim:
    """All state of one run; ``run()`` is the generator behind ``simulate``."""

    def __init__(self, config: SimConfig) -> None:
        known = {queue_name(g, d) for g in GROUPS for d in DEPARTMENTS}
        for s in config.shortfalls:
            if s.queue not in known:
                raise ValueError(
                    f"StaffingShortfall.queue {s.queue!r} is not one of {sorted(known)}"
                )
        self.config = config
        seed = config.seed
        self.rng = random.Random(f"{seed}/service")
        self.r = self.rng.random
        self.arr_rng = random.Random(f"{seed}/arrivals")
        self.texts = TextGenerator(
            random.Random(f"{seed}/texts"),
            {
                "english_rate": config.english_rate,
                "mixed_rate": config.mixed_rate,
                "pii_rate": config.pii_rate,
                "escalation_rate": config.escalation_rate,
            },
        )
        self.customers = CustomerBase(
            make_customers(random.Random(f"{seed}/customers"), config.customers)
        )
        self.model = ArrivalModel(config)
        self.agents = build_roster(config, self.model, random.Random(f"{seed}/roster"))
        self.base = config.start
        self.base_hour = config.start_hour
        self.horizon_ms = int(config.duration_hours * HOUR_MS)
        self.queues: dict[str, tuple[deque[_Contact], dict[Agent, None]]] = {
            queue_name(g, d): (deque(), {}) for g in GROUPS for d in DEPARTMENTS
        }
        self.heap: list[tuple[int, int, int, Any]] = []
        self.seq = 0
        self.n_contacts = 0
        self.out: list[SimRecord] = []
        self._iso_t = -1
        self._iso: tuple[datetime, str] = (self.base, "")
        self.handlers: dict[int, Callable[[Any, int], None]] = {
            ARRIVE: self._on_arrive,
            SCEN_ARRIVE: self._on_scenario_arrive,
            REPEAT: self._on_repeat,
            QUEUE: self._on_queue,
            ABANDON: self._on_abandon,
            LEG_END: self._on_leg_end,
            WRAP_END: self._on_wrap_end,
            AGENT_FREE: self._on_agent_free,
            LOGIN: self._on_login,
            BREAK_DUE: self._on_interrupt,
            SHIFT_END: self._on_interrupt,
            ABSENT_START: self._on_interrupt,
            ABSENT_END: self._on_absent_end,
        }
        self.scenarios = self._scenarios()

    # ------------------------------------------------------------------ plumbing
    def push(self, t: int, code: int, obj: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, code, obj))

    def stamp(self, t: int) -> tuple[datetime, str]:
        if t != self._iso_t:
            at = self.base + timedelta(milliseconds=t)
            self._iso = (at, at.isoformat(timespec="milliseconds"))
            self._iso_t = t
        return self._iso

    def lognorm(self, p: tuple[float, float]) -> float:
        return self.rng.lognormvariate(p[0], p[1])

    def contact_event(
        self,
        c: _Contact,
        event_type: str,
        t: int,
        *,
        agent: Agent | None = None,
        payload: dict[str, Any] | None = None,
        text: str | None = None,
        labels: dict[str, Any] | None = None,
    ) -> SimRecord:
        c.seq += 1
        at, iso = self.stamp(t)
        value: dict[str, Any] = {
            "event_id": f"{c.id}-{c.seq}",
            "contact_id": c.id,
            "customer_id": c.customer.id if c.customer is not None else None,
            "channel": c.channel,
            "event_type": event_type,
            "occurred_at": iso,
            "queue": c.queue,
            "source": SOURCE,
        }
        if agent is not None:
            value["agent_id"] = agent.id
        if text is not None:
            value["text"] = text
        if payload is not None:
            value["payload"] = payload
        return SimRecord("contact", c.id, value, at, labels)

    def agent_event(
        self,
        a: Agent,
        state: str,
        t: int,
        reason: str | None = None,
        contact_id: str | None = None,
    ) -> None:
        a.seq += 1
        at, iso = self.stamp(t)
        value: dict[str, Any] = {
            "event_id": f"{a.id}-{a.seq}",
            "agent_id": a.id,
            "team": a.team,
            "state": state,
            "occurred_at": iso,
            "source": SOURCE,
        }
        if reason is not None:
            value["reason"] = reason
        if contact_id is not None:
            value["contact_id"] = contact_id
        self.out.append(SimRecord("agent", a.id, value, at))

    def hour_of_day(self, t: int) -> int:
        return int(self.base_hour + t / HOUR_MS) % 24

    # --------------------------------------------------------------------- setup
    def _scenarios(self) -> list[_Scenario]:
        cfg = self.config
        start_of_horizon = cfg.start_hour * HOUR_MS
        minutes = self.model.minutes
        out = []
        for i, o in enumerate(cfg.outages):
            rates = _trapezoid_rates(
                int(o.start_hour * HOUR_MS - start_of_horizon),
                int(o.duration_minutes * MIN_MS),
                o.intensity,
                minutes,
            )
            issues: tuple[tuple[Issue, float], ...] = (
                (OUTAGE_ISSUES[0], 0.6),
                (OUTAGE_ISSUES[1], 0.4),
            )
            rng = random.Random(f"{cfg.seed}/outage/{i}")
            out.append(_Scenario("outage", rng, rates, OUTAGE_CHANNELS, issues, city=o.city))
        for i, p in enumerate(cfg.promotions):
            rates = _trapezoid_rates(
                int(p.start_hour * HOUR_MS - start_of_horizon),
                int(p.duration_minutes * MIN_MS),
                p.intensity,
                minutes,
            )
            issues = tuple((ISSUE_BY_ID[k], w) for k, w in PROMO_ISSUES)
            rng = random.Random(f"{cfg.seed}/promotion/{i}")
            out.append(
                _Scenario("promotion_spike", rng, rates, PROMO_CHANNELS, issues, promo=p.name)
            )
        return out

    @staticmethod
    def next_arrival(t: float, rates: list[float], rng: random.Random) -> float | None:
        """Next arrival after ``t`` of a Poisson process with per-minute constant rates.

        Exponential gaps are memoryless, so restarting the draw at each minute
        boundary with the new rate is exact.
        """
        m = int(t // MIN_MS)
        n = len(rates)
        while m < n:
            rate = rates[m]
            boundary = (m + 1) * MIN_MS
            if rate > 0:
                t2 = t + rng.expovariate(rate)
                if t2 < boundary:
                    return t2
            t = float(boundary)
            m += 1
        return None

    def schedules(self) -> Iterator[SimRecord]:
        """Each agent's planned day as a WFM system would export it: work
        segments between the planned breaks/training/meetings (the denominators
        of utilization and adherence). Absences are not planned, so they show
        as non-adherence."""

        def segment(a: Agent, start: int, end: int, activity: str) -> SimRecord:
            at = self.base + timedelta(milliseconds=start)
            value = {
                "schema_version": 1,
                "agent_id": a.id,
                "team": a.team,
                "start": at.isoformat(),
                "end": (self.base + timedelta(milliseconds=end)).isoformat(),
                "activity": activity,
                "published_at": self.base.isoformat(),
            }
            utc = at.astimezone(UTC).isoformat(timespec="milliseconds")
            return SimRecord("shift", f"{a.id}|{utc}", value, self.base)

        for a in self.agents:
            t = a.shift_start
            for start, duration, reason in a.breaks:
                if start > t:
                    yield segment(a, t, start, "work")
                yield segment(a, start, start + duration, reason)
                t = start + duration
            if a.shift_end > t:
                yield segment(a, t, a.shift_end, "work")

    # ----------------------------------------------------------------------- run
    def run(self) -> Iterator[SimRecord]:
        cfg = self.config
        if cfg.emit_profiles:
            at = self.base
            for cust in self.customers.all:
                yield SimRecord("profile", cust.id, cust.profile(), at)
        yield from self.schedules()
        for a in self.agents:
            self.push(max(0, a.shift_start), LOGIN, a)
            self.push(max(1, a.shift_end), SHIFT_END, a)
            for start, _dur, _reason in a.breaks:
                if start > 0:
                    self.push(start, BREAK_DUE, a)
            if a.absent_to > 0:
                self.push(max(0, a.absent_from), ABSENT_START, a)
                self.push(max(0, a.absent_to), ABSENT_END, a)
        first = self.next_arrival(0.0, self.model.rate_per_ms, self.arr_rng)
        if first is not None:
            self.push(int(first), ARRIVE, first)
        for s in self.scenarios:
            t = self.next_arrival(0.0, s.rates, s.rng)
            if t is not None:
                s.t = t
                self.push(int(t), SCEN_ARRIVE, s)

        heap = self.heap
        pop = heapq.heappop
        handlers = self.handlers
        out = self.out
        while heap:
            t, _, code, obj = pop(heap)
            if code == EMIT:
                yield obj
                continue
            handlers[code](obj, t)
            if out:
                yield from out
                out.clear()

    # ------------------------------------------------------------------ arrivals
    def _on_arrive(self, t_float: float, t: int) -> None:
        rng = self.arr_rng
        r = rng.random
        model = self.model
        minute_of_day = (model.first_minute + t // MIN_MS) % 1440
        cum = model.channel_cum[minute_of_day]
        channel = model.channels[pick_cum(cum, r() * cum[-1])]
        icum, issues = model.issue_cum[(channel, self.hour_of_day(t))]
        issue = issues[pick_cum(icum, r() * icum[-1])]
        customer = None
        if r() >= self.config.unknown_customer_rate:
            customer = self.customers.pick(r(), issue.needs)
        self.start_contact(t, channel, issue, customer)
        nxt = self.next_arrival(t_float, model.rate_per_ms, rng)
        if nxt is not None:
            self.push(int(nxt), ARRIVE, nxt)

    def _on_scenario_arrive(self, s: _Scenario, t: int) -> None:
        rng = s.rng
        channel = _weighted(rng, s.channels)
        issue = _weighted(rng, s.issues)
        customer = self.customers.pick(rng.random(), issue.needs, s.city)
        self.start_contact(t, channel, issue, customer, scenario=s.kind, promo=s.promo, city=s.city)
        nxt = self.next_arrival(s.t, s.rates, rng)
        if nxt is not None:
            s.t = nxt
            self.push(int(nxt), SCEN_ARRIVE, s)

    def _on_repeat(self, spec: tuple[Any, ...], t: int) -> None:
        channel, issue, customer, attempt, unsolved, redial, scenario, city = spec
        self.start_contact(
            t,
            channel,
            issue,
            customer,
            attempt=attempt,
            unsolved_before=unsolved,
            redial=redial,
            scenario=scenario,
            city=city,
        )

    def start_contact(
        self,
        t: int,
        channel: str,
        issue: Issue,
        customer: Any,
        *,
        attempt: int = 1,
        unsolved_before: bool = False,
        redial: bool = False,
        scenario: str | None = None,
        promo: str | None = None,
        city: str | None = None,
    ) -> None:
        """Create a contact: its text and labels, its routing, and its first event."""
        r = self.r
        self.n_contacts += 1
        c = _Contact()
        c.id = f"{self.config.id_prefix}-{self.n_contacts:08d}"
        c.channel = channel
        c.group = group = CHANNEL_GROUP[channel]
        c.issue = issue
        c.customer = customer
        c.attempt = attempt
        c.scenario = scenario
        if customer is not None:
            text_city, district = customer.city, customer.district
        else:
            text_city, district = city or "北京", "朝阳区"
        text, labels = self.texts.contact_text(
            issue,
            channel,
            text_city,
            district,
            attempt=attempt,
            unsolved_before=unsolved_before,
            redial=redial,
            scenario=scenario,
            promo=promo,
            mention_city=True if scenario == "outage" else None,
        )
        c.true_dept = true_dept = labels["department"]
        # Routing: IVR menus and back-office triage send most contacts to the right
        # queue; escalations often land on the subject's queue first.
        routed = true_dept
        if true_dept == "complaints" and issue.dept != "complaints" and r() < 0.5:
            routed = issue.dept
        elif r() < MISROUTE_P[group]:
            routed = DEPARTMENTS[int(r() * 4)]
        c.queue = queue_name(group, routed)
        if routed != true_dept:
            c.transfer_to = queue_name(group, true_dept)
        if group in SYNC_GROUPS:
            self.out.append(self.contact_event(c, "offered", t, text=text, labels=labels))
            delay = self.rng.lognormvariate(3.4, 0.4) if group == "voice" else 1.0 + r() * 7.0
            self.push(t + int(delay * 1000), QUEUE, c)
        else:
            self.out.append(self.contact_event(c, "received", t, text=text, labels=labels))
            self.enqueue(c, t)

    # ------------------------------------------------------------------- queueing
    def _on_queue(self, c: _Contact, t: int) -> None:
        self.enqueue(c, t)

    def enqueue(self, c: _Contact, t: int) -> None:
        c.state = WAITING
        c.queued_at = t
        c.leg += 1
        sync = c.group in SYNC_GROUPS
        if sync:
            self.out.append(self.contact_event(c, "queued", t))
        waiting, idle = self.queues[c.queue]
        if idle:
            agent = next(iter(idle))
            self.answer(c, agent, t)
            return
        waiting.append(c)
        if sync:
            if self.r() < SHORT_ABANDON_SHARE:
                patience = 500 + int(self.r() * 4400)
            else:
                patience = int(self.lognorm(PATIENCE[c.group]) * 1000)
            limit = MAX_WAIT_MS[c.group]
            self.push(t + min(patience, limit), ABANDON, (c, c.leg))

    def _on_abandon(self, item: tuple[_Contact, int], t: int) -> None:
        c, leg = item
        if c.state != WAITING or c.leg != leg:
            return
        c.state = DONE
        wait = t - c.queued_at
        event_type = "timed_out" if wait >= MAX_WAIT_MS[c.group] else "abandoned"
        self.out.append(self.contact_event(c, event_type, t, payload={"wait_seconds": wait / 1000}))
        # Many customers who give up call again soon (a redial is a repeat contact).
        p = self.config.redial_rate * (0.5 if wait < 5000 else 1.0)
        if c.customer is not None and self.r() < p:
            delay = int(self.rng.lognormvariate(5.4, 0.8) * 1000)  # ~4 min
            self.schedule_repeat(c, t + delay, unsolved=True, redial=True)

    def answer(self, c: _Contact, a: Agent, t: int) -> None:
        """Agent ``a`` (idle now) takes contact ``c``: both change state at ``t``."""
        self.set_busy(a)
        c.agent = a
        c.state = TALKING
        wait = t - c.queued_at
        c.total_wait += wait
        self.agent_event(a, "on_contact", t, contact_id=c.id)
        if c.group in SYNC_GROUPS:
            self.out.append(
                self.contact_event(c, "answered", t, agent=a, payload={"wait_seconds": wait / 1000})
            )
        dept = c.queue.split(".", 1)[1]
        h = HANDLING[(c.group, dept)]
        if c.transfer_to is not None:
            talk = self.lognorm(TRANSFER_TALK)
        else:
            talk = self.lognorm(h.talk) * a.speed
        talk = round(talk, 1)
        hold = 0.0
        if h.hold_p and self.r() < h.hold_p:
            hold = round(self.lognorm(h.hold), 1)
            hold_end = t + int((talk * (0.2 + 0.6 * self.r()) + hold) * 1000)
            # the CTI reports a hold when it ends, with its duration
            rec = self.contact_event(c, "held", hold_end, agent=a, payload={"hold_seconds": hold})
            self.push(hold_end, EMIT, rec)
        c.talk = talk
        c.hold = hold
        self.push(t + int((talk + hold) * 1000), LEG_END, c)

    def _on_leg_end(self, c: _Contact, t: int) -> None:
        a = c.agent
        assert a is not None
        sync = c.group in SYNC_GROUPS
        if c.transfer_to is not None:
            self.out.append(
                self.contact_event(
                    c,
                    "transferred",
                    t,
                    agent=a,
                    payload={
                        "transfer_to": c.transfer_to,
                        "talk_seconds": c.talk,
                        "hold_seconds": c.hold,
                    },
                )
            )
            self.agent_event(a, "after_work", t)
            self.push(t + int(self.lognorm(TRANSFER_ACW) * 1000), AGENT_FREE, a)
            c.queue = c.transfer_to
            c.transfer_to = None
            c.transfers += 1
            c.state = 0
            self.push(t + 1500, QUEUE, c)
            return
        if sync:
            self.out.append(
                self.contact_event(
                    c,
                    "ended",
                    t,
                    agent=a,
                    payload={"talk_seconds": c.talk, "hold_seconds": c.hold},
                )
            )
        else:
            self.out.append(self.contact_event(c, "first_response", t, agent=a))
        self.agent_event(a, "after_work", t)
        dept = c.queue.split(".", 1)[1]
        acw = round(self.lognorm(HANDLING[(c.group, dept)].acw), 1)
        self.push(t + int(acw * 1000), WRAP_END, (c, acw))

    def _on_wrap_end(self, item: tuple[_Contact, float], t: int) -> None:
        c, acw = item
        a = c.agent
        assert a is not None
        c.state = DONE
        if c.group in SYNC_GROUPS:
            self.out.append(
                self.contact_event(
                    c, "wrapup_done", t, agent=a, payload={"after_work_seconds": acw}
                )
            )
        self.agent_free(a, t)
        self.outcome(c, a, t)

    def outcome(self, c: _Contact, a: Agent, t: int) -> None:
        """Was it solved? Then survey, resolution (async) and repeat contact follow from it."""
        r = self.r
        p = SOLVE_P[c.true_dept] + a.skill - 0.08 * c.transfers - 0.05 * (c.attempt - 1)
        if c.scenario == "outage":
            p = 0.2  # nothing an agent can do until the network is fixed
        solved = r() < p
        if c.group not in SYNC_GROUPS and solved:
            delay = (
                int(r() * 600_000) + 60_000
                if r() < 0.5
                else int(min(23 * 3600, self.rng.lognormvariate(9.2, 0.8)) * 1000)  # ~3 h
            )
            self.push(t + delay, EMIT, self.contact_event(c, "resolved", t + delay, agent=a))
        if r() < SURVEY_P[c.channel] * self.config.survey_factor:
            self.survey(c, a, t, solved)
        p_repeat = self.config.repeat_rate_solved if solved else self.config.repeat_rate_unsolved
        if c.customer is not None and r() < p_repeat:
            if solved:
                delay = int((1 + r() * 22) * HOUR_MS)
            else:
                delay = int(min(23.5 * 3600, self.rng.lognormvariate(8.9, 1.0)) * 1000)  # ~2 h
            self.schedule_repeat(c, t + delay, unsolved=not solved, redial=False)

    def survey(self, c: _Contact, a: Agent, t: int, solved: bool) -> None:
        rng = self.rng
        # Calibrated to what operators report (满意度 around 85-90 %): most
        # customers rate the service well when solved, and many still do when
        # not; long waits (by the channel's own yardstick) and transfers cost.
        score = (4.8 if solved else 3.6) - 0.3 * c.transfers + rng.gauss(0, 0.6)
        slow, very_slow = (
            (60_000, 180_000) if c.group in SYNC_GROUPS else (4 * HOUR_MS, 24 * HOUR_MS)
        )
        if c.total_wait > slow:
            score -= 0.4 if c.total_wait < very_slow else 0.8
        if rng.random() < 0.03:  # protest votes: the lowest score whatever happened
            score = 1.0
        csat = max(1, min(5, round(score)))
        payload: dict[str, Any] = {
            "csat": csat,
            "nps": max(0, min(10, round(csat * 2.2 - 1 + rng.gauss(0, 1.2)))),
        }
        if self.r() < 0.6:
            payload["fcr"] = solved if self.r() >= 0.05 else not solved
        text = labels = None
        if self.r() < 0.35:
            text, labels = self.texts.survey_comment(csat, c.issue, solved, c.total_wait > 120_000)
        # typically ~2.5 h later (the call-back / SMS survey batch), never after a day
        when = t + int(max(180.0, min(20 * 3600, rng.lognormvariate(8.9, 0.8))) * 1000)
        rec = self.contact_event(
            c, "survey", when, agent=a, payload=payload, text=text, labels=labels
        )
        self.push(when, EMIT, rec)

    def schedule_repeat(self, c: _Contact, when: int, *, unsolved: bool, redial: bool) -> None:
        if when >= self.horizon_ms:
            return
        channel = c.channel if redial or self.r() < 0.7 else "phone"
        spec = (
            channel,
            c.issue,
            c.customer,
            c.attempt + 1,
            unsolved,
            redial,
            c.scenario if c.scenario == "outage" else None,
            c.customer.city if c.customer is not None else None,
        )
        self.push(when, REPEAT, spec)

    # --------------------------------------------------------------------- agents
    def set_busy(self, a: Agent) -> None:
        if a.idle:
            a.idle = False
            queues = self.queues
            for q in a.skills:
                queues[q][1].pop(a, None)

    def agent_free(self, a: Agent, t: int) -> None:
        """The agent has nothing to do at ``t``: log out, go not-ready, or take work."""
        if t >= a.shift_end:
            self.agent_event(a, "logout", t)
            a.logged_in = False
            return
        if a.absent_from <= t < a.absent_to:
            self.agent_event(a, "logout", t)
            a.logged_in = False
            a.away = True
            return
        breaks = a.breaks
        while a.next_break < len(breaks) and breaks[a.next_break][0] <= t:
            start, duration, reason = breaks[a.next_break]
            a.next_break += 1
            if t - start > 30 * MIN_MS:
                continue  # too late for it: skipped, as happens on busy days
            duration = min(duration, a.shift_end - t - MIN_MS)
            if duration >= MIN_MS:
                self.agent_event(a, "not_ready", t, reason=reason)
                self.push(t + duration, AGENT_FREE, a)
                return
        self.agent_event(a, "ready", t)
        # take the longest-waiting contact among the agent's skills
        best: _Contact | None = None
        best_q: deque[_Contact] | None = None
        queues = self.queues
        for q in a.skills:
            waiting = queues[q][0]
            while waiting and waiting[0].state != WAITING:
                waiting.popleft()
            if waiting and (best is None or waiting[0].queued_at < best.queued_at):
                best = waiting[0]
                best_q = waiting
        if best is not None and best_q is not None:
            best_q.popleft()
            self.answer(best, a, t)
            return
        a.idle = True
        for q in a.skills:
            queues[q][1][a] = None

    def _on_agent_free(self, a: Agent, t: int) -> None:
        self.agent_free(a, t)

    def _on_login(self, a: Agent, t: int) -> None:
        if a.absent_from <= t < a.absent_to:
            a.away = True
            return
        a.logged_in = True
        self.agent_event(a, "login", t)
        self.push(t + 20_000 + int(self.r() * 100_000), AGENT_FREE, a)

    def _on_interrupt(self, a: Agent, t: int) -> None:
        """Break due, shift end or absence start: acts now only if the agent is idle."""
        if a.idle:
            self.set_busy(a)
            self.agent_free(a, t)

    def _on_absent_end(self, a: Agent, t: int) -> None:
        if a.away and t < a.shift_end - 10 * MIN_MS:
            a.away = False
            a.logged_in = True
            self.agent_event(a, "login", t)
            self.push(t + 20_000 + int(self.r() * 60_000), AGENT_FREE, a)


def simulate(config: SimConfig) -> Iterator[SimRecord]:
    """Records of the simulated day in event-time order: profiles first, then the day.

    Deterministic: the same ``config`` (including ``seed``) yields the same
    records. Lazy: nothing is computed beyond what the caller consumes, apart
    from the roster and the customer base built up front.
    """
    return _Sim(config).run()
