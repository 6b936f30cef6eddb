"""Hand-checked fold cases: duplicates, out-of-order and late events, short abandons."""

from __future__ import annotations

import json

from tests.unit.kpi.helpers import ev, ms
from vocflow.streams.kpi import ContactFact, FoldConfig, annotate, fold, fold_all

LIFE = [
    ev("e01", "c1", "offered", 0, queue="billing", customer="u1"),
    ev("e02", "c1", "queued", 1, queue="billing"),
    ev("e03", "c1", "answered", 13, queue="billing", agent="a1", wait=12.5),
    ev("e04", "c1", "held", 60, queue="billing", agent="a1", hold=30),
    ev("e05", "c1", "held", 200, queue="billing", agent="a1", hold=15.25),
    ev("e06", "c1", "transferred", 300, queue="billing", agent="a1", to="tech"),
    ev("e07", "c1", "answered", 310, queue="tech", agent="a2", wait=10),
    ev("e08", "c1", "ended", 900, agent="a2", talk=700),
    ev("e09", "c1", "wrapup_done", 960, agent="a2", acw=60),
    ev("e10", "c1", "survey", 3 * 3600, channel="survey", queue="survey_ivr", csat=5, nps=9),
    ev("e11", "c1", "survey", 5 * 3600, channel="survey", fcr=True),
]


def strip(fact: ContactFact) -> dict[str, object]:
    d = fact.to_dict()
    del d["version"], d["seen"]
    return d


def test_full_lifecycle_in_order() -> None:
    fact = fold_all(LIFE)["c1"]
    assert fact.channel == "phone"
    assert fact.customer_id == "u1"
    assert (fact.first_queue, fact.queue, fact.agent_id) == ("billing", "tech", "a2")
    assert fact.offered_ms == ms(0)
    assert fact.answered_ms == ms(13) and fact.wait_ms == 12_500  # first answer, not the re-answer
    assert (fact.hold_ms, fact.holds, fact.transfers) == (45_250, 2, 1)
    assert (fact.talk_ms, fact.after_work_ms, fact.handle_ms) == (700_000, 60_000, 805_250)
    assert (fact.csat, fact.nps, fact.fcr, fact.survey_ms) == (5, 9, True, ms(5 * 3600))
    assert fact.left_queue_ms == ms(13)
    assert fact.is_answered and not fact.is_abandoned and not fact.short_abandon
    assert fact.version == 11 and len(fact.seen) == 11
    assert fact.last_activity_ms == ms(5 * 3600)


def test_reversed_and_duplicated_gives_the_same_fact() -> None:
    stream = list(reversed(LIFE)) + LIFE[3:6] + LIFE[:2]
    assert strip(fold_all(stream)["c1"]) == strip(fold_all(LIFE)["c1"])


def test_duplicate_is_ignored_and_input_never_mutated() -> None:
    fact = fold_all(LIFE[:4])["c1"]
    before = fact.to_dict()
    assert fold(fact, LIFE[3]) is None  # the same held event again: hold not doubled
    after = fold(fact, LIFE[4])
    assert after is not None and after.hold_ms == 45_250 and after.version == fact.version + 1
    assert fact.to_dict() == before


def test_ended_before_answered_and_lost_offered() -> None:
    stream = [
        ev("x3", "c2", "wrapup_done", 400, agent="a1", acw=20),
        ev("x2", "c2", "ended", 380, agent="a1", talk=300),
        ev("x1", "c2", "answered", 20, queue="q", agent="a1", wait=8),
    ]
    facts = fold_all(stream)["c2"]
    assert facts.offered_ms == ms(12)  # answered 20 s - wait 8 s: the lost offered
    assert facts.wait_ms == 8000 and facts.handle_ms == 320_000
    assert facts.first_queue == "q"
    # before the answer arrived, the ended event already took it out of the queue
    partial = fold_all(stream[:2])["c2"]
    assert partial.left_queue_ms == ms(380) and partial.offered_ms is None


def test_later_ended_is_a_correction() -> None:
    first = ev("y1", "c3", "ended", 100, talk=90)
    fix = ev("y2", "c3", "ended", 101, talk=95.5)
    assert fold_all([fix, first])["c3"].talk_ms == 95_500
    assert fold_all([first, fix])["c3"].talk_ms == 95_500
    late = fold(fold_all([fix])["c3"], first)
    # the older end is still the contact's earliest event, but not its talk time
    assert late is not None and late.first_ms == ms(100) and late.talk_ms == 95_500


def test_short_abandon_threshold_boundary_and_per_queue() -> None:
    def abandon(wait: float, queue: str | None = "q") -> ContactFact:
        return fold_all([ev("a", "c", "abandoned", 10, queue=queue, wait=wait)], config)["c"]

    config = FoldConfig(short_abandon_ms_by_queue={"tech_q": 3000})
    assert abandon(4.999).short_abandon
    assert not abandon(5).short_abandon  # "within 5 s" = wait < 5 s
    assert not abandon(4, "tech_q").short_abandon
    assert abandon(2.999, "tech_q").short_abandon
    # abandon without a queue: the first queue's threshold, re-evaluated when it arrives
    lone = abandon(4, None)
    assert lone.short_abandon  # default 5 s while the queue is unknown
    late = fold(lone, ev("o", "c", "offered", 6, queue="tech_q"), config)
    assert late is not None and not late.short_abandon


def test_answer_wins_over_abandon_of_a_later_leg() -> None:
    fact = fold_all(
        [
            ev("b2", "c", "abandoned", 400, queue="tech", wait=2),
            ev("b1", "c", "answered", 10, queue="q", wait=10),
        ]
    )["c"]
    assert fact.is_answered and not fact.is_abandoned and not fact.short_abandon
    timed = fold_all([ev("t", "d", "timed_out", 300, queue="q", wait=300)])["d"]
    assert timed.is_timed_out and timed.offered_ms == ms(0)


def test_survey_first_then_contact_and_partial_second_survey() -> None:
    survey = ev("s1", "c", "survey", 7200, channel="survey", csat=2, nps=3)
    fact = fold_all([survey])["c"]
    assert fact.channel == "survey" and fact.first_ms is None and fact.arrival_ms is None
    fact = fold(fact, ev("o", "c", "offered", 0, channel="chat", queue="q"))
    assert fact is not None and fact.channel == "chat" and fact.queue == "q"
    fact = fold(fact, ev("s2", "c", "survey", 9000, channel="survey", nps=10))
    assert fact is not None and (fact.csat, fact.nps, fact.fcr) == (2, 10, None)
    older = fold(fact, ev("s0", "c", "survey", 3600, channel="survey", csat=5, fcr=False))
    assert older is not None and (older.csat, older.nps, older.fcr) == (2, 10, False)
    assert older.survey_ms == ms(9000)


def test_message_is_not_material_unless_it_is_the_first_word() -> None:
    fact = fold_all([ev("m1", "c", "message", 5, channel="chat", queue="q")])["c"]
    assert fact.first_ms == ms(5) and fact.queue is None and fact.first_queue == "q"
    assert fold(fact, ev("m2", "c", "message", 50, channel="chat", queue="q", agent="a")) is None


def test_async_lifecycle_keeps_first_response_and_first_resolution() -> None:
    stream = [
        ev("r3", "m", "resolved", 9000, channel="email", queue="mail"),
        ev("r1", "m", "received", 0, channel="email", queue="mail"),
        ev("r2", "m", "first_response", 600, channel="email", queue="mail", agent="a9"),
        ev(
            "r4", "m", "resolved", 99_000, channel="email", queue="mail"
        ),  # reopened, resolved again
    ]
    fact = fold_all(stream)["m"]
    assert (fact.received_ms, fact.first_response_ms, fact.resolved_ms) == (
        ms(0),
        ms(600),
        ms(9000),
    )
    assert not fact.offered and fact.arrival_ms == ms(0)


def test_annotate_and_serialisation_round_trip() -> None:
    fact = fold_all(LIFE)["c1"]
    tagged = annotate(fact, department="complaints", category="bill", sentiment=-0.8, repeat=True)
    assert tagged is not None and tagged.version == fact.version + 1
    assert annotate(tagged, department="complaints") is None
    assert fact.department is None
    text = json.dumps(tagged.to_dict())
    assert ContactFact.from_dict(json.loads(text)) == tagged


def test_seen_is_bounded() -> None:
    config = FoldConfig(max_seen=3)
    holds = [ev(f"h{i}", "c", "held", i, hold=1) for i in range(5)]
    fact = fold_all(holds, config)["c"]
    assert fact.seen == ("h2", "h3", "h4") and fact.hold_ms == 5000
    assert fold(fact, holds[4], config) is None
