"""Contact KPIs over folded facts, with DOMAIN.md's names and formulas.

Every function takes the facts, an ``Interval`` (or a moment ``at`` for the
point-in-time gauges) and a grouping, and returns ``{group: Kpi}``. A group is
present when at least one fact is in the KPI's population; its value is None
when the denominator is 0. ``by=None`` gives the single group ``ALL``; a fact
without a value for the grouping field lands in ``UNKNOWN``. Label values are
therefore bounded by the queues/channels/departments that exist (agents are a
grouping for tables and the bottom-20 % list, never a Prometheus label).

Which time puts a contact into an interval (see docs/kpis.md for why):
arrival (offered) for SL, ASA, abandonment, volume, FCR, complaint rate;
end of the contact for AHT and transfer rate; the survey answer for CSAT, NPS
and survey FCR; received for the async SLAs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
from itertools import pairwise
from math import ceil
from typing import Literal

from vocflow.streams.kpi.models import HOUR_MS, ContactFact, Interval, Kpi, Unit

ALL = "_all"
UNKNOWN = "unknown"
GroupBy = Literal["queue", "last_queue", "channel", "department", "category", "agent"] | None

_KEYS: dict[str, Callable[[ContactFact], str | None]] = {
    "queue": lambda f: f.first_queue,
    "last_queue": lambda f: f.queue,
    "channel": lambda f: f.channel,
    "department": lambda f: f.department,
    "category": lambda f: f.category,
    "agent": lambda f: f.agent_id,
}

# Promoters / detractors (DOMAIN.md NPS) and satisfied CSAT answers.
NPS_PROMOTER_MIN = 9
NPS_DETRACTOR_MAX = 6
CSAT_SATISFIED_MIN = 4
DEFAULT_STALE_WAIT_MS = 4 * HOUR_MS
COMPLAINT_DEPARTMENTS: frozenset[str] = frozenset({"complaints"})


def _tally(
    name: str, unit: Unit, by: GroupBy, rows: Iterator[tuple[ContactFact, int, int]]
) -> dict[str, Kpi]:
    """Sum numerators and denominators per group; ratios are formed only at the end."""
    if by is None:
        key: Callable[[ContactFact], str | None] = lambda _f: ALL  # noqa: E731
    else:
        key = _KEYS[by]
    acc: dict[str, list[int]] = {}
    for fact, num, den in rows:
        k = key(fact) or UNKNOWN
        cell = acc.get(k)
        if cell is None:
            acc[k] = [num, den]
        else:
            cell[0] += num
            cell[1] += den
    if unit == "count":
        return {k: Kpi.of(name, unit, n, 1) for k, (n, _d) in acc.items()}
    return {k: Kpi.of(name, unit, n, d) for k, (n, d) in acc.items()}


def volume(facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None) -> dict[str, Kpi]:
    """Contacts that began in the interval (any channel)."""
    return _tally("volume", "count", by, ((f, 1, 0) for f in facts if f.arrival_ms in iv))


def offered(facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None) -> dict[str, Kpi]:
    """Contacts offered to a queue in the interval (synchronous channels)."""
    return _tally("offered", "count", by, ((f, 1, 0) for f in facts if f.offered_ms in iv))


def service_level(
    facts: Iterable[ContactFact], iv: Interval, threshold_s: float = 20, by: GroupBy = None
) -> dict[str, Kpi]:
    """SL(T) = answered within T / (answered + abandoned after T), short abandons
    excluded from the denominator. Within T means wait <= T; after T means > T."""
    t = round(threshold_s * 1000)

    def rows() -> Iterator[tuple[ContactFact, int, int]]:
        for f in facts:
            if f.offered_ms not in iv:
                continue
            if f.answered is not None:
                yield f, int(f.answered[2] <= t), 1
            elif f.abandoned is not None and not f.short_abandon and f.abandoned[2] > t:
                yield f, 0, 1
            else:
                yield f, 0, 0

    return _tally("service_level", "ratio", by, rows())


def asa(facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None) -> dict[str, Kpi]:
    """ASA = total wait of answered contacts / answered contacts (first answer)."""
    return _tally(
        "asa",
        "seconds",
        by,
        ((f, f.answered[2], 1) for f in facts if f.answered is not None and f.offered_ms in iv),
    )


def abandonment_rate(
    facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None
) -> dict[str, Kpi]:
    """Abandoned (excl. short) / offered (excl. short abandons). A queue whose only
    contacts were short abandons is present with value None."""
    return _tally(
        "abandonment_rate",
        "ratio",
        by,
        (
            (f, 0, 0) if f.short_abandon else (f, int(f.is_abandoned), 1)
            for f in facts
            if f.offered_ms in iv
        ),
    )


def aht(facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None) -> dict[str, Kpi]:
    """AHT = (talk + hold + after-contact work) / handled contacts (ended in the interval)."""
    return _tally(
        "aht",
        "seconds",
        by,
        ((f, f.handle_ms, 1) for f in facts if f.ended is not None and f.ended[0] in iv),
    )


def transfer_rate(facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None) -> dict[str, Kpi]:
    """Handled contacts transferred at least once / handled contacts."""
    return _tally(
        "transfer_rate",
        "ratio",
        by,
        ((f, int(f.transfers > 0), 1) for f in facts if f.ended is not None and f.ended[0] in iv),
    )


def csat(facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None) -> dict[str, Kpi]:
    """CSAT = satisfied answers (4-5 of 5) / survey answers, by survey time."""
    return _tally(
        "csat",
        "ratio",
        by,
        (
            (f, int(f.csat >= CSAT_SATISFIED_MIN), 1)
            for f in facts
            if f.csat is not None and f.survey_ms in iv
        ),
    )


def nps(facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None) -> dict[str, Kpi]:
    """NPS = % promoters (9-10) - % detractors (0-6); numerator = promoters - detractors."""

    def score(n: int) -> int:
        return 1 if n >= NPS_PROMOTER_MIN else (-1 if n <= NPS_DETRACTOR_MAX else 0)

    return _tally(
        "nps",
        "score",
        by,
        ((f, score(f.nps), 1) for f in facts if f.nps is not None and f.survey_ms in iv),
    )


def fcr_survey(facts: Iterable[ContactFact], iv: Interval, by: GroupBy = None) -> dict[str, Kpi]:
    """FCR from surveys: 'resolved first time' answers / FCR answers."""
    return _tally(
        "fcr_survey",
        "ratio",
        by,
        ((f, int(f.fcr), 1) for f in facts if f.fcr is not None and f.survey_ms in iv),
    )


def repeated_contacts(facts: Iterable[ContactFact], window_ms: int = 24 * HOUR_MS) -> set[str]:
    """Contact ids that were followed, within ``window_ms`` of their arrival, by
    another contact of the same customer with the same issue category: their
    issue needed a repeat contact. Ties on arrival are ordered by contact_id."""
    chains: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for f in facts:
        arrival, customer = f.arrival_ms, f.customer_id
        if arrival is None or customer is None or f.category is None:
            continue
        chains.setdefault((customer, f.category), []).append((arrival, f.contact_id))
    repeated: set[str] = set()
    for chain in chains.values():
        chain.sort()
        for (at, cid), (nxt, _) in pairwise(chain):
            if nxt - at <= window_ms:
                repeated.add(cid)
    return repeated


def _judged(
    facts: Iterable[ContactFact], iv: Interval, window_ms: int
) -> tuple[list[ContactFact], set[str]]:
    facts = list(facts)
    judged = [
        f
        for f in facts
        if f.arrival_ms in iv and f.customer_id is not None and f.category is not None
    ]
    return judged, repeated_contacts(facts, window_ms)


def repeat_contact_rate(
    facts: Iterable[ContactFact],
    iv: Interval,
    window_ms: int = 24 * HOUR_MS,
    by: GroupBy = None,
) -> dict[str, Kpi]:
    """Contacts followed by a repeat within the window / contacts with a known
    customer and category. ``facts`` must include contacts up to ``window_ms``
    after the interval, or recent contacts look resolved."""
    judged, repeated = _judged(facts, iv, window_ms)
    return _tally(
        "repeat_contact_rate",
        "ratio",
        by,
        ((f, int(f.contact_id in repeated), 1) for f in judged),
    )


def fcr(
    facts: Iterable[ContactFact],
    iv: Interval,
    window_ms: int = 24 * HOUR_MS,
    by: GroupBy = None,
) -> dict[str, Kpi]:
    """FCR = 1 - repeat-contact rate (numerator: contacts needing no repeat)."""
    judged, repeated = _judged(facts, iv, window_ms)
    return _tally("fcr", "ratio", by, ((f, int(f.contact_id not in repeated), 1) for f in judged))


def complaint_rate(
    facts: Iterable[ContactFact],
    iv: Interval,
    by: GroupBy = None,
    departments: frozenset[str] = COMPLAINT_DEPARTMENTS,
) -> dict[str, Kpi]:
    """Contacts routed to the complaints department / all contacts begun in the interval."""
    return _tally(
        "complaint_rate",
        "ratio",
        by,
        ((f, int(f.department in departments), 1) for f in facts if f.arrival_ms in iv),
    )


def _waiting(
    facts: Iterable[ContactFact], at: int, stale_after_ms: int | None
) -> Iterator[tuple[ContactFact, int]]:
    """Contacts in a queue at ``at``: in the queue by then (queue entry, or
    offered if no event tells queue entry), not yet answered/abandoned/
    timed out/ended by then, and (if ``stale_after_ms``) not waiting implausibly
    long, which means an exit event was lost."""
    for f in facts:
        start = f.wait_start_ms
        if start is None or start > at:
            continue
        left = f.left_queue_ms
        if left is not None and left <= at:
            continue
        age = at - start
        if stale_after_ms is not None and age > stale_after_ms:
            continue
        yield f, age


def queue_depth(
    facts: Iterable[ContactFact],
    at: int,
    by: GroupBy = "queue",
    stale_after_ms: int | None = DEFAULT_STALE_WAIT_MS,
) -> dict[str, Kpi]:
    """Contacts waiting at ``at`` (epoch ms); groups without any are absent."""
    return _tally(
        "queue_depth", "count", by, ((f, 1, 0) for f, _ in _waiting(facts, at, stale_after_ms))
    )


def oldest_waiting(
    facts: Iterable[ContactFact],
    at: int,
    by: GroupBy = "queue",
    stale_after_ms: int | None = DEFAULT_STALE_WAIT_MS,
) -> dict[str, Kpi]:
    """Age of the longest-waiting contact at ``at``; groups without any are absent."""
    key = (lambda _f: ALL) if by is None else _KEYS[by]
    oldest: dict[str, int] = {}
    for f, age in _waiting(facts, at, stale_after_ms):
        k = key(f) or UNKNOWN
        if age > oldest.get(k, -1):
            oldest[k] = age
    return {k: Kpi.of("oldest_waiting", "seconds", age, 1) for k, age in oldest.items()}


def backlog(facts: Iterable[ContactFact], at: int, by: GroupBy = "queue") -> dict[str, Kpi]:
    """Async contacts received by ``at`` and not resolved by then."""
    return _tally(
        "backlog",
        "count",
        by,
        (
            (f, 1, 0)
            for f in facts
            if f.received_ms is not None
            and f.received_ms <= at
            and (f.resolved_ms is None or f.resolved_ms > at)
        ),
    )


def _sla_rows(
    facts: Iterable[ContactFact], iv: Interval, at: int, sla_ms: int, done: str
) -> Iterator[tuple[ContactFact, int, int]]:
    for f in facts:
        received = f.received_ms
        if received not in iv or received is None:
            continue
        done_ms: int | None = getattr(f, done)
        if done_ms is not None and done_ms <= at:
            yield f, int(done_ms - received > sla_ms), 1
        elif at - received > sla_ms:
            yield f, 1, 1  # still open and already overdue: a breach now
        else:
            yield f, 0, 0  # still open, still within SLA: undecided


def first_response_breaches(
    facts: Iterable[ContactFact],
    iv: Interval,
    at: int,
    sla_ms: int = 4 * HOUR_MS,
    by: GroupBy = "queue",
) -> dict[str, Kpi]:
    """Async contacts received in the interval whose first response came (or, as
    of ``at``, is still missing) later than the SLA / those whose outcome is decided."""
    return _tally(
        "first_response_breach_rate",
        "ratio",
        by,
        _sla_rows(facts, iv, at, sla_ms, "first_response_ms"),
    )


def resolution_breaches(
    facts: Iterable[ContactFact],
    iv: Interval,
    at: int,
    sla_ms: int = 24 * HOUR_MS,
    by: GroupBy = "queue",
) -> dict[str, Kpi]:
    """Like first_response_breaches, for resolution (first ``resolved`` event)."""
    return _tally(
        "resolution_breach_rate", "ratio", by, _sla_rows(facts, iv, at, sla_ms, "resolved_ms")
    )


# Direction of each KPI for ranking agents.
HIGHER_IS_BETTER: dict[str, bool] = {
    "service_level": True,
    "asa": False,
    "abandonment_rate": False,
    "aht": False,
    "transfer_rate": False,
    "csat": True,
    "nps": True,
    "fcr": True,
    "fcr_survey": True,
    "repeat_contact_rate": False,
    "complaint_rate": False,
    "occupancy": True,
    "utilization": True,
    "adherence": True,
}


def bottom_agents(
    by_agent: Mapping[str, Kpi],
    share: Fraction = Fraction(1, 5),
    higher_is_better: bool | None = None,
    min_denominator: int = 1,
) -> list[str]:
    """The worst ``share`` of agents for one KPI, worst first (the onion's last
    layer). Agents with no value, fewer than ``min_denominator`` cases, or the
    ``UNKNOWN`` group are not ranked; ceil(share * ranked) are returned, ties
    broken by agent id so the list is stable between refreshes."""
    ranked = [
        (kpi.value, agent)
        for agent, kpi in by_agent.items()
        if kpi.value is not None and kpi.denominator >= min_denominator and agent != UNKNOWN
    ]
    if not ranked:
        return []
    if higher_is_better is None:
        higher_is_better = HIGHER_IS_BETTER[next(iter(by_agent.values())).name]
    if higher_is_better:
        ranked.sort()
    else:
        ranked.sort(key=lambda item: (-item[0], item[1]))
    return [agent for _, agent in ranked[: ceil(share * len(ranked))]]
