"""Event time of a feed read from several partitions (PartitionWatermarks), without Kafka.

Contacts are keyed by contact id, so every partition carries a share of every
city and category. Processing time is a number the test advances by hand.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from vocflow.schemas.derived.alert import VocAlert
from vocflow.streams.core.settings import Settings
from vocflow.streams.detect.detector import Observation, PartitionWatermarks, SurgeDetector
from vocflow.streams.worker import detector_service

pytestmark = pytest.mark.clock

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 14:00 in Asia/Shanghai
CITIES = ("杭州", "成都", "西安")


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def day(minutes: int = 130) -> list[Observation]:
    """Steady traffic per city, an outage in 杭州 at 70-74 and one in 成都 at 100-102.

    Returned in event-time order; contact i goes to partition i % 3.
    """
    out: list[Observation] = []
    for m in range(minutes):
        items: list[tuple[str, str, tuple[str, ...]]] = []
        for city in CITIES:
            items += [("other", city, ("话费",))] * 30 + [("fault", city, ("信号",))] * 2
        if 70 <= m < 75:
            items += [("fault", "杭州", ("断网",))] * 25
        if 100 <= m < 103:
            items += [("fault", "成都", ("断网",))] * 30
        for i, (category, city, keywords) in enumerate(items):
            out.append(
                Observation(
                    at=at(m + i / (len(items) + 1)),
                    keywords=list(keywords),
                    category=category,
                    city=city,
                    text=f"{city}{keywords[0]}",
                    department="network" if category == "fault" else "billing",
                )
            )
    return out


def replay_order(events: list[Observation]) -> list[tuple[int, Observation]]:
    """Interleave the partitions as a full-speed replay reads them.

    Each fetch hands over 30 minutes of partition 0, 10 of partition 1 and 2 of
    partition 2, so partition 0 runs far ahead and partition 2 falls two hours
    behind: globally the contacts are far out of event-time order.
    """
    queues: list[list[Observation]] = [events[p::3] for p in range(3)]
    fetch = [timedelta(minutes=n) for n in (30, 10, 2)]
    out: list[tuple[int, Observation]] = []
    while any(queues):
        for p, queue in enumerate(queues):
            if queue:
                until = queue[0].at + fetch[p]
                n = next((i for i, o in enumerate(queue) if o.at >= until), len(queue))
                out += [(p, o) for o in queue[:n]]
                del queue[:n]
    return out


def summary(alerts: list[VocAlert]) -> list[tuple[object, ...]]:
    """What a surge is, without `emitted_at` (when the minute closed) and the samples
    (the first texts to arrive), which depend on the reading order by design."""
    return sorted(
        (
            a.alert_id,
            a.sequence,
            a.dimension,
            a.key,
            a.window_start,
            a.window_end,
            a.observed,
            a.baseline,
            a.p_value,
            a.episode_observed,
            a.department,
        )
        for a in alerts
    )


def brief(alerts: list[VocAlert]) -> list[tuple[str, str, int, int, int]]:
    """(dimension, key, first minute, observed, window minutes) in time order."""
    minute = timedelta(minutes=1)
    return [
        (
            a.dimension,
            a.key,
            (a.window_start - T0) // minute,
            a.observed,
            (a.window_end - a.window_start) // minute,
        )
        for a in sorted(alerts, key=lambda a: (a.window_start, a.dimension, a.key, a.sequence))
    ]


def contact(minute: float, category: str = "other") -> Observation:
    return Observation(at(minute), [], category, None, "咨询", "billing")


def minute_of(m: int, fault: int) -> list[Observation]:
    cats = ["other"] * 95 + ["fault"] * fault
    return [contact(m + i / (len(cats) + 1), c) for i, c in enumerate(cats)]


# -------------------------------------------------------------- out of order


def test_partitions_read_out_of_order_find_the_surges_of_event_time_order() -> None:
    events = day()
    end = events[-1].at + timedelta(minutes=2)

    ordered = SurgeDetector()
    expected: list[VocAlert] = []
    for o in events:
        expected += ordered.observe(o)
    expected += ordered.flush(end)

    order = replay_order(events)
    # the replay really is out of order: partition 2 trails partition 0 by two hours
    lag, ahead = timedelta(0), T0
    for p, o in order:
        if p == 0:
            ahead = max(ahead, o.at)
        elif p == 2:
            lag = max(lag, ahead - o.at)
    assert lag // timedelta(minutes=1) == 121

    det = SurgeDetector()
    marks = PartitionWatermarks(idle_seconds=30)
    marks.assign([0, 1, 2], wall=0.0)
    got: list[VocAlert] = []
    for n, (partition, o) in enumerate(order):
        wall = n * 0.001  # a full-speed replay: 1,000 contacts a second
        det.add(o)
        marks.observe(partition, o.at, wall)
        now = marks.watermark(wall)
        if now is not None:
            got += det.flush(now)
    got += det.flush(end)

    assert det.stats["late_dropped"] == ordered.stats["late_dropped"] == 0
    assert det.stats["observed"] == ordered.stats["observed"] == len(events)
    assert det.stats["minutes_closed"] == ordered.stats["minutes_closed"]
    assert summary(got) == summary(expected)
    # and those are the two outages: key, first minute, count, 1-minute window
    assert brief(got) == [
        ("category", "fault", 70, 31, 1),
        ("category_city", "fault|杭州", 70, 27, 1),
        ("keyword", "断网", 70, 25, 1),
        ("category", "fault", 100, 36, 1),
        ("category_city", "fault|成都", 100, 32, 1),
        ("keyword", "断网", 100, 30, 1),
    ]


def test_one_watermark_over_the_same_replay_drops_the_slow_partitions() -> None:
    """What the per-partition watermark fixes: `observe` alone, fed the replay order."""
    events = day()
    det = SurgeDetector()
    alerts: list[VocAlert] = []
    for _, o in replay_order(events):
        alerts += det.observe(o)
    alerts += det.flush(events[-1].at + timedelta(minutes=2))
    assert (len(events), det.stats["late_dropped"]) == (12_695, 8_399)
    # two thirds of the contacts are lost: the counts are wrong, some only show in longer windows
    assert brief(alerts) == [
        ("category", "fault", 68, 35, 5),
        ("category_city", "fault|杭州", 70, 10, 1),
        ("keyword", "断网", 70, 17, 2),
        ("category", "fault", 98, 40, 5),
        ("category_city", "fault|成都", 100, 10, 1),
        ("keyword", "断网", 100, 10, 1),
    ]


# ---------------------------------------------------------------------- idle


def test_idle_partition_stops_holding_event_time_after_the_timeout() -> None:
    marks = PartitionWatermarks(idle_seconds=30)
    marks.assign([0, 1, 2], wall=0.0)
    det = SurgeDetector()

    def deliver(partition: int, minute: float, wall: float) -> datetime | None:
        det.add(contact(minute))
        marks.observe(partition, at(minute), wall)
        now = marks.watermark(wall)
        if now is not None:
            det.flush(now)
        return now

    assert deliver(2, 0.5, wall=0.0) is None  # partitions 0 and 1 have not delivered yet
    for m in range(10):
        deliver(0, m + 0.2, wall=m)
        deliver(1, m + 0.1, wall=m + 0.5)
    # partition 2 has been quiet for 9.5 s: it still holds event time at 00:30
    assert marks.watermark(9.5) == at(0.5)
    assert det.stats["minutes_closed"] == 0
    assert deliver(0, 12, wall=29.9) == at(0.5)
    # 30 s without a record: partition 2 is idle, and partition 1 (now 11:00) is the slowest
    assert deliver(1, 11, wall=30.0) == at(11)
    assert det.stats["minutes_closed"] == 10  # minutes 0..9 (10:00 + 30 s grace <= 11:00)
    # partition 2 delivers again, with an old contact: event time does not go back
    assert deliver(2, 1, wall=31.0) == at(11)
    assert det.stats["late_dropped"] == 1
    # active again, it holds event time once more: 13:00 on partitions 0 and 1, 12:12 on 2
    deliver(2, 12.2, wall=32.0)
    deliver(0, 13, wall=33.0)
    assert deliver(1, 13, wall=33.0) == at(12.2)


def test_partition_behind_its_high_water_mark_is_never_idle() -> None:
    """Slow, not idle: its records are on the broker, so leaving it out would drop them."""
    marks = PartitionWatermarks(idle_seconds=30)
    marks.observe(0, at(10), wall=0.0)
    marks.observe(1, at(2), wall=0.0)
    marks.observe(0, at(20), wall=100.0)
    assert marks.watermark(100.0, behind={1}) == at(2)
    # nor does it move with the clock: its next records may be far older than that
    assert marks.watermark(100.0, behind={1}, moving=True) == at(2)
    # caught up (no longer behind) and quiet for 100 s: idle
    assert marks.watermark(100.0) == at(20)


def test_partition_that_never_delivered_holds_event_time_until_idle() -> None:
    marks = PartitionWatermarks(idle_seconds=30)
    marks.assign([0, 1], wall=0.0)
    marks.observe(0, at(5), wall=1.0)
    assert marks.watermark(29.9) is None
    assert marks.watermark(30.0) == at(5)


def test_revoked_partition_no_longer_holds_event_time() -> None:
    marks = PartitionWatermarks(idle_seconds=30)
    marks.observe(0, at(5), wall=0.0)
    marks.observe(1, at(1), wall=0.0)
    assert marks.watermark(0.0) == at(1)
    marks.assign([0], wall=1.0)
    assert marks.watermark(1.0) == at(5)


def test_quiet_partitions_move_with_processing_time_on_the_timer() -> None:
    live = PartitionWatermarks(idle_seconds=30)
    live.observe(0, at(10), wall=100.0)
    live.observe(1, at(10) - timedelta(seconds=2), wall=98.0)
    # live, each partition's event time keeps pace with the clock while it is quiet
    assert live.watermark(105.0, moving=True) == at(10) + timedelta(seconds=5)
    # a quiet spell: both idle, so both count again, each moved on since its mark rose
    live.observe(1, at(10) - timedelta(seconds=1), wall=103.0)
    assert live.watermark(200.0, moving=True) == at(10) + timedelta(seconds=96)
    assert live.watermark(200.0) == at(10) + timedelta(seconds=96)  # never goes back
    with pytest.raises(ValueError):
        live.observe(0, datetime(2026, 11, 23, 7, 0), wall=201.0)  # naive time
    with pytest.raises(ValueError):
        PartitionWatermarks(idle_seconds=0)


# ------------------------------------------------------------ one partition


def test_one_partition_behaves_exactly_as_observe() -> None:
    """The live path, unchanged: same alerts (emitted_at and samples too), same drops.

    Wall time follows arrival (= event time, live), so out-of-order and late
    contacts arrive with the clock moving on; then a quiet spell on the timer.
    """
    arrivals: list[Observation] = []
    for m in range(100):
        arrivals += minute_of(m, fault=5)
    arrivals += minute_of(100, fault=25)
    arrivals.append(contact(101 + 25 / 60))  # minute 100 is still open (grace)
    arrivals += [contact(100.9 + i / 1000, "fault") for i in range(10)]  # late, within grace
    arrivals.append(contact(101.6))  # closes minute 100
    arrivals.append(contact(100.99, "fault"))  # too late: dropped
    arrivals += minute_of(102, fault=60)

    plain = SurgeDetector()
    expected: list[VocAlert] = []
    for o in arrivals:
        expected += plain.observe(o)

    det = SurgeDetector()
    marks = PartitionWatermarks(idle_seconds=30)
    got: list[VocAlert] = []
    wall = 0.0
    for o in arrivals:
        wall = max(wall, (o.at - T0).total_seconds())
        det.add(o)
        marks.observe(0, o.at, wall)
        now = marks.watermark(wall)
        assert now is not None
        got += det.flush(now)
    assert [a.model_dump() for a in got] == [a.model_dump() for a in expected]
    assert det.stats == plain.stats
    assert plain.stats["late_dropped"] == 1

    # 90 s without traffic: the timer moves event time as the single watermark did
    now = marks.watermark(wall + 90, moving=True)
    assert now == arrivals[-1].at + timedelta(seconds=90)
    tick, plain_tick = det.flush(now), plain.flush(now)
    assert [(a.key, a.observed) for a in tick] == [("fault", 60)]
    assert [a.model_dump() for a in tick] == [a.model_dump() for a in plain_tick]


# ------------------------------------------------------------ service wiring


class FakeConsumer:
    """What `DetectorService._take` asks of aiokafka: the assignment, high-water, position."""

    def __init__(self, partitions: int) -> None:
        self.tps = [TopicPartition("contacts.routed", p) for p in range(partitions)]
        self.highwaters: dict[TopicPartition, int | None] = dict.fromkeys(self.tps)
        self.positions: dict[TopicPartition, int] = dict.fromkeys(self.tps, 0)

    def assignment(self) -> set[TopicPartition]:
        return set(self.tps)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


class Clock:
    now = 0.0

    @classmethod
    def monotonic(cls) -> float:
        return cls.now


def envelope(minute: float) -> SimpleNamespace:
    """A routed record as the consumer hands it over (only `value` is read)."""
    occurred = at(minute).isoformat()
    env = {
        "envelope_id": f"e{minute}",
        "contact_id": f"c{minute}",
        "channel": "phone",
        "event_type": "offered",
        "occurred_at": occurred,
        "routed_at": occurred,
        "department": "billing",
        "text": "咨询话费",
        "language": "zh",
        "keywords": ["话费"],
        "sentiment": 0.0,
        "customer_city": "杭州",
        "customer_known": True,
        "repeat_contact": False,
        "tags": {
            "business_type": {"value": "mobile", "rule_id": "r1"},
            "support_system": {"value": "none", "rule_id": "default"},
            "bearer_network": {"value": "mobile", "rule_id": "r1"},
            "department": {"value": "billing", "rule_id": "r1"},
            "category": {"value": "billing", "rule_id": "r1"},
            "urgency": "P3",
            "urgency_rule_id": "r1",
        },
        "reason": "r",
        "sla_due_at": occurred,
        "rules_version": "v1",
    }
    return SimpleNamespace(value=json.dumps(env).encode())


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append(value)


@pytest.mark.parametrize(
    ("highwater", "late_dropped"),
    [
        (12, 0),  # behind: slow, so they hold event time however long it takes
        (None, 20),  # not known to be behind: idle after 30 s, their minutes 0..4 come too late
    ],
)
def test_service_holds_event_time_for_partitions_behind_their_high_water_mark(
    monkeypatch: pytest.MonkeyPatch, highwater: int | None, late_dropped: int
) -> None:
    monkeypatch.setattr(detector_service, "time", Clock)
    Clock.now = 0.0
    service = detector_service.DetectorService(Settings(topic_prefix="t."), partition_idle_s=30)
    consumer = FakeConsumer(3)
    service._consumer = consumer  # type: ignore[assignment]
    service._producer = FakeProducer()  # type: ignore[assignment]
    tp0, tp1, tp2 = consumer.tps
    minutes = [m / 2 for m in range(12)]  # 0:00 .. 5:30, one contact every 30 s

    async def run() -> None:
        # partition 0 delivers 6 minutes; 1 and 2 have theirs on the broker, not fetched yet
        consumer.highwaters.update({tp0: 12, tp1: highwater, tp2: highwater})
        consumer.positions[tp0] = 12
        await service._take({tp0: [envelope(m) for m in minutes]})
        assert service.detector.stats["minutes_closed"] == 0
        # a minute later partition 0 has one more contact; 1 and 2 are still not fetched
        Clock.now = 60.0
        consumer.highwaters[tp0] = consumer.positions[tp0] = 13
        await service._take({tp0: [envelope(5.75)]})
        assert service.detector.stats["minutes_closed"] == (0 if highwater else 5)
        # then they deliver
        consumer.positions.update({tp1: 12, tp2: 12})
        await service._take(
            {tp1: [envelope(m) for m in minutes], tp2: [envelope(m) for m in minutes]}
        )
        assert service._behind == set()
        assert service.detector.stats["late_dropped"] == late_dropped
        assert service.detector.stats["observed"] == 37 - late_dropped
        assert service.detector.stats["minutes_closed"] == 5  # 0..4 (5:00 + 30 s grace)

    asyncio.run(run())
