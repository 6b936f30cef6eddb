"""Value types of the KPI layer: the per-contact fact, fold settings, shifts, intervals, results.

All times inside are integer epoch milliseconds and all durations integer
milliseconds. Payload seconds are floats on the wire; converting them once,
here, to exact integers means sums over a day of contacts never drift, and the
KPI values can be exact fractions (tests compare them with an independent
oracle for equality, not approximately).

Plain dataclasses with ``slots`` rather than pydantic: the fold runs on every
event, and a slotted dataclass copies and compares several times faster than a
validated model. ``ContactFact.to_dict``/``from_dict`` give the JSON form for
Faust tables and ClickHouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Literal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
HOUR_MS = 3_600_000


def to_ms(moment: datetime) -> int:
    """Exact epoch milliseconds (floored), without the float rounding of ``timestamp()``."""
    return (moment - EPOCH) // ONE_MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True, slots=True)
class FoldConfig:
    """Settings the fold needs. Short-abandon thresholds are per queue because an
    IVR-fronted queue and a chat queue see very different accidental hang-ups."""

    short_abandon_ms: int = 5_000
    short_abandon_ms_by_queue: Mapping[str, int] = field(default_factory=dict)
    max_seen: int = 256

    def short_abandon_threshold(self, queue: str | None) -> int:
        if queue is None:
            return self.short_abandon_ms
        return self.short_abandon_ms_by_queue.get(queue, self.short_abandon_ms)


DEFAULT_FOLD_CONFIG = FoldConfig()

# (occurred_ms, event_id, value): comparing these tuples picks the earliest or
# latest event deterministically (event_id breaks ties), whatever the arrival order.
Stamped = tuple[int, str, Any]
# (occurred_ms, event_id, csat, nps, fcr)
SurveyAnswer = tuple[int, str, int | None, int | None, bool | None]


@dataclass(slots=True)
class ContactFact:
    """Everything the KPIs need about one contact, folded from its events.

    Raw fields are merged so that the result does not depend on arrival order:
    minima (arrival evidence), maxima (corrections), stamped arg-min/arg-max
    tuples (first/latest queue, agent, answer), and sums guarded by ``seen``
    (holds, transfers). Derived fields (``short_abandon``, ``csat``, ``nps``,
    ``fcr``, ``survey_ms``) are recomputed from the raw ones on every change.
    """

    contact_id: str
    version: int = 0
    # (priority, ms, event_id, channel): surveys have priority 1 so the contact's
    # own channel wins over the "survey" channel of a late survey event.
    channel_stamp: tuple[int, int, str, str] | None = None
    customer_stamp: Stamped | None = None  # earliest event naming a customer
    first_queue_stamp: Stamped | None = None  # earliest event naming a queue
    queue_stamp: Stamped | None = None  # latest queue (transfer_to counts)
    agent_stamp: Stamped | None = None  # latest agent
    first_ms: int | None = None  # earliest non-survey event
    offered_ms: int | None = None  # earliest evidence the contact entered a queue
    # Earliest evidence it waited in a queue: a `queued` event, or an answer's or
    # abandon's time minus its wait. Offered may be earlier (IVR, announcements).
    queued_ms: int | None = None
    received_ms: int | None = None  # async channels
    answered: tuple[int, str, int] | None = None  # first answer: (ms, event_id, wait_ms)
    abandoned: tuple[int, str, int, str | None] | None = None  # (ms, id, wait_ms, queue)
    timed_out: tuple[int, str, int] | None = None
    ended: tuple[int, str, int] | None = None  # latest ended: (ms, id, talk_ms)
    wrapup: tuple[int, str, int] | None = None  # latest wrapup_done: (ms, id, after_work_ms)
    hold_ms: int = 0
    holds: int = 0
    transfers: int = 0
    first_response_ms: int | None = None
    resolved_ms: int | None = None
    surveys: tuple[SurveyAnswer, ...] = ()
    # Derived.
    short_abandon: bool = False
    survey_ms: int | None = None
    csat: int | None = None
    nps: int | None = None
    fcr: bool | None = None
    # Filled later by the VOC stage (annotate()).
    department: str | None = None
    category: str | None = None
    sentiment: float | None = None
    repeat: bool | None = None
    seen: tuple[str, ...] = ()

    # -- convenient views (properties keep the stored form minimal) --------------
    @property
    def channel(self) -> str | None:
        return self.channel_stamp[3] if self.channel_stamp else None

    @property
    def customer_id(self) -> str | None:
        return self.customer_stamp[2] if self.customer_stamp else None

    @property
    def first_queue(self) -> str | None:
        return self.first_queue_stamp[2] if self.first_queue_stamp else None

    @property
    def queue(self) -> str | None:
        return self.queue_stamp[2] if self.queue_stamp else None

    @property
    def agent_id(self) -> str | None:
        return self.agent_stamp[2] if self.agent_stamp else None

    @property
    def offered(self) -> bool:
        return self.offered_ms is not None

    @property
    def answered_ms(self) -> int | None:
        return self.answered[0] if self.answered else None

    @property
    def wait_ms(self) -> int | None:
        """Wait of the first answer (the ASA input)."""
        return self.answered[2] if self.answered else None

    @property
    def is_answered(self) -> bool:
        return self.answered is not None

    @property
    def is_abandoned(self) -> bool:
        """An answer wins over an abandon (the abandon was of a later leg)."""
        return self.abandoned is not None and self.answered is None

    @property
    def abandon_wait_ms(self) -> int | None:
        return self.abandoned[2] if self.abandoned else None

    @property
    def is_timed_out(self) -> bool:
        return self.timed_out is not None and self.answered is None and self.abandoned is None

    @property
    def handled(self) -> bool:
        return self.ended is not None

    @property
    def ended_ms(self) -> int | None:
        return self.ended[0] if self.ended else None

    @property
    def talk_ms(self) -> int:
        return self.ended[2] if self.ended else 0

    @property
    def after_work_ms(self) -> int:
        return self.wrapup[2] if self.wrapup else 0

    @property
    def handle_ms(self) -> int:
        """AHT numerator: talk + hold + after-contact work."""
        return self.talk_ms + self.hold_ms + self.after_work_ms

    @property
    def arrival_ms(self) -> int | None:
        """When the contact began: offered/received, else its first non-survey event."""
        best = self.first_ms
        for candidate in (self.offered_ms, self.received_ms):
            if candidate is not None and (best is None or candidate < best):
                best = candidate
        return best

    @property
    def wait_start_ms(self) -> int | None:
        """When it started waiting for an agent: queue entry, else offered."""
        return self.queued_ms if self.queued_ms is not None else self.offered_ms

    @property
    def left_queue_ms(self) -> int | None:
        """First moment it stopped waiting: answered, abandoned, timed out or ended."""
        best: int | None = None
        for stamp in (self.answered, self.abandoned, self.timed_out, self.ended):
            if stamp is not None and (best is None or stamp[0] < best):
                best = stamp[0]
        return best

    @property
    def last_activity_ms(self) -> int | None:
        """Latest known event time; the table wiring evicts facts idle past a TTL."""
        stamps = [
            s[0] if isinstance(s, tuple) else s
            for s in (
                self.first_ms,
                self.offered_ms,
                self.received_ms,
                self.answered,
                self.abandoned,
                self.timed_out,
                self.ended,
                self.wrapup,
                self.first_response_ms,
                self.resolved_ms,
                self.survey_ms,
                self.queue_stamp,
                self.agent_stamp,
            )
            if s is not None
        ]
        return max(stamps) if stamps else None

    # -- serialisation for Faust tables / ClickHouse -----------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            f.name: (_listify(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContactFact:
        values = {
            k: (_tuplify(v) if isinstance(v, list) else v)
            for k, v in data.items()
            if k in FACT_FIELDS
        }
        return cls(**values)


def _listify(value: tuple[Any, ...]) -> list[Any]:
    return [_listify(v) if isinstance(v, tuple) else v for v in value]


def _tuplify(value: list[Any]) -> tuple[Any, ...]:
    return tuple(_tuplify(v) if isinstance(v, list) else v for v in value)


FACT_FIELDS = frozenset(f.name for f in fields(ContactFact))


@dataclass(frozen=True, slots=True)
class Shift:
    """One scheduled segment of one agent. ``activity`` "work" means the agent
    should be ready or handling; any other activity (break, training, meeting)
    means the agent should be not_ready with that reason. Segments of one agent
    are assumed not to overlap."""

    agent_id: str
    team: str | None
    start: datetime
    end: datetime
    activity: str = "work"


@dataclass(frozen=True, slots=True)
class Interval:
    """Half-open [start_ms, end_ms): an event at exactly ``end_ms`` belongs to the next one."""

    start_ms: int
    end_ms: int
    label: str = "custom"

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms:
            raise ValueError("interval end before start")

    def __contains__(self, ms: object) -> bool:
        return isinstance(ms, int) and self.start_ms <= ms < self.end_ms


Unit = Literal["ratio", "seconds", "count", "score"]


@dataclass(frozen=True, slots=True)
class Kpi:
    """A KPI value with the counts it came from, so groups and intervals can be
    re-aggregated exactly (sum numerators and denominators, never average ratios).

    Units: ``ratio`` value = numerator / denominator; ``seconds`` numerator is
    milliseconds, value = numerator / denominator / 1000; ``score`` (NPS) value =
    100 * numerator / denominator; ``count`` value = numerator, denominator 1.
    ``value`` is None when the denominator is 0 (nothing to measure is not 0 %).
    """

    name: str
    unit: Unit
    numerator: int
    denominator: int
    value: Fraction | None

    @classmethod
    def of(cls, name: str, unit: Unit, numerator: int, denominator: int) -> Kpi:
        value: Fraction | None
        if denominator == 0:
            value = None
        elif unit == "ratio":
            value = Fraction(numerator, denominator)
        elif unit == "seconds":
            value = Fraction(numerator, denominator * 1000)
        elif unit == "score":
            value = Fraction(100 * numerator, denominator)
        else:
            value = Fraction(numerator)
        return cls(name, unit, numerator, denominator, value)

    def __float__(self) -> float:
        return float("nan") if self.value is None else float(self.value)
