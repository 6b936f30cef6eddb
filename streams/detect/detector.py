"""Emerging-issue detection: which keyword, category or city is surging right now.

DOMAIN.md ("Monitor") asks for the burst that an outage in one city makes
(信号/断网 + the city's name within minutes) to page a supervisor quickly, and
for ordinary busy afternoons not to page anyone. This module is a *pure*
stage: `SurgeDetector.observe` takes one routed contact (an `Observation`,
built from a `RoutingEnvelope`) and returns the alerts that closing event-time
minutes produced; the Faust agent and the metrics around it live elsewhere.

Model, per key (a keyword, a category, a city, or a (category, city) pair):

* **Counting.** Contacts are counted per 1-minute event-time window. A minute
  closes when the watermark (the latest event time seen by `observe`, or the
  `now` given to `flush`) passes its end plus `grace_seconds`; a late event
  whose minute is still open is counted in its own minute, a later one is
  dropped and counted in `stats["late_dropped"]` (it cannot change an alert
  already sent). A feed read from several Kafka partitions is not in event-time
  order across them, so there the caller counts with `add` and moves event time
  with `flush(PartitionWatermarks.watermark(...))`: the slowest active
  partition, not the fastest, decides when a minute closes.
* **Baseline with the day curve.** Contact-center traffic moves 10x between
  3 a.m. and 10 a.m., so a key's raw per-minute EWMA lags the morning ramp
  and pages on it. Instead each key learns its *share* of the traffic: an EWMA
  of its per-minute counts divided by the same EWMA of the total
  (`half_life_minutes`). The expected count in a window is that share, as odds,
  times the *other* contacts of the same window: the day curve (and any
  centre-wide rise) is taken from the traffic itself, learned online and needing
  no previous day. Using the odds against the rest (not share x total) lets a
  big key, e.g. a category with 30 % share, still show a 10x surge.
* **Robust learning.** A minute that already looks anomalous is learned only up
  to `learn_cap_ratio` x expected + `learn_cap_add`, so a 45-minute outage
  barely raises its own baseline, while a lasting shift (a new product) is still
  absorbed within a few half-lives instead of paging forever.
* **Test.** For the last minute and for the trailing `window_minutes`:
  p = P(X >= observed | Poisson(baseline)). An alert needs p < `alpha`
  (small, because thousands of keys are tested every minute), observed >=
  `min_count` and observed / baseline >= `min_ratio`, so tiny keys never page.
* **Warm-up.** Nothing alerts before `warmup_minutes` of traffic. A key younger
  than `key_warmup_minutes` (new, or re-appearing after eviction) is tested
  against at least `new_key_floor_rate` contacts per minute: its own estimate is
  still noise, but a city with 30 断网 contacts in 2 minutes clears that floor
  by far and alerts at once.
* **Episodes and cooldown.** The first alert opens an episode with a stable
  `alert_id` (hash of dimension, key and first minute). Further anomalous
  minutes extend it silently; an `update` (same id, next `sequence`) is sent only
  when the rate grows by `growth_factor` over the last alert. The episode ends
  after `cooldown_minutes` without an anomalous minute; a later surge is new.
* **Bounded memory.** At most `max_keys` key states (all dimensions together),
  in least-recently-seen order; the oldest is evicted when a new one comes.
  Per key only `hot_minutes` minute counts and `window_minutes` minutes of
  samples/departments are kept. The long tail that gets evicted is one-off
  keywords; if one comes back it is young again, so it can only page through
  the conservative new-key floor.

Only already-masked text enters (the enrichment stage masked it); alerts carry
at most three of those texts, truncated, and nothing else about customers.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from vocflow.schemas.derived.alert import AlertDimension, VocAlert

if TYPE_CHECKING:
    from vocflow.schemas.derived.routing import RoutingEnvelope

DIMENSIONS: tuple[AlertDimension, ...] = ("keyword", "category", "city", "category_city")
MAX_SAMPLES = 3
MAX_SAMPLE_CHARS = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DEPARTMENT_ZH = {
    "billing": "计费账务",
    "network": "网络运维",
    "tech_support": "技术支持",
    "sales_retention": "营销与挽留",
    "complaints": "投诉处理",
    "unassigned": "待分派",
}


# ---------------------------------------------------------------- statistics


def poisson_sf(observed: int, mean: float) -> float:
    """P(X >= observed) for X ~ Poisson(mean), with the standard library only.

    Sums the pmf terms in the direction where they shrink, starting from a term
    computed in log space, so neither a large mean nor a far tail overflows.
    """
    if observed <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    log_mean = math.log(mean)

    def pmf(k: int) -> float:
        return math.exp(-mean + k * log_mean - math.lgamma(k + 1))

    if observed > mean:
        term = pmf(observed)
        total = term
        k = observed
        while term > total * 1e-17:
            k += 1
            term *= mean / k
            total += term
        return min(1.0, total)
    # Upper tail is large here: 1 - P(X <= observed - 1), summed downwards.
    term = pmf(observed - 1)
    below = term
    for k in range(observed - 1, 0, -1):
        term *= k / mean
        below += term
        if term < below * 1e-17:
            break
    return min(1.0, max(0.0, 1.0 - below))


# -------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Observation:
    """One routed contact as the detector sees it (text already PII-masked)."""

    at: datetime
    keywords: list[str]
    category: str
    city: str | None
    text: str
    department: str

    @classmethod
    def from_envelope(cls, envelope: RoutingEnvelope) -> Observation:
        """What the `voc` agent hands over: the envelope's fields, nothing more."""
        return cls(
            at=envelope.occurred_at,
            keywords=list(envelope.keywords),
            category=envelope.tags.category.value,
            city=envelope.customer_city,
            text=envelope.text,
            department=envelope.department,
        )


@dataclass(frozen=True)
class DetectorConfig:
    """Tuning of `SurgeDetector`; the defaults are the ones measured in docs/detector.md."""

    grace_seconds: float = 30.0
    window_minutes: int = 5
    half_life_minutes: float = 60.0
    level_half_life_minutes: float = 10.0
    alpha: float = 1e-6
    min_count: int = 10
    min_ratio: float = 3.0
    critical_p: float = 1e-12
    critical_ratio: float = 8.0
    warmup_minutes: int = 30
    key_warmup_minutes: int = 60
    new_key_floor_rate: float = 1.0
    cooldown_minutes: int = 20
    continue_p: float = 1e-2
    continue_ratio: float = 2.0
    growth_factor: float = 1.5
    learn_cap_ratio: float = 2.0
    learn_cap_add: float = 2.0
    max_share: float = 0.99
    max_keys: int = 5000
    hot_minutes: int = 60
    tz: str = "Asia/Shanghai"  # only for the clock time in summaries

    def __post_init__(self) -> None:
        if self.window_minutes < 1 or self.hot_minutes < self.window_minutes:
            raise ValueError("need 1 <= window_minutes <= hot_minutes")
        if min(self.half_life_minutes, self.level_half_life_minutes) <= 0:
            raise ValueError("half-lives must be > 0")
        if self.max_keys < 1 or self.grace_seconds < 0:
            raise ValueError("need max_keys >= 1 and grace_seconds >= 0")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be within (0, 1)")


@dataclass(frozen=True, slots=True)
class HotTopic:
    """One row of the wallboard's hot-topics panel."""

    dimension: AlertDimension
    key: str
    count: int
    baseline: float  # expected count in the same minutes at the learned share
    change: float | None  # count / baseline; None while there is no baseline
    alerting: bool  # the key has an open surge episode


# --------------------------------------------------------------------- state


@dataclass(slots=True)
class _Bucket:
    """One key's contacts in one minute: count, departments, a few sample texts."""

    count: int = 0
    departments: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def add(self, department: str, text: str) -> None:
        self.count += 1
        self.departments[department] += 1
        text = text.strip()[:MAX_SAMPLE_CHARS]
        if text and len(self.samples) < MAX_SAMPLES and text not in self.samples:
            self.samples.append(text)


@dataclass(slots=True)
class _Episode:
    alert_id: str
    first_minute: int
    last_anomalous: int
    sequence: int
    last_alert_rate: float
    observed: int


@dataclass(slots=True)
class _Key:
    dimension: AlertDimension
    value: str
    first_seen: int
    share_sum: float = 0.0  # EWMA of the key's per-minute counts
    level_sum: float = 0.0  # the same with the short level half-life
    updated: int = 0  # minute that share_sum and level_sum are as of
    counts: dict[int, int] = field(default_factory=dict)  # minute -> count, hot_minutes
    buckets: dict[int, _Bucket] = field(default_factory=dict)  # minute -> bucket, window
    episode: _Episode | None = None


Key = tuple[AlertDimension, str]


@dataclass(frozen=True, slots=True)
class _Test:
    start: int  # first minute of the window
    minutes: int
    observed: int
    baseline: float
    p_value: float

    @property
    def ratio(self) -> float:
        return self.observed / self.baseline if self.baseline > 0 else math.inf


def _minute(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("Observation.at must be timezone-aware (event time)")
    return math.floor((at - _EPOCH).total_seconds() / 60)


def _time(minute: int) -> datetime:
    return _EPOCH + timedelta(minutes=minute)


def _keys_of(obs: Observation) -> list[Key]:
    keys: list[Key] = [("keyword", kw) for kw in dict.fromkeys(obs.keywords) if kw]
    keys.append(("category", obs.category))
    if obs.city:
        keys.append(("city", obs.city))
        keys.append(("category_city", f"{obs.category}|{obs.city}"))
    return keys


# ---------------------------------------------------------------- event time


class PartitionWatermarks:
    """Event time of a feed read from several partitions: that of the slowest active one.

    One watermark over all partitions runs ahead with whichever partition is
    read fastest, and when a backlog is replayed at full speed the minutes of
    the others are dropped as late. As in Flink and Kafka Streams, each
    partition keeps its own watermark (its newest event time) and the feed's is
    their minimum. A partition that stops delivering would hold the minimum back
    for ever, so one without a record for `idle_seconds` of processing time is
    left out until it delivers again. A partition that the consumer knows still
    has unread records (`behind` its high-water mark) is slow, not idle, and is
    never left out. Processing time (`wall`, seconds of a monotonic clock) is
    passed in, so the rule runs without Kafka or a real clock.
    """

    def __init__(self, idle_seconds: float) -> None:
        if idle_seconds <= 0:
            raise ValueError("idle_seconds must be > 0")
        self.idle_seconds = idle_seconds
        self._heard: dict[int, float] = {}  # wall time of the last record, or of the assignment
        self._marks: dict[int, datetime] = {}  # newest event time
        self._rose: dict[int, float] = {}  # wall time the mark last rose
        self._last: datetime | None = None

    def assign(self, partitions: Iterable[int], wall: float) -> None:
        """Register the consumer's partitions before they deliver.

        Otherwise the first partition to deliver would be the only one known and
        would set event time alone. A new partition holds event time back until
        its first record or until it is idle; a revoked one is forgotten.
        """
        assigned = set(partitions)
        for gone in [p for p in self._heard if p not in assigned]:
            del self._heard[gone]
            self._marks.pop(gone, None)
            self._rose.pop(gone, None)
        for p in assigned:
            self._heard.setdefault(p, wall)

    def observe(self, partition: int, at: datetime, wall: float) -> None:
        _minute(at)  # rejects naive datetimes
        self._heard[partition] = wall
        mark = self._marks.get(partition)
        if mark is None or at > mark:
            self._marks[partition] = at
            self._rose[partition] = wall

    def watermark(
        self, wall: float, behind: Collection[int] = (), *, moving: bool = False
    ) -> datetime | None:
        """Event time the feed has reached: None before there is one, and never going back.

        With `moving` (the flush timer) a partition's watermark moves on with
        processing time since its mark last rose, as the single watermark did,
        so live minutes still close in a quiet spell. Not for a partition
        `behind`: its next records may be much older than the clock suggests.
        When every partition is idle they all count again: in a quiet spell
        nothing else is left to move event time on.
        """
        active = [
            p for p in self._heard if p in behind or wall - self._heard[p] < self.idle_seconds
        ]
        if any(p not in self._marks for p in active):
            return self._last  # an active partition that has not delivered yet
        candidates = active or [p for p in self._heard if p in self._marks]
        if candidates:
            current = min(
                self._marks[p] + timedelta(seconds=wall - self._rose[p])
                if moving and p not in behind
                else self._marks[p]
                for p in candidates
            )
            if self._last is None or current > self._last:
                self._last = current
        return self._last


# ------------------------------------------------------------------ detector


class SurgeDetector:
    """Per-minute surge detection over keywords, categories, cities and pairs.

    Feed it observations in roughly event-time order (out of order within
    `grace_seconds` is fine) and forward what `observe`/`flush` return; a feed
    from several partitions uses `add` and `flush` with a `PartitionWatermarks`.
    Deterministic: the same observations give the same alerts and alert ids.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = c = config or DetectorConfig()
        self._decay = 0.5 ** (1.0 / c.half_life_minutes)
        self._level_decay = 0.5 ** (1.0 / c.level_half_life_minutes)
        self._keys: OrderedDict[Key, _Key] = OrderedDict()  # least recently seen first
        self._pending: dict[int, dict[Key, _Bucket]] = {}  # open minutes
        self._pending_total: dict[int, int] = {}
        self._totals: dict[int, int] = {}  # closed minute -> contacts, last hot_minutes
        self._total_ewma = 0.0  # EWMA of contacts per minute, as of minute next - 1
        self._total_level = 0.0  # the same with the short level half-life
        self._next: int | None = None  # first minute not yet closed
        self._watermark: datetime | None = None
        self._closed = 0
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------ input
    def observe(self, obs: Observation) -> list[VocAlert]:
        """Count one contact in its minute; return alerts of minutes this closes.

        Event time is the newest contact seen, which is right for one ordered
        feed only (see `add` for several partitions).
        """
        if not self.add(obs):
            return []
        if self._watermark is None or obs.at > self._watermark:
            self._watermark = obs.at
        return self._close_until(self._watermark)

    def add(self, obs: Observation) -> bool:
        """Count one contact without moving event time; False if its minute has closed.

        A contact from a partition that is ahead must not close minutes that a
        slower partition is still delivering; the caller moves event time with
        `flush` (a `PartitionWatermarks` watermark) instead.
        """
        minute = _minute(obs.at)
        if self._next is not None and minute < self._next:
            self.stats["late_dropped"] += 1
            return False
        self.stats["observed"] += 1
        buckets = self._pending.setdefault(minute, {})
        self._pending_total[minute] = self._pending_total.get(minute, 0) + 1
        for key in _keys_of(obs):
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = _Bucket()
            bucket.add(obs.department, obs.text)
        return True

    def flush(self, now: datetime) -> list[VocAlert]:
        """Advance event time to `now`: on a timer while traffic is quiet, or after `add`.

        Closes every minute whose end + grace is at or before `now`. To drain at
        the end of a stream call it with the last event time + grace + 1 minute.
        """
        _minute(now)  # rejects naive datetimes
        if self._watermark is None or now > self._watermark:
            self._watermark = now
        return self._close_until(self._watermark)

    # ------------------------------------------------------------ minute close
    def _close_until(self, watermark: datetime) -> list[VocAlert]:
        grace = timedelta(seconds=self.config.grace_seconds)
        last = _minute(watermark - grace) - 1  # last minute whose end + grace <= watermark
        if self._next is None:
            if not self._pending:
                return []
            self._next = min(self._pending)
        alerts: list[VocAlert] = []
        while self._next <= last:
            due = [m for m in self._pending if m <= last]
            if not due:
                self._skip_empty(last + 1 - self._next)
                break
            first = min(due)
            if first > self._next:
                self._skip_empty(first - self._next)
            alerts.extend(self._close_minute(first, watermark))
        return alerts

    def _skip_empty(self, n: int) -> None:
        """Close `n` minutes without contacts in one step (an idle night, a paused feed)."""
        assert self._next is not None
        self._total_ewma *= self._decay**n
        self._total_level *= self._level_decay**n
        self._next += n
        self._closed += n
        self._forget(self._next - 1)

    def _close_minute(self, m: int, watermark: datetime) -> list[VocAlert]:
        c = self.config
        buckets = self._pending.pop(m)
        total = self._pending_total.pop(m)
        self._totals[m] = total
        prior_total = self._total_ewma  # as of minute m - 1
        prior_level = self._total_level
        warmed = self._closed >= c.warmup_minutes
        alerts: list[VocAlert] = []
        for key, bucket in buckets.items():
            state = self._touch(key, m)
            state.counts[m] = bucket.count
            state.buckets[m] = bucket
            if len(state.counts) > c.hot_minutes or len(state.buckets) > c.window_minutes:
                self._prune(state, m)
            # share as of minute m - 1 (lazy decay over the minutes without the key)
            gap = max(0, m - 1 - state.updated)
            prior_sum = state.share_sum * self._decay**gap
            level_sum = state.level_sum * self._level_decay**gap
            share = min(c.max_share, prior_sum / prior_total) if prior_total > 0 else 0.0
            odds = share / (1.0 - share)
            rest_level = max(0.0, prior_level - level_sum)
            tests = [
                self._test(state, m, n, odds, rest_level) for n in sorted({1, c.window_minutes})
            ]
            passing = self._passing(tests)
            anomalous = any(t.p_value < c.continue_p and t.ratio >= c.continue_ratio for t in tests)
            alert = self._episode(state, m, passing, anomalous, bucket.count, warmed, watermark)
            if alert is not None:
                alerts.append(alert)
            # learn: an anomalous minute counts only up to a cap of the expected
            # (not while young: against the new-key floor, "anomalous" means nothing yet)
            learn = float(bucket.count)
            if anomalous and m - state.first_seen >= c.key_warmup_minutes:
                learn = min(learn, c.learn_cap_ratio * tests[0].baseline + c.learn_cap_add)
            state.share_sum = prior_sum * self._decay + (1.0 - self._decay) * learn
            state.level_sum = level_sum * self._level_decay + (1.0 - self._level_decay) * learn
            state.updated = m
        self._total_ewma = prior_total * self._decay + (1.0 - self._decay) * total
        self._total_level = prior_level * self._level_decay + (1.0 - self._level_decay) * total
        self._next = m + 1
        self._closed += 1
        self._forget(m)
        self.stats["minutes_closed"] += 1
        self.stats["alerts"] += len(alerts)
        return alerts

    def _touch(self, key: Key, m: int) -> _Key:
        state = self._keys.get(key)
        if state is None:
            while len(self._keys) >= self.config.max_keys:
                self._keys.popitem(last=False)
                self.stats["evicted"] += 1
            state = self._keys[key] = _Key(key[0], key[1], first_seen=m, updated=m)
        else:
            self._keys.move_to_end(key)
        return state

    def _test(self, state: _Key, m: int, minutes: int, odds: float, rest_level: float) -> _Test:
        """Poisson tail test of the key's last `minutes` minutes.

        The other contacts of the window are the better traffic estimate when
        traffic moves (the morning ramp); their recent level is the better one
        when a big key leaves few others in a minute by chance. Taking the
        larger keeps either from making a normal minute look like a surge.
        """
        c = self.config
        start = max(m - minutes + 1, state.first_seen)
        span = range(start, m + 1)
        observed = sum(state.counts.get(i, 0) for i in span)
        rest = sum(self._totals.get(i, 0) for i in span) - observed
        baseline = odds * max(rest, rest_level * len(span))
        if m - state.first_seen < c.key_warmup_minutes:
            baseline = max(baseline, c.new_key_floor_rate * len(span))
        return _Test(start, len(span), observed, baseline, poisson_sf(observed, baseline))

    def _passing(self, tests: list[_Test]) -> list[_Test]:
        """The windows that clear alpha, the minimum count and the minimum ratio."""
        c = self.config
        return [
            t
            for t in tests
            if t.p_value < c.alpha and t.observed >= c.min_count and t.ratio >= c.min_ratio
        ]

    def _episode(
        self,
        state: _Key,
        m: int,
        passing: list[_Test],
        anomalous: bool,
        count: int,
        warmed: bool,
        watermark: datetime,
    ) -> VocAlert | None:
        c = self.config
        ep = state.episode
        if ep is not None and m - ep.last_anomalous > c.cooldown_minutes:
            ep = state.episode = None
        if ep is not None:
            ep.observed += count
            if anomalous or passing:
                ep.last_anomalous = m
            if not passing:
                return None
            # an update reports the window with the highest rate, if it grew enough
            best = max(passing, key=lambda t: (t.observed / t.minutes, -t.minutes))
            if best.observed / best.minutes < c.growth_factor * ep.last_alert_rate:
                return None
            ep.sequence += 1
        else:
            if not passing or not warmed:
                return None
            # the first alert reports the most significant window (ties: the shorter)
            best = min(passing, key=lambda t: (t.p_value, t.minutes))
            digest = hashlib.sha1(
                f"{state.dimension}\x1f{state.value}\x1f{best.start}".encode()
            ).hexdigest()[:20]
            ep = state.episode = _Episode(
                alert_id=f"vocalert-{digest}",
                first_minute=best.start,
                last_anomalous=m,
                sequence=0,
                last_alert_rate=0.0,
                observed=best.observed,
            )
        ep.last_alert_rate = best.observed / best.minutes
        return self._alert(state, ep, best, m, watermark)

    def _forget(self, m: int) -> None:
        """Drop minute totals older than the windows need.

        Per-key data is pruned when the key is next counted (`_close_minute`):
        a key holds at most `hot_minutes` + 1 counts and `window_minutes` + 1
        buckets however long it goes unseen, so no sweep over all keys is needed.
        """
        cutoff = m - self.config.hot_minutes
        for old in [i for i in self._totals if i <= cutoff]:
            del self._totals[old]

    def _prune(self, state: _Key, m: int) -> None:
        c = self.config
        for old in [i for i in state.counts if i <= m - c.hot_minutes]:
            del state.counts[old]
        for old in [i for i in state.buckets if i <= m - c.window_minutes]:
            del state.buckets[old]

    # ----------------------------------------------------------------- output
    def _alert(self, state: _Key, ep: _Episode, t: _Test, m: int, watermark: datetime) -> VocAlert:
        c = self.config
        self._prune(state, m)
        departments: Counter[str] = Counter()
        samples: list[str] = []
        for i in range(m, t.start - 1, -1):  # newest minute first
            bucket = state.buckets.get(i)
            if bucket is None:
                continue
            departments.update(bucket.departments)
            for text in bucket.samples:
                if len(samples) < MAX_SAMPLES and text not in samples:
                    samples.append(text)
        # most common; ties by name, so replays agree
        department = (
            min(departments.items(), key=lambda kv: (-kv[1], kv[0]))[0] if departments else None
        )
        ratio = t.ratio
        severity: Literal["warning", "critical"] = (
            "critical" if t.p_value <= c.critical_p and ratio >= c.critical_ratio else "warning"
        )
        keyword = state.value if state.dimension == "keyword" else None
        category = city = None
        if state.dimension == "category":
            category = state.value
        elif state.dimension == "city":
            city = state.value
        elif state.dimension == "category_city":
            category, _, city = state.value.partition("|")
        rate = t.baseline / t.minutes
        span = m + 1 - ep.first_minute
        since = _time(ep.first_minute).astimezone(ZoneInfo(c.tz)).strftime("%H:%M")
        zh, en = _summaries(
            state.dimension, keyword, category, city, ep, t, rate, span, department, since
        )
        return VocAlert(
            alert_id=ep.alert_id,
            sequence=ep.sequence,
            status="new" if ep.sequence == 0 else "update",
            dimension=state.dimension,
            key=state.value,
            keyword=keyword,
            category=category,
            city=city,
            window_start=_time(t.start),
            window_end=_time(m + 1),
            observed=t.observed,
            baseline=round(t.baseline, 4),
            baseline_rate=round(rate, 4),
            ratio=round(ratio, 3) if math.isfinite(ratio) else 1e9,
            p_value=t.p_value,
            severity=severity,
            first_seen=_time(ep.first_minute),
            episode_observed=ep.observed,
            emitted_at=watermark,
            department=department,
            sample_texts=samples,
            summary_zh=zh,
            summary_en=en,
        )

    # -------------------------------------------------------------- wallboard
    def hot_topics(
        self,
        window_minutes: int = 15,
        top_n: int = 10,
        dimensions: Iterable[AlertDimension] = ("keyword", "category"),
    ) -> dict[str, list[HotTopic]]:
        """Top keys of the last `window_minutes` closed minutes, with change vs baseline.

        Closed minutes only, so a number on the wallboard does not drop when a
        minute is half full. The baseline is the key's learned share times the
        traffic of those minutes (share, not odds: this is a display, not a test).
        """
        c = self.config
        n = max(1, min(window_minutes, c.hot_minutes))
        out: dict[str, list[HotTopic]] = {}
        if self._next is None:
            return {d: [] for d in dimensions}
        span = range(self._next - n, self._next)
        total = sum(self._totals.get(i, 0) for i in span)
        for dim in dimensions:
            rows: list[HotTopic] = []
            for (d, value), state in self._keys.items():
                if d != dim:
                    continue
                count = sum(state.counts.get(i, 0) for i in span)
                if count == 0:
                    continue
                share_sum = state.share_sum * self._decay ** max(0, self._next - 1 - state.updated)
                share = share_sum / self._total_ewma if self._total_ewma > 0 else 0.0
                baseline = share * total
                rows.append(
                    HotTopic(
                        dimension=dim,
                        key=value,
                        count=count,
                        baseline=round(baseline, 3),
                        change=round(count / baseline, 3) if baseline > 0 else None,
                        alerting=state.episode is not None
                        and self._next - 1 - state.episode.last_anomalous <= c.cooldown_minutes,
                    )
                )
            rows.sort(key=lambda r: (-r.count, r.key))
            out[dim] = rows[:top_n]
        return out

    @property
    def tracked_keys(self) -> int:
        return len(self._keys)

    def is_tracked(self, dimension: AlertDimension, key: str) -> bool:
        return (dimension, key) in self._keys


def _summaries(
    dimension: AlertDimension,
    keyword: str | None,
    category: str | None,
    city: str | None,
    ep: _Episode,
    t: _Test,
    rate: float,
    span: int,
    department: str | None,
    since: str,
) -> tuple[str, str]:
    """One line each in Chinese and English: what, where, how bad, since when."""
    if dimension == "keyword":
        where_zh, where_en = f"关键词「{keyword}」", f"keyword '{keyword}'"
    elif dimension == "category":
        where_zh, where_en = f"{category} 类", f"category {category}"
    elif dimension == "city":
        where_zh, where_en = f"{city} 地区", f"city {city}"
    else:
        where_zh, where_en = f"{city} {category} 类", f"{category} in {city}"
    prefix_zh = "【更新】" if ep.sequence else ""
    prefix_en = "[update] " if ep.sequence else ""
    ratio = f"{t.ratio:.1f}" if math.isfinite(t.ratio) else "∞"
    dept_zh = DEPARTMENT_ZH.get(department or "", department or "未知")
    zh = (
        f"{prefix_zh}{where_zh} 投诉突增：{span} 分钟内 {ep.observed} 件，"
        f"基线 {rate:.1f} 件/分钟；最近 {t.minutes} 分钟 {t.observed} 件，"
        f"为基线的 {ratio} 倍（p={t.p_value:.1e}），自 {since} 起。建议责任部门：{dept_zh}。"
    )
    en = (
        f"{prefix_en}Surge in {where_en}: {ep.observed} contacts in {span} min, "
        f"baseline {rate:.1f} contacts/min; last {t.minutes} min {t.observed} contacts, "
        f"{ratio}x baseline (p={t.p_value:.1e}), since {since}. "
        f"Likely department: {department or 'unknown'}."
    )
    return zh, en
