"""Hand-computed KPI values on a small queue; every number below is worked out in the comments."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from tests.unit.kpi.helpers import T0, ev, ms
from vocflow.streams.kpi import kpis as K
from vocflow.streams.kpi.fold import annotate, fold_all
from vocflow.streams.kpi.intervals import bucket, rolling, today
from vocflow.streams.kpi.models import HOUR_MS, ContactFact, Interval, Kpi, to_ms

pytestmark = pytest.mark.clock

Q = "q1"
QUARTER = Interval(ms(0), ms(900), "15m")  # 09:00-09:15


def _events() -> list:  # type: ignore[type-arg]
    e = ev
    return [
        # c1 answered after 10 s; one hold; ended 09:05, wrap-up 30 s; surveys later
        e("1a", "c1", "offered", 0, queue=Q, customer="u1"),
        e("1b", "c1", "answered", 10, queue=Q, agent="a1", wait=10),
        e("1c", "c1", "held", 50, queue=Q, agent="a1", hold=20),
        e("1d", "c1", "ended", 300, agent="a1", talk=100),
        e("1e", "c1", "wrapup_done", 330, agent="a1", acw=30),
        e("1f", "c1", "survey", 14 * 3600, channel="survey", csat=5, nps=10, fcr=True),
        # c2 answered at exactly T = 20 s (within), transferred, ended 09:10 without wrap-up
        e("2a", "c2", "offered", 60, queue=Q, customer="u2"),
        e("2b", "c2", "answered", 80, queue=Q, agent="a2", wait=20),
        e("2c", "c2", "transferred", 100, queue=Q, agent="a2", to="q2"),
        e("2d", "c2", "ended", 600, agent="a3", talk=200),
        e("2e", "c2", "survey", 15 * 3600, channel="survey", csat=4, nps=8),
        # c3 answered 1 ms after T; ends 09:20 (next interval)
        e("3a", "c3", "offered", 120, queue=Q),
        e("3b", "c3", "answered", 140.001, queue=Q, agent="a1", wait=20.001),
        e("3c", "c3", "ended", 1200, agent="a1", talk=60),
        e("3d", "c3", "survey", 16 * 3600, channel="survey", csat=3, nps=6),  # 01:00 next day
        # c4 short abandon (3 s); c5 abandon 15 s (not short, not after T); c6 abandon 45 s
        e("4a", "c4", "offered", 180, queue=Q),
        e("4b", "c4", "abandoned", 183, queue=Q, wait=3),
        e("5a", "c5", "offered", 240, queue=Q, customer="u1"),
        e("5b", "c5", "abandoned", 255, queue=Q, wait=15),
        e("6a", "c6", "offered", 300, queue=Q, customer="u2"),
        e("6b", "c6", "abandoned", 345, queue=Q, wait=45),
        # c7 timed out after 300 s; c8 still waiting; c9 offered 1 ms before the end
        e("7a", "c7", "offered", 360, queue=Q),
        e("7b", "c7", "timed_out", 660, queue=Q, wait=300),
        e("8a", "c8", "offered", 420, queue=Q),
        e("9a", "c9", "offered", 899.999, queue=Q),
        e("9b", "c9", "answered", 904.999, queue=Q, agent="a2", wait=5),
        e("9c", "c9", "survey", 10 * 3600, channel="survey", csat=1, nps=0, fcr=False),
        # c10 offered exactly at 09:15: the next interval (half-open)
        e("10a", "c10", "offered", 900, queue=Q),
        e("10b", "c10", "answered", 901, queue=Q, wait=1),
        # c11: a queue whose only contact is a short abandon
        e("11a", "c11", "offered", 30, queue="q_short"),
        e("11b", "c11", "abandoned", 32, queue="q_short", wait=2),
        # e1/e2: e-mails
        e("m1", "e1", "received", 0, channel="email", queue="mail"),
        e("m2", "e1", "first_response", 4 * 3600, channel="email", queue="mail"),
        e("m3", "e1", "resolved", 24 * 3600 + 0.001, channel="email", queue="mail"),
        e("n1", "e2", "received", 600, channel="email", queue="mail"),
    ]


TAGS = {
    "c1": {"category": "bill", "department": "billing"},
    "c2": {"category": "bill", "department": "billing"},
    "c5": {"category": "bill", "department": "billing"},  # u1 again, 240 s after c1
    "c6": {"category": "signal", "department": "complaints"},  # u2, other category
}


@pytest.fixture(scope="module")
def facts() -> list[ContactFact]:
    folded = fold_all(_events())
    for cid, tags in TAGS.items():
        folded[cid] = annotate(folded[cid], **tags) or folded[cid]
    return list(folded.values())


def v(result: dict[str, Kpi], group: str = K.ALL) -> tuple[Fraction | None, int, int]:
    k = result[group]
    return k.value, k.numerator, k.denominator


def test_service_level(facts: list[ContactFact]) -> None:
    by_q = K.service_level(facts, QUARTER, 20, by="queue")
    # within 20 s: c1, c2 (exactly 20), c9; denominator: answered c1 c2 c3 c9 + c6 (45 s > 20)
    assert v(by_q, Q) == (Fraction(3, 5), 3, 5)
    # the queue with only a short abandon has nothing to measure: None, not 0 or 100 %
    assert v(by_q, "q_short") == (None, 0, 0)
    # T = 3 s (below the 5 s short-abandon limit): c4 (3 s, short) still excluded,
    # c5 (15 s) and c6 (45 s) counted; nobody answered within 3 s
    assert v(K.service_level(facts, QUARTER, 3, by="queue"), Q) == (Fraction(0), 0, 6)


def test_asa_abandonment_volume(facts: list[ContactFact]) -> None:
    # (10 + 20 + 20.001 + 5) s / 4
    assert v(K.asa(facts, QUARTER, by="queue"), Q) == (Fraction(55_001, 4000), 55_001, 4)
    # offered excl. short: c1 c2 c3 c5 c6 c7 c8 c9 = 8; abandoned c5 c6
    assert v(K.abandonment_rate(facts, QUARTER, by="queue"), Q) == (Fraction(1, 4), 2, 8)
    assert v(K.abandonment_rate(facts, QUARTER, by="queue"), "q_short") == (None, 0, 0)
    # c1..c9 + c11 + both e-mails (e2 arrives at 09:10)
    assert v(K.volume(facts, QUARTER)) == (Fraction(12), 12, 1)
    assert v(K.offered(facts, QUARTER, by="queue"), Q) == (Fraction(9), 9, 1)
    assert v(K.volume(facts, QUARTER, by="channel"), "email") == (Fraction(2), 2, 1)


def test_aht_and_transfer_rate(facts: list[ContactFact]) -> None:
    # ended in 09:00-09:15: c1 (100 + 20 + 30) and c2 (200, no wrap-up yet); c3 ends 09:20
    assert v(K.aht(facts, QUARTER)) == (Fraction(175), 350_000, 2)
    assert v(K.transfer_rate(facts, QUARTER)) == (Fraction(1, 2), 1, 2)
    # per agent = the last agent: c2 was transferred to a3
    assert set(K.aht(facts, QUARTER, by="agent")) == {"a1", "a3"}


def test_surveys_count_on_the_day_they_are_answered(facts: list[ContactFact]) -> None:
    day = today(T0)
    # answered today (Shanghai): c9 at 19:00 (csat 1, nps 0, fcr False) and c1 at 23:00
    # (csat 5, nps 10, fcr True); c2 (24:00) and c3 (01:00) count tomorrow
    assert v(K.csat(facts, day)) == (Fraction(1, 2), 1, 2)
    assert v(K.nps(facts, day)) == (Fraction(0), 0, 2)  # one promoter, one detractor
    assert v(K.fcr_survey(facts, day)) == (Fraction(1, 2), 1, 2)
    two_days = Interval(day.start_ms, day.end_ms + 24 * HOUR_MS)
    # + c2 (4, nps 8 passive) + c3 (3, nps 6 detractor): csat 2/4, nps (1 - 2) / 4 = -25
    assert v(K.csat(facts, two_days)) == (Fraction(1, 2), 2, 4)
    assert v(K.nps(facts, two_days)) == (Fraction(-25), -1, 4)


def test_fcr_repeat_and_complaints(facts: list[ContactFact]) -> None:
    # judged (customer and category known): c1 c2 c5 c6; c1 is followed by c5 (same u1, bill)
    assert v(K.fcr(facts, QUARTER)) == (Fraction(3, 4), 3, 4)
    assert v(K.repeat_contact_rate(facts, QUARTER)) == (Fraction(1, 4), 1, 4)
    # with a 60 s window, c5 (240 s later) is no repeat of c1
    assert v(K.fcr(facts, QUARTER, window_ms=60_000)) == (Fraction(1), 4, 4)
    assert v(K.fcr(facts, QUARTER, by="agent"), "a1") == (Fraction(0), 0, 1)
    # c6 went to complaints; 12 contacts began in the quarter
    assert v(K.complaint_rate(facts, QUARTER)) == (Fraction(1, 12), 1, 12)
    assert v(K.complaint_rate(facts, QUARTER, by="department"), K.UNKNOWN) == (Fraction(0), 0, 8)


def test_queue_depth_and_oldest_waiting(facts: list[ContactFact]) -> None:
    # 09:07: c7 (since 09:06) and c8 (since 09:07, offered exactly now) wait
    assert v(K.queue_depth(facts, ms(420)), Q) == (Fraction(2), 2, 1)
    assert v(K.oldest_waiting(facts, ms(420)), Q) == (Fraction(60), 60_000, 1)
    # 09:11:40: c7 timed out at 09:11; c8 waits 280 s
    assert v(K.oldest_waiting(facts, ms(700)), Q) == (Fraction(280), 280_000, 1)
    assert v(K.queue_depth(facts, ms(700), by=None)) == (Fraction(1), 1, 1)
    # five hours later c8 is stale (exit event lost) unless stale filtering is off
    assert K.queue_depth(facts, ms(5 * 3600)) == {}
    assert v(K.queue_depth(facts, ms(5 * 3600), stale_after_ms=None), Q)[1] == 1


def test_async_backlog_and_sla(facts: list[ContactFact]) -> None:
    hour = Interval(ms(0), ms(3600))
    assert v(K.backlog(facts, ms(3 * 3600)), "mail") == (Fraction(2), 2, 1)
    assert v(K.backlog(facts, ms(25 * 3600)), "mail") == (Fraction(1), 1, 1)
    # at 13:10: e1 responded after exactly 4 h (met); e2 not yet, due 13:10 -> undecided
    assert v(K.first_response_breaches(facts, hour, ms(4 * 3600 + 600)), "mail") == (0, 0, 1)
    # 1 ms later e2 is overdue: a breach while still open
    late = K.first_response_breaches(facts, hour, ms(4 * 3600 + 600.001))
    assert v(late, "mail") == (Fraction(1, 2), 1, 2)
    # e1 resolved 24 h + 1 ms after receipt: a resolution breach; e2 open and overdue too
    assert v(K.resolution_breaches(facts, hour, ms(30 * 3600)), "mail") == (Fraction(1), 2, 2)


def test_bottom_agents() -> None:
    def aht(sec: int, n: int = 1) -> Kpi:
        return Kpi.of("aht", "seconds", sec * 1000 * n, n)

    by_agent = {
        "a1": aht(300),
        "a2": aht(500),
        "a3": aht(200),
        "a4": aht(500),
        "a5": aht(100),
        "a6": aht(400),
        "a7": Kpi.of("aht", "seconds", 0, 0),  # nothing handled: not ranked
        K.UNKNOWN: aht(900),
    }
    # 6 ranked -> ceil(1.2) = 2; a2 and a4 tie at 500 s, both worst (lower AHT is better)
    assert K.bottom_agents(by_agent) == ["a2", "a4"]
    csat = {
        a: Kpi.of("csat", "ratio", n, 10) for a, n in zip("pqrstuvwxyz", range(11), strict=True)
    }
    assert K.bottom_agents(csat) == ["p", "q", "r"]  # 11 ranked -> 3, lowest first
    assert K.bottom_agents(csat, min_denominator=11) == []


def test_intervals() -> None:
    now = datetime(2025, 3, 10, 9, 7, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert bucket(now) == Interval(ms(0), ms(900), "15m")
    assert rolling(now) == Interval(ms(420 - 3540), ms(480), "rolling_60m")
    day = today(now)
    assert (day.start_ms, day.end_ms) == (ms(-9 * 3600), ms(15 * 3600))
    # 23:30 UTC on the 9th is already the 10th in Shanghai
    utc_late = datetime.fromisoformat("2025-03-09T23:30:00+00:00")
    assert today(utc_late) == day
    assert to_ms(now) in day and day.end_ms not in day
    with pytest.raises(ValueError):
        bucket(now, minutes=7)


def test_time_in_the_ivr_before_queue_entry_is_not_waiting() -> None:
    # offered at 09:00 (IVR starts), queued at 09:00:30, answered after 20 s in queue
    ivr = fold_all(
        [
            ev("i1", "ivr", "offered", 0, queue="q"),
            ev("i2", "ivr", "queued", 30, queue="q"),
            ev("i3", "ivr", "answered", 50, queue="q", agent="a", wait=20),
        ]
    )["ivr"]
    assert (ivr.offered_ms, ivr.wait_start_ms) == (ms(0), ms(30))
    assert K.queue_depth([ivr], ms(20)) == {}
    assert v(K.oldest_waiting([ivr], ms(45)), "q") == (Fraction(15), 15_000, 1)
    assert K.queue_depth([ivr], ms(50)) == {}
    # a lost `queued` event: the answer's wait tells queue entry
    lost = fold_all(
        [
            ev("j1", "lost", "offered", 0, queue="q"),
            ev("j3", "lost", "answered", 50, queue="q", agent="a", wait=20),
        ]
    )["lost"]
    assert lost.wait_start_ms == ms(30)
    # no queue event at all: waiting counts from offered
    only = fold_all([ev("k1", "only", "offered", 0, queue="q")])["only"]
    assert v(K.oldest_waiting([only], ms(45)), "q") == (Fraction(45), 45_000, 1)
