"""Configuration of one simulated contact-center day, and its scenario ground truth.

Everything that changes the output lives here, in frozen dataclasses, so that
"same config -> same output" is a statement about one hashable value. Times of
day are hours from the start of the simulated horizon's first local midnight
(``start_date`` 00:00 in ``tz``), because supervisors and detectors think in
wall-clock time ("the outage began at 14:20"), not in offsets from an
arbitrary simulation start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

ScenarioKind = Literal["outage", "staffing_shortfall", "promotion_spike"]

DEFAULT_CHANNEL_SHARE: Mapping[str, float] = {
    "phone": 0.46,
    "chat": 0.17,
    "wechat": 0.12,
    "email": 0.07,
    "app": 0.08,
    "weibo": 0.03,
    "sms": 0.07,
}


@dataclass(frozen=True)
class Outage:
    """A network fault in one city: a burst of 断网/没信号/网速慢 contacts naming it.

    ``intensity`` is the extra contacts per minute at the burst's plateau; the
    rate ramps up over the first tenth of the window and decays over the last
    third, because real outages are noticed gradually and fixed gradually.
    """

    city: str = "杭州"
    start_hour: float = 14.0
    duration_minutes: float = 45.0
    intensity: float = 25.0


@dataclass(frozen=True)
class StaffingShortfall:
    """Part of one queue's agents are away (sick, system trouble) for an interval.

    ``intensity`` is the share (0..1] of the agents whose primary skill is the
    queue that log out for the window; queue waits and abandons must rise.
    """

    queue: str = "voice.billing"
    start_hour: float = 10.0
    duration_minutes: float = 90.0
    intensity: float = 0.6


@dataclass(frozen=True)
class PromotionSpike:
    """A marketing push: plan / promotion inquiries surge for a while.

    ``intensity`` is the extra contacts per minute at the plateau.
    """

    name: str = "双十一流量节"
    start_hour: float = 19.0
    duration_minutes: float = 120.0
    intensity: float = 12.0


@dataclass(frozen=True)
class SimConfig:
    """One simulated day (or several), fully determined by these values and ``seed``.

    ``contacts_per_day`` is the expected volume of a full 24 h of baseline
    traffic; a shorter horizon gets the share its hours carry on the arrival
    curves. Repeat contacts, redials and scenario bursts come on top.
    ``staffing_factor`` scales the automatically sized roster (1.0 aims at
    roughly 80/20 service level at the planned load).
    """

    seed: int = 1
    start_date: date = date(2026, 11, 23)
    tz: str = "Asia/Shanghai"
    start_hour: float = 0.0
    duration_hours: float = 24.0
    contacts_per_day: int = 40_000
    customers: int = 20_000
    channel_share: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_SHARE))
    staffing_factor: float = 1.0
    survey_factor: float = 1.0
    repeat_rate_solved: float = 0.04
    repeat_rate_unsolved: float = 0.45
    redial_rate: float = 0.45
    unknown_customer_rate: float = 0.04
    english_rate: float = 0.02
    mixed_rate: float = 0.05
    pii_rate: float = 0.15
    escalation_rate: float = 0.04
    outages: tuple[Outage, ...] = ()
    shortfalls: tuple[StaffingShortfall, ...] = ()
    promotions: tuple[PromotionSpike, ...] = ()
    emit_profiles: bool = True
    id_prefix: str = "sim"
    # Added to every event time (and scenario window) the run produces; nothing
    # else changes: the load curves, shifts and scenario hours still follow
    # start_date/start_hour. Stamps a fixed simulated time of day at another
    # instant, e.g. a 09:00-10:20 morning stamped around the real "now".
    time_shift: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.duration_hours <= 0:
            raise ValueError("duration_hours must be > 0")
        if not 0 <= self.start_hour < 24:
            raise ValueError("start_hour must be within [0, 24)")
        if self.contacts_per_day < 0 or self.customers < 1:
            raise ValueError("contacts_per_day must be >= 0 and customers >= 1")
        unknown = set(self.channel_share) - set(DEFAULT_CHANNEL_SHARE)
        if unknown:
            raise ValueError(f"unknown channel(s) in channel_share: {sorted(unknown)}")
        for s in self.shortfalls:
            if not 0 < s.intensity <= 1:
                raise ValueError("StaffingShortfall.intensity must be within (0, 1]")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def midnight(self) -> datetime:
        """Local midnight of ``start_date``: the origin of every ``*_hour`` field."""
        return datetime(
            self.start_date.year, self.start_date.month, self.start_date.day, tzinfo=self.zone
        )

    @property
    def start(self) -> datetime:
        """Event time of the first simulated instant (``time_shift`` included)."""
        return self.midnight + timedelta(hours=self.start_hour) + self.time_shift

    @property
    def end(self) -> datetime:
        """No new contact arrives at or after this; lifecycles already begun still finish."""
        return self.start + timedelta(hours=self.duration_hours)

    def starting_at(self, instant: datetime) -> SimConfig:
        """The same simulated stretch (load curves, roster, scenarios) stamped so that
        its first instant is ``instant``, via ``time_shift``.

        Why: a demo or a test wants a busy morning's traffic *now*, whatever the wall
        clock says; stamping the simulated 09:00 at a real 02:00 keeps the 09:00 load
        and staffing instead of simulating a quiet night. Whole milliseconds, so
        event times stay exactly representable in the records.
        """
        if instant.tzinfo is None:
            raise ValueError("starting_at needs an aware datetime (a naive one has no zone)")
        shift = instant - (self.midnight + timedelta(hours=self.start_hour))
        return replace(self, time_shift=timedelta(milliseconds=shift // timedelta(milliseconds=1)))


@dataclass(frozen=True)
class ScenarioWindow:
    """Ground truth of one injected scenario, for evaluating detectors and alerts.

    ``where`` names what a detector should point at: the city for an outage,
    the queue for a staffing shortfall, the department for a promotion spike.
    ``signals`` are the keywords or KPIs expected to move.
    """

    kind: ScenarioKind
    start: datetime
    end: datetime
    where: str
    intensity: float
    signals: tuple[str, ...]


def scenario_windows(config: SimConfig) -> list[ScenarioWindow]:
    """Every scenario of ``config`` as a window in event time, sorted by start."""
    mid = config.midnight + config.time_shift
    out: list[ScenarioWindow] = []
    for o in config.outages:
        start = mid + timedelta(hours=o.start_hour)
        out.append(
            ScenarioWindow(
                "outage",
                start,
                start + timedelta(minutes=o.duration_minutes),
                o.city,
                o.intensity,
                ("断网", "没信号", "网速慢", o.city, "network"),
            )
        )
    for s in config.shortfalls:
        start = mid + timedelta(hours=s.start_hour)
        out.append(
            ScenarioWindow(
                "staffing_shortfall",
                start,
                start + timedelta(minutes=s.duration_minutes),
                s.queue,
                s.intensity,
                ("asa", "abandonment_rate", "service_level", "queue_depth"),
            )
        )
    for p in config.promotions:
        start = mid + timedelta(hours=p.start_hour)
        out.append(
            ScenarioWindow(
                "promotion_spike",
                start,
                start + timedelta(minutes=p.duration_minutes),
                "sales_retention",
                p.intensity,
                ("套餐", "活动", "优惠", p.name, "promotion"),
            )
        )
    out.sort(key=lambda w: (w.start, w.kind, w.where))
    return out
