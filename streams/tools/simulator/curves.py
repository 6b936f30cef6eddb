"""The shape of the day and the size of the work: arrival curves, issue mix, handling times.

Numbers are typical of a large Chinese telecom contact center: voice peaks
around 10:00 and 15:00 with a lunch dip, chat and WeChat peak in the evening
(after work), e-mail and SMS are spread over the day; network complaints rise
in the evening when people are home, billing in the morning. They are
deliberately plain tables, so a reader can change the day without reading the
engine.

Rates are piecewise constant per minute (linear interpolation between hour
centres): that is exact for a non-homogeneous Poisson process sampled minute
by minute, and cheap (one table lookup per arrival).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vocflow.streams.tools.simulator.config import SimConfig
from vocflow.streams.tools.simulator.texts import ISSUES, Issue

DEPARTMENTS: tuple[str, ...] = (
    "billing",
    "network",
    "tech_support",
    "sales_retention",
    "complaints",
)

# Channel -> agent group. Voice and chat are synchronous (customers wait and may
# abandon); the back office ("office") works e-mail, app feedback, Weibo and
# SMS from a backlog, with first-response / resolution SLAs instead.
CHANNEL_GROUP: Mapping[str, str] = {
    "phone": "voice",
    "chat": "chat",
    "wechat": "chat",
    "email": "office",
    "app": "office",
    "weibo": "office",
    "sms": "office",
}
GROUPS: tuple[str, ...] = ("voice", "chat", "office")
SYNC_GROUPS = frozenset({"voice", "chat"})

# Relative volume per hour of day (index 0 = 00:00-01:00).
# fmt: off
HOURLY: Mapping[str, tuple[float, ...]] = {
    # two peaks (10:00, 15:00), lunch dip 12-13, quiet night
    "phone": (
        0.5, 0.3, 0.2, 0.2, 0.2, 0.4, 1.0, 3.0, 6.5, 9.0, 10.0, 9.2,
        6.0, 6.4, 8.8, 9.8, 9.0, 7.5, 5.5, 4.6, 4.0, 3.0, 2.0, 1.0,
    ),
    # rises through the day, evening peak 20-22
    "chat": (
        1.4, 0.8, 0.4, 0.3, 0.3, 0.4, 0.8, 1.6, 3.0, 4.4, 5.0, 5.0,
        4.4, 4.7, 5.0, 5.2, 5.4, 5.6, 6.2, 7.6, 8.6, 8.9, 6.6, 3.2,
    ),
    "wechat": (
        1.6, 0.9, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 3.2, 4.2, 4.6, 4.6,
        4.8, 4.6, 4.6, 4.8, 5.0, 5.4, 6.4, 7.8, 8.4, 8.6, 6.8, 3.6,
    ),
    # spread over the day
    "email": (
        1.6, 1.1, 0.8, 0.7, 0.7, 1.0, 1.6, 2.6, 4.0, 5.0, 5.0, 5.0,
        4.6, 4.6, 5.0, 5.0, 5.0, 4.8, 4.4, 4.2, 4.0, 3.6, 3.0, 2.2,
    ),
    "app": (
        1.2, 0.7, 0.4, 0.3, 0.3, 0.5, 1.2, 2.4, 3.6, 4.4, 4.6, 4.6,
        4.8, 4.4, 4.4, 4.6, 4.8, 5.0, 5.6, 6.4, 6.8, 6.4, 4.6, 2.4,
    ),
    "weibo": (
        2.0, 1.2, 0.6, 0.4, 0.4, 0.5, 1.0, 2.0, 3.0, 3.6, 4.0, 4.0,
        4.2, 4.0, 4.0, 4.0, 4.2, 4.4, 5.0, 5.6, 6.0, 6.0, 5.0, 3.4,
    ),
    "sms": (
        0.8, 0.4, 0.3, 0.3, 0.3, 0.6, 1.4, 3.0, 4.4, 5.0, 5.0, 4.8,
        4.2, 4.4, 4.8, 4.8, 4.6, 4.4, 4.0, 3.6, 3.2, 2.6, 1.8, 1.2,
    ),
}
# fmt: on

# Department weight multipliers per channel (who writes where).
CHANNEL_DEPT_BIAS: Mapping[str, Mapping[str, float]] = {
    "sms": {"billing": 1.4, "sales_retention": 1.6, "network": 0.5, "tech_support": 0.6},
    "email": {"billing": 1.7, "complaints": 2.0, "network": 0.6},
    "weibo": {"complaints": 4.0, "network": 1.6, "sales_retention": 0.5},
    "app": {"tech_support": 1.6, "billing": 1.2},
    "wechat": {"sales_retention": 1.2},
}


def _dept_hour_bias(dept: str, hour: int) -> float:
    """Network faults are noticed at home in the evening; bills are read in the morning."""
    if dept == "network" and 18 <= hour <= 23:
        return 1.45
    if dept == "billing" and 8 <= hour <= 11:
        return 1.25
    if dept == "sales_retention" and 13 <= hour <= 21:
        return 1.2
    return 1.0


def _lognormal_mu(mean: float, sigma: float) -> float:
    return math.log(mean) - sigma * sigma / 2


@dataclass(frozen=True)
class Handling:
    """Lognormal parameters (mu, sigma) of talk, hold and after-work time, in seconds."""

    talk: tuple[float, float]
    hold_p: float
    hold: tuple[float, float]
    acw: tuple[float, float]

    @property
    def mean_seconds(self) -> float:
        """Expected handling time per contact: talk + P(hold) * hold + after-work."""

        def mean(p: tuple[float, float]) -> float:
            return math.exp(p[0] + p[1] * p[1] / 2)

        return mean(self.talk) + self.hold_p * mean(self.hold) + mean(self.acw)


_TALK_MEAN = {
    "billing": 260.0,
    "network": 320.0,
    "tech_support": 380.0,
    "sales_retention": 300.0,
    "complaints": 480.0,
}
_GROUP_TALK_FACTOR = {"voice": 1.0, "chat": 1.5, "office": 1.1}
_GROUP_HOLD_P = {"voice": 0.28, "chat": 0.12, "office": 0.0}
_GROUP_ACW_MEAN = {"voice": 35.0, "chat": 25.0, "office": 60.0}

HANDLING: Mapping[tuple[str, str], Handling] = {
    (g, d): Handling(
        talk=(_lognormal_mu(_TALK_MEAN[d] * _GROUP_TALK_FACTOR[g], 0.55), 0.55),
        hold_p=_GROUP_HOLD_P[g],
        hold=(_lognormal_mu(50.0, 0.7), 0.7),
        acw=(_lognormal_mu(_GROUP_ACW_MEAN[g], 0.5), 0.5),
    )
    for g in GROUPS
    for d in DEPARTMENTS
}
TRANSFER_TALK = (_lognormal_mu(70.0, 0.5), 0.5)
TRANSFER_ACW = (_lognormal_mu(12.0, 0.4), 0.4)
# Customer patience (lognormal mean, sigma) and the system's maximum wait.
PATIENCE = {"voice": (_lognormal_mu(150.0, 0.9), 0.9), "chat": (_lognormal_mu(300.0, 0.9), 0.9)}
MAX_WAIT_MS = {"voice": 1_200_000, "chat": 900_000}
SHORT_ABANDON_SHARE = 0.07


def hourly_profile(channel: str) -> list[float]:
    """Per-minute share of the channel's daily volume (1440 values summing to 1).

    Linear interpolation between hour centres, so the curve has no steps at
    the full hour that a detector could mistake for a surge.
    """
    hourly = HOURLY[channel]
    raw = []
    for m in range(1440):
        x = m / 60.0 - 0.5
        h0 = math.floor(x)
        frac = x - h0
        a = hourly[h0 % 24]
        b = hourly[(h0 + 1) % 24]
        raw.append(a + (b - a) * frac)
    total = sum(raw)
    return [v / total for v in raw]


class ArrivalModel:
    """Minute-by-minute baseline arrival rates and the issue mix, over one horizon.

    ``rate_per_ms[i]`` is the total expected arrival rate in minute ``i`` of the
    horizon; ``channel_cum[i % 1440]`` and ``issue_cum[(channel, hour)]`` pick
    what arrives.
    """

    def __init__(self, config: SimConfig) -> None:
        shares = {c: s for c, s in config.channel_share.items() if s > 0}
        total_share = sum(shares.values()) or 1.0
        self.channels: tuple[str, ...] = tuple(shares)
        profiles = {c: hourly_profile(c) for c in self.channels}
        # contacts per minute-of-day per channel
        per_min = {
            c: [config.contacts_per_day * shares[c] / total_share * p for p in profiles[c]]
            for c in self.channels
        }
        self.channel_cum: list[list[float]] = []
        day_total: list[float] = []
        for m in range(1440):
            acc = 0.0
            cum = []
            for c in self.channels:
                acc += per_min[c][m]
                cum.append(acc)
            self.channel_cum.append(cum)
            day_total.append(acc)
        first_minute = round(config.start_hour * 60)
        self.first_minute = first_minute
        self.minutes = math.ceil(config.duration_hours * 60)
        self.rate_per_ms: list[float] = [
            day_total[(first_minute + i) % 1440] / 60_000.0 for i in range(self.minutes)
        ]
        self.per_min = per_min
        self.issue_cum: dict[tuple[str, int], tuple[list[float], list[Issue]]] = {}
        for c in self.channels:
            bias = CHANNEL_DEPT_BIAS.get(c, {})
            for h in range(24):
                acc = 0.0
                cum = []
                issues = []
                for issue in ISSUES:
                    w = issue.weight * bias.get(issue.dept, 1.0) * _dept_hour_bias(issue.dept, h)
                    acc += w
                    cum.append(acc)
                    issues.append(issue)
                self.issue_cum[(c, h)] = (cum, issues)

    def expected_load(self, escalation_rate: float) -> dict[tuple[str, str], list[float]]:
        """Expected arrivals per (group, department) per horizon hour, for sizing the roster.

        Escalated texts move to ``complaints``; about half of them are routed
        there directly, the rest are transferred after a first answer.
        """
        hours = math.ceil((self.first_minute + self.minutes) / 60) - self.first_minute // 60
        first_hour = self.first_minute // 60
        load = {(g, d): [0.0] * hours for g in GROUPS for d in DEPARTMENTS}
        for k in range(hours):
            h = (first_hour + k) % 24
            for c in self.channels:
                volume = sum(self.per_min[c][h * 60 : h * 60 + 60])
                cum, issues = self.issue_cum[(c, h)]
                total = cum[-1]
                prev = 0.0
                g = CHANNEL_GROUP[c]
                for w, issue in zip(cum, issues, strict=True):
                    share = (w - prev) / total
                    prev = w
                    esc = min(0.5, escalation_rate * 1.6)
                    load[(g, issue.dept)][k] += volume * share * (1 - esc)
                    load[(g, "complaints")][k] += volume * share * esc
        return load


def pick_cum(cum: Sequence[float], x: float) -> int:
    """Index of the bucket that ``x`` (in [0, cum[-1])) falls in."""
    i = bisect_right(cum, x)
    return i if i < len(cum) else len(cum) - 1
