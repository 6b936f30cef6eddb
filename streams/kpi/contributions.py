"""What one contact fact adds to the 1-minute KPI aggregates, and how a new
version of the fact changes that (the delta the ClickHouse view sums).

Why deltas: a fact changes several times (answered, ended, a survey hours
later, the VOC department), and ClickHouse materialized views only ever see
inserts. Each new version therefore carries ``delta(previous, new)``: the new
version's contributions minus the previous one's, per (minute, queue, channel,
department). Summing every delta ever inserted gives exactly the contributions
of the latest versions, whatever moved between versions (a corrected end time
moves AHT to another minute; the department annotation moves a contact from
``""`` to its department).

Each KPI's anchor time is the one `vocflow.streams.kpi.kpis` uses (arrival for
volume and complaints, offered for SL/ASA/abandonment, end for AHT and
transfers, survey time for CSAT/NPS/survey FCR), so a KPI over whole minutes
equals the fold-and-compute result exactly. Service level is judged here
against the threshold of the contact's first queue, so the per-queue targets
also hold for the channel, department and total figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson

from vocflow.streams.kpi.kpis import (
    COMPLAINT_DEPARTMENTS,
    CSAT_SATISFIED_MIN,
    NPS_DETRACTOR_MAX,
    NPS_PROMOTER_MIN,
)
from vocflow.streams.kpi.models import ContactFact

MINUTE_MS = 60_000

# Column order of the counters in `kpi_minutes` (sinks/clickhouse/ddl/005_kpi_minutes.sql).
COUNTERS: tuple[str, ...] = (
    "contacts",  # arrival: volume, complaint-rate denominator
    "complaints",  # arrival: routed to a complaints department
    "offered",  # offered: SL / abandonment population
    "sl_answered_within",  # offered: SL numerator
    "sl_base",  # offered: SL denominator
    "abandoned",  # offered: abandonment numerator (short abandons excluded)
    "abandon_base",  # offered: offered minus short abandons
    "short_abandons",  # offered
    "answered",  # offered: ASA denominator
    "wait_ms",  # offered: ASA numerator
    "handled",  # ended: AHT / transfer denominator
    "handle_ms",  # ended: AHT numerator
    "transferred",  # ended: transfer-rate numerator
    "csat_answers",  # survey
    "csat_satisfied",
    "nps_answers",
    "nps_promoters",
    "nps_detractors",
    "fcr_answers",
    "fcr_resolved",
)
_INDEX = {name: i for i, name in enumerate(COUNTERS)}

# (minute start ms, first queue, channel, department); "" when unknown.
Key = tuple[int, str, str, str]
Rows = dict[Key, list[int]]


@dataclass(frozen=True, slots=True)
class Targets:
    """The settings a contribution depends on."""

    sl_threshold_ms: int = 20_000
    sl_threshold_ms_by_queue: Mapping[str, int] = field(default_factory=dict)
    complaint_departments: frozenset[str] = COMPLAINT_DEPARTMENTS

    def sl_threshold(self, queue: str | None) -> int:
        if queue is None:
            return self.sl_threshold_ms
        return self.sl_threshold_ms_by_queue.get(queue, self.sl_threshold_ms)


DEFAULT_TARGETS = Targets()


def _minute(ms: int) -> int:
    return ms - ms % MINUTE_MS


def contributions(fact: ContactFact, targets: Targets = DEFAULT_TARGETS) -> Rows:
    """The counters this version of the fact adds, per minute and group."""
    groups = (fact.first_queue or "", fact.channel or "", fact.department or "")
    rows: Rows = {}

    def add(ms: int, **counts: int) -> None:
        cell = rows.setdefault((_minute(ms), *groups), [0] * len(COUNTERS))
        for name, n in counts.items():
            cell[_INDEX[name]] += n

    arrival = fact.arrival_ms
    if arrival is not None:
        add(arrival, contacts=1, complaints=int(fact.department in targets.complaint_departments))
    if fact.offered_ms is not None:
        _add_offered(fact, targets, add)
    if fact.ended is not None:
        add(fact.ended[0], handled=1, handle_ms=fact.handle_ms, transferred=int(fact.transfers > 0))
    if fact.survey_ms is not None:
        survey: dict[str, int] = {}
        if fact.csat is not None:
            survey.update(csat_answers=1, csat_satisfied=int(fact.csat >= CSAT_SATISFIED_MIN))
        if fact.nps is not None:
            survey.update(
                nps_answers=1,
                nps_promoters=int(fact.nps >= NPS_PROMOTER_MIN),
                nps_detractors=int(fact.nps <= NPS_DETRACTOR_MAX),
            )
        if fact.fcr is not None:
            survey.update(fcr_answers=1, fcr_resolved=int(fact.fcr))
        if survey:
            add(fact.survey_ms, **survey)
    return rows


def _add_offered(fact: ContactFact, targets: Targets, add: Callable[..., None]) -> None:
    assert fact.offered_ms is not None
    counts = {"offered": 1}
    if fact.answered is not None:
        wait = fact.answered[2]
        t = targets.sl_threshold(fact.first_queue)
        counts.update(
            sl_answered_within=int(wait <= t), sl_base=1, answered=1, wait_ms=wait, abandon_base=1
        )
    elif fact.short_abandon:
        counts.update(short_abandons=1)
    else:
        counts.update(abandon_base=1, abandoned=int(fact.abandoned is not None))
        if fact.abandoned is not None and fact.abandoned[2] > targets.sl_threshold(
            fact.first_queue
        ):
            counts.update(sl_base=1)
    add(fact.offered_ms, **counts)


def delta(
    previous: ContactFact | None, new: ContactFact, targets: Targets = DEFAULT_TARGETS
) -> list[tuple[Key, list[int]]]:
    """``contributions(new) - contributions(previous)``, without all-zero rows, sorted."""
    out = contributions(new, targets)
    if previous is not None:
        for key, counts in contributions(previous, targets).items():
            cell = out.setdefault(key, [0] * len(COUNTERS))
            for i, n in enumerate(counts):
                cell[i] -= n
    return sorted((k, v) for k, v in out.items() if any(v))


class LatestFacts:
    """The facts one batch changed, as one contacts.facts message per contact: its
    latest version, carrying the KPI delta from the version it had before the batch.

    Why: a contact's events come close together (about five per contact), and
    every reader of contacts.facts keeps only the latest version (`contact_facts`
    replaces by version), so each intermediate version cost a produce, the sink's
    decode, its KPI accounting and its insert, and was then thrown away. Nothing
    of the KPIs is lost: deltas telescope, ``delta(a, c)`` is the sum of
    ``delta(a, b)`` and ``delta(b, c)`` cell by cell, and all-zero cells are
    dropped either way.
    """

    def __init__(self, targets: Targets = DEFAULT_TARGETS) -> None:
        self.targets = targets
        # contact -> (its fact before the batch, its latest), in order of first change
        self._changed: dict[str, tuple[ContactFact | None, ContactFact]] = {}

    def add(self, previous: ContactFact | None, updated: ContactFact) -> None:
        """`updated` replaced `previous` as the contact's fact."""
        first = self._changed.get(updated.contact_id)
        self._changed[updated.contact_id] = (previous if first is None else first[0], updated)

    def __len__(self) -> int:
        return len(self._changed)

    def take(self) -> list[tuple[bytes, bytes]]:
        """(key, value) of each contact's message, and forget them: the fact as JSON
        (`ContactFact.to_dict`) plus ``kpi_deltas``: [[minute, queue, channel,
        department, counters], ...]."""
        out = []
        for cid, (previous, updated) in self._changed.items():
            message = updated.to_dict()
            message["kpi_deltas"] = [
                [*key, counters] for key, counters in delta(previous, updated, self.targets)
            ]
            out.append((cid.encode(), orjson.dumps(message)))
        self._changed.clear()
        return out
