"""SurgeDetector on synthetic minute counts, with exact expected values.

Traffic is built minute by minute so the learned share is known exactly: with
the same counts every minute the EWMA share equals count / total, and the
expected count in a burst minute is share / (1 - share) x the other contacts.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from vocflow.schemas.derived.alert import VocAlert
from vocflow.streams.detect.detector import (
    DetectorConfig,
    Observation,
    SurgeDetector,
    poisson_sf,
)

pytestmark = pytest.mark.clock

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 14:00 in Asia/Shanghai


def obs(
    minute: float,
    category: str = "other",
    city: str | None = None,
    keywords: tuple[str, ...] = (),
    text: str = "咨询",
    department: str = "billing",
) -> Observation:
    return Observation(
        at=T0 + timedelta(minutes=minute),
        keywords=list(keywords),
        category=category,
        city=city,
        text=text,
        department=department,
    )


def feed_minute(
    det: SurgeDetector, minute: int, counts: dict[str, int], **kw: object
) -> list[VocAlert]:
    """`counts[category]` contacts of each category, spread inside the minute."""
    alerts: list[VocAlert] = []
    items = [cat for cat, n in counts.items() for _ in range(n)]
    for i, cat in enumerate(items):
        alerts += det.observe(obs(minute + i / (len(items) + 1), category=cat, **kw))  # type: ignore[arg-type]
    return alerts


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's sampler (means here are small)."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def steady(det: SurgeDetector, minutes: int, start: int = 0) -> list[VocAlert]:
    alerts: list[VocAlert] = []
    for m in range(start, start + minutes):
        alerts += feed_minute(det, m, {"other": 95, "fault": 5})
    return alerts


# ------------------------------------------------------------------- poisson


def test_poisson_sf_exact_values() -> None:
    assert poisson_sf(0, 3.0) == 1.0
    assert poisson_sf(1, 2.0) == pytest.approx(1 - math.exp(-2.0))
    # P(X >= 3 | 1) = 1 - e^-1 (1 + 1 + 1/2)
    assert poisson_sf(3, 1.0) == pytest.approx(1 - math.exp(-1) * 2.5)
    direct = sum(math.exp(-5) * 5**k / math.factorial(k) for k in range(25, 120))
    assert poisson_sf(25, 5.0) == pytest.approx(direct, rel=1e-9)
    assert poisson_sf(5, 0.0) == 0.0
    assert 0.0 <= poisson_sf(5000, 1.0) < 1e-300 or poisson_sf(5000, 1.0) == 0.0
    assert poisson_sf(900, 1000.0) == pytest.approx(0.9992, abs=2e-4)


# --------------------------------------------------------------- no alert


def test_steady_poisson_traffic_raises_no_alert() -> None:
    rng = random.Random(7)
    det = SurgeDetector()
    rates = {"other": 40.0, "billing": 12.0, "fault": 4.0, "coverage": 1.0, "rare": 0.1}
    cities = ["杭州", "上海", "北京", "成都"]
    alerts: list[VocAlert] = []
    for m in range(600):
        for cat, rate in rates.items():
            for _ in range(poisson(rng, rate)):
                city = cities[int(rng.random() * 4)]
                kw = (f"词{int(rng.random() * 30)}",)
                alerts += det.observe(obs(m + rng.random(), cat, city, kw))
    assert alerts == []


def test_day_curve_ramp_raises_no_alert() -> None:
    """Traffic x6 over two hours (the morning ramp): shares stay, nothing pages."""
    det = SurgeDetector()
    alerts: list[VocAlert] = []
    for m in range(240):
        scale = 1 + 5 * min(1.0, max(0.0, (m - 60) / 120))
        alerts += feed_minute(det, m, {"other": round(19 * scale), "fault": round(scale)})
    assert alerts == []


# ------------------------------------------------------------------- bursts


def test_burst_alerts_in_first_minute_where_tail_test_passes() -> None:
    det = SurgeDetector()
    assert steady(det, 100) == []
    # 12 vs 5 expected: p = 0.0055, above alpha: no alert
    assert feed_minute(det, 100, {"other": 95, "fault": 12}) == []
    alerts = feed_minute(det, 101, {"other": 95, "fault": 25})
    alerts += det.flush(T0 + timedelta(minutes=102, seconds=30))
    assert [(a.dimension, a.key) for a in alerts] == [("category", "fault")]
    a = alerts[0]
    # EWMA share after 100 minutes of 5/100 and one of 12/107 (both EWMAs start
    # at minute 0, so their warm-up factors are equal), as odds, x 95 others
    d = 0.5 ** (1 / 60)
    key = 5 * (1 - d**100) * d + (1 - d) * 12
    total = 100 * (1 - d**100) * d + (1 - d) * 107
    expected = key / (total - key) * 95
    assert expected == pytest.approx(5.117, abs=1e-3)
    assert a.observed == 25
    assert a.baseline == pytest.approx(expected, abs=1e-4)
    assert a.baseline_rate == pytest.approx(expected, abs=1e-4)
    assert a.ratio == pytest.approx(25 / expected, abs=1e-3)
    assert a.p_value == pytest.approx(poisson_sf(25, expected), rel=1e-3)
    assert a.window_start == T0 + timedelta(minutes=101)
    assert a.window_end == T0 + timedelta(minutes=102)
    assert a.first_seen == a.window_start
    assert a.emitted_at == T0 + timedelta(minutes=102, seconds=30)
    assert a.severity == "warning"
    assert a.status == "new" and a.sequence == 0 and a.kind == "emerging_issue"


def test_small_key_never_pages_below_min_count() -> None:
    det = SurgeDetector()
    for m in range(100):
        feed_minute(det, m, {"other": 100, "rare": 1 if m % 20 == 0 else 0})
    # 9 contacts of a key expected at 0.05/min: p is tiny, but 9 < min_count
    alerts = feed_minute(det, 100, {"other": 100, "rare": 9})
    alerts += det.flush(T0 + timedelta(minutes=103))
    assert alerts == []


def test_cooldown_one_alert_then_update_when_it_grows_then_new_episode() -> None:
    det = SurgeDetector()
    steady(det, 100)
    alerts: list[VocAlert] = []
    for m in range(100, 110):  # sustained burst: one alert, not ten
        alerts += feed_minute(det, m, {"other": 95, "fault": 25})
    assert [a.sequence for a in alerts] == [0]
    first = alerts[0]
    grown = feed_minute(det, 110, {"other": 95, "fault": 60})
    grown += feed_minute(det, 111, {"other": 95, "fault": 60})
    assert [(a.alert_id, a.sequence, a.status) for a in grown] == [(first.alert_id, 1, "update")]
    assert grown[0].observed == 60
    assert grown[0].first_seen == first.first_seen
    assert grown[0].episode_observed == 25 * 10 + 60
    # quiet for longer than the cooldown, then a new surge: a new episode and id
    steady(det, 40, start=112)
    again = feed_minute(det, 152, {"other": 95, "fault": 60})
    again += det.flush(T0 + timedelta(minutes=154))
    assert len(again) == 1 and again[0].sequence == 0
    assert again[0].alert_id != first.alert_id


def test_alert_id_is_stable_on_replay() -> None:
    def play() -> list[VocAlert]:
        det = SurgeDetector()
        steady(det, 100)
        return feed_minute(det, 100, {"other": 95, "fault": 25}) + det.flush(
            T0 + timedelta(minutes=102)
        )

    assert [a.alert_id for a in play()] == [a.alert_id for a in play()]


def test_new_key_burst_alerts_at_once() -> None:
    """A city never seen before with 15 断网 contacts in its first minute."""
    det = SurgeDetector()
    steady(det, 100)
    alerts = feed_minute(det, 100, {"other": 95, "fault": 5})
    for i in range(15):
        alerts += det.observe(
            obs(100.5 + i / 100, "outage", "杭州", ("断网",), f"杭州断网了{i}", "network")
        )
    alerts += det.flush(T0 + timedelta(minutes=101, seconds=30))
    by_key = {(a.dimension, a.key): a for a in alerts}
    assert set(by_key) == {
        ("keyword", "断网"),
        ("category", "outage"),
        ("city", "杭州"),
        ("category_city", "outage|杭州"),
    }
    city = by_key[("city", "杭州")]
    # a young key is tested against the floor of 1 contact/minute
    assert city.observed == 15
    assert city.baseline == 1.0
    assert city.p_value == pytest.approx(poisson_sf(15, 1.0), rel=1e-6)
    assert city.severity == "critical"
    assert city.department == "network"
    pair = by_key[("category_city", "outage|杭州")]
    assert (pair.category, pair.city, pair.keyword) == ("outage", "杭州", None)


def test_no_alert_during_warmup() -> None:
    det = SurgeDetector()
    alerts = feed_minute(det, 0, {"other": 95, "fault": 5})
    for m in range(1, 25):
        alerts += feed_minute(det, m, {"other": 95, "fault": 60 if m > 20 else 5})
    assert alerts == []


# --------------------------------------------------------------- event time


def test_late_event_within_grace_counts_in_its_minute() -> None:
    det = SurgeDetector()
    steady(det, 100)
    alerts = feed_minute(det, 100, {"other": 95, "fault": 15})
    # watermark 101:25 < 101:00 + 30 s grace: minute 100 still open
    alerts += det.observe(obs(101 + 25 / 60))
    for i in range(10):  # late, but within the grace period
        alerts += det.observe(obs(100.9 + i / 1000, "fault"))
    assert alerts == []
    alerts += det.observe(obs(101.6))  # closes minute 100
    assert [(a.key, a.observed) for a in alerts] == [("fault", 25)]
    assert det.stats["late_dropped"] == 0
    # minute 100 is closed now: a later event for it is dropped and counted
    assert det.observe(obs(100.99, "fault")) == []
    assert det.stats["late_dropped"] == 1


def test_flush_closes_minutes_on_event_time_only() -> None:
    det = SurgeDetector()
    steady(det, 100)
    feed_minute(det, 100, {"other": 95, "fault": 25})
    assert det.flush(T0 + timedelta(minutes=100, seconds=59)) == []
    assert det.flush(T0 + timedelta(minutes=101, seconds=29)) == []
    alerts = det.flush(T0 + timedelta(minutes=101, seconds=30))
    assert [a.key for a in alerts] == ["fault"]
    with pytest.raises(ValueError):
        det.flush(datetime(2026, 11, 23, 7, 0))  # naive time


# --------------------------------------------------------------------- memory


def test_memory_cap_evicts_least_recently_seen_key() -> None:
    det = SurgeDetector(DetectorConfig(max_keys=3))
    det.observe(obs(0, "a"))
    det.observe(obs(1, "b"))
    det.observe(obs(2, "c"))
    det.observe(obs(3, "a"))  # closes minutes 0 and 1: keys a, b
    det.observe(obs(4, "d"))  # closes 2 (c) and 3 (a seen again)
    assert det.tracked_keys == 3
    det.flush(T0 + timedelta(minutes=6))  # closes 4: d is new, b is the oldest
    assert det.tracked_keys == 3
    assert det.stats["evicted"] == 1
    assert not det.is_tracked("category", "b")
    assert all(det.is_tracked("category", k) for k in ("a", "c", "d"))


def test_per_key_minute_data_stays_bounded() -> None:
    det = SurgeDetector(DetectorConfig(hot_minutes=10, window_minutes=5))
    steady(det, 200)
    state = det._keys[("category", "fault")]
    assert len(state.counts) <= 11 and len(state.buckets) <= 6
    assert len(det._totals) <= 10


# ------------------------------------------------------------------- content


def test_sample_texts_at_most_three_and_bilingual_summary() -> None:
    det = SurgeDetector()
    for m in range(100):
        feed_minute(det, m, {"other": 95}, city="上海")
        for i in range(2):
            det.observe(obs(m + 0.5 + i / 10, "coverage", "杭州", ("信号",), "信号差", "network"))
    alerts = feed_minute(det, 100, {"other": 95}, city="上海")
    for i in range(40):
        alerts += det.observe(
            obs(100 + i / 50, "coverage", "杭州", ("断网",), f"家里断网了 [PHONE] {i}", "network")
        )
    alerts += det.flush(T0 + timedelta(minutes=102))
    city = next(a for a in alerts if a.dimension == "city")
    assert len(city.sample_texts) == 3
    assert all(t.startswith("家里断网了 [PHONE]") for t in city.sample_texts)
    assert city.key == "杭州" and city.observed == 40
    # 2 of 97 contacts per minute were 杭州: 2/95 x 95 others = 2.0 expected
    assert city.baseline == pytest.approx(2.0, abs=1e-3)
    zh, en = city.summary_zh, city.summary_en
    assert "杭州" in zh and "1 分钟内 40 件" in zh and "基线 2.0 件/分钟" in zh
    assert "20.0 倍" in zh and "网络运维" in zh and "自 15:40 起" in zh
    assert "city 杭州" in en and "40 contacts in 1 min" in en
    assert "baseline 2.0 contacts/min" in en and "20.0x" in en and "network" in en
    kw = next(a for a in alerts if a.dimension == "keyword")
    assert kw.key == "断网" and "关键词「断网」" in kw.summary_zh
    VocAlert.model_validate_json(city.model_dump_json())  # round-trips the schema


def test_department_guess_is_most_common_in_window() -> None:
    det = SurgeDetector()
    steady(det, 100)
    alerts = feed_minute(det, 100, {"other": 95})
    for i in range(25):
        dept = "complaints" if i % 3 == 0 else "network"
        alerts += det.observe(obs(100 + i / 30, "fault", department=dept))
    alerts += det.flush(T0 + timedelta(minutes=102))
    assert [a.department for a in alerts] == ["network"]


def test_hot_topics_counts_and_change() -> None:
    det = SurgeDetector()
    for m in range(100):
        feed_minute(det, m, {"other": 95, "fault": 5}, keywords=("话费",))
    feed_minute(det, 100, {"other": 95, "fault": 25}, keywords=("话费",))
    det.flush(T0 + timedelta(minutes=101, seconds=30))
    hot = det.hot_topics(window_minutes=2, top_n=2)
    cats = {h.key: h for h in hot["category"]}
    assert [h.key for h in hot["category"]] == ["other", "fault"]
    assert cats["fault"].count == 30
    assert cats["fault"].alerting is True
    assert hot["keyword"][0].key == "话费" and hot["keyword"][0].count == 100 + 120
    assert cats["other"].change is not None and 0.8 < cats["other"].change < 1.1
    assert cats["fault"].change is not None and cats["fault"].change > 2


def test_observation_from_envelope() -> None:
    from vocflow.schemas import RoutingEnvelope

    env = RoutingEnvelope.model_validate(
        {
            "envelope_id": "e1",
            "contact_id": "c1",
            "channel": "phone",
            "event_type": "offered",
            "occurred_at": "2026-11-23T14:00:00+08:00",
            "routed_at": "2026-11-23T14:00:01+08:00",
            "department": "network",
            "text": "杭州断网了",
            "language": "zh",
            "keywords": ["断网", "杭州"],
            "sentiment": -0.6,
            "customer_city": "杭州",
            "customer_known": True,
            "repeat_contact": False,
            "tags": {
                "business_type": {"value": "broadband", "rule_id": "r1"},
                "support_system": {"value": "none", "rule_id": "default"},
                "bearer_network": {"value": "fixed", "rule_id": "r1"},
                "department": {"value": "network", "rule_id": "r1"},
                "category": {"value": "fault", "rule_id": "r1"},
                "urgency": "P2",
                "urgency_rule_id": "r1",
            },
            "reason": "r",
            "sla_due_at": "2026-11-24T14:00:00+08:00",
            "rules_version": "v1",
        }
    )
    o = Observation.from_envelope(env)
    assert (o.category, o.city, o.department, o.keywords) == (
        "fault",
        "杭州",
        "network",
        ["断网", "杭州"],
    )
    assert o.at == T0
