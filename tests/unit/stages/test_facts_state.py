"""FactsState: the journal rebuilds the state exactly; eviction by event time only."""

from __future__ import annotations

import orjson

from vocflow.streams.kpi.models import HOUR_MS, ContactFact
from vocflow.streams.stages.facts_state import (
    COLD_AFTER_MS,
    EVICT_EVERY_MS,
    FactsState,
    freeze,
    thaw,
)

T0 = 1_795_392_000_000  # 2026-11-23 00:00 +08:00


def fact(contact: str, at_ms: int, version: int = 1) -> ContactFact:
    f = ContactFact(contact)
    f.version = version
    f.first_ms = f.offered_ms = at_ms
    return f


def test_the_journal_rebuilds_the_same_state() -> None:
    state = FactsState(ttl_ms=72 * HOUR_MS)
    state.put(fact("a", T0))
    state.put(fact("b", T0 + 1000))
    state.put(fact("a", T0 + 2000, version=2))
    journal = state.take_journal()
    assert [k for k, _ in journal] == [b"a", b"b"]  # one record per changed contact
    assert orjson.loads(journal[0][1])["version"] == 2  # type: ignore[arg-type]
    assert state.take_journal() == []
    restored = FactsState(ttl_ms=72 * HOUR_MS)
    restored.restore(journal)
    assert restored.facts == state.facts
    assert restored.newest_ms == T0 + 2000


def test_idle_facts_are_forgotten_by_event_time_with_tombstones() -> None:
    state = FactsState(ttl_ms=1 * HOUR_MS)
    state.put(fact("old", T0))
    state.observe(T0)
    state.take_journal()
    state.observe(T0 + HOUR_MS)  # idle exactly the TTL: kept
    assert "old" in state.facts
    state.observe(T0 + HOUR_MS + EVICT_EVERY_MS)
    assert state.facts == {} and state.evicted == 1
    assert state.take_journal() == [(b"old", None)]
    restored = FactsState(ttl_ms=HOUR_MS)
    restored.restore([(b"old", orjson.dumps(fact("old", T0).to_dict())), (b"old", None)])
    assert restored.facts == {}


def test_the_scan_waits_until_event_time_moved_on() -> None:
    state = FactsState(ttl_ms=HOUR_MS)
    state.observe(T0)
    state.put(fact("old", T0 - 2 * HOUR_MS))
    state.observe(T0 + EVICT_EVERY_MS - 1)  # too soon after the last scan
    assert "old" in state.facts
    state.observe(T0 + EVICT_EVERY_MS)
    assert "old" not in state.facts


def test_a_fact_active_again_is_evicted_by_its_latest_activity_only() -> None:
    """Eviction pops the idlest first: an older write of a fact active since does
    not evict it, and superseded writes do not pile up without bound."""
    state = FactsState(ttl_ms=1 * HOUR_MS)
    state.put(fact("a", T0))
    state.put(fact("b", T0))
    state.put(fact("a", T0 + HOUR_MS, version=2))  # active again an hour later
    state.observe(T0)
    state.take_journal()
    state.observe(T0 + HOUR_MS + EVICT_EVERY_MS)
    assert set(state.facts) == {"a"} and state.evicted == 1
    assert state.take_journal() == [(b"b", None)]
    for n in range(3000):  # one busy contact written again and again
        state.put(fact("a", T0 + HOUR_MS + n, version=3 + n))
    assert len(state._heap) <= 2 * len(state.facts) + 1024
    state.observe(T0 + 3 * HOUR_MS + 2 * EVICT_EVERY_MS)
    assert state.facts == {} and state.evicted == 2


def test_idle_facts_are_held_cold_and_come_back_equal() -> None:
    state = FactsState(ttl_ms=72 * HOUR_MS)
    a = fact("a", T0)
    a.surveys = ((T0 + 5, "a-9", 5, 9, None),)
    a.seen = ("a-1", "a-9")
    a.sentiment = -0.4375
    a.answered = (T0 + 2, "a-3", 1234)
    state.put(a)
    state.observe(T0)
    assert state.facts["a"] is a  # recent: an object
    state.put(fact("b", T0 + COLD_AFTER_MS + EVICT_EVERY_MS))
    state.observe(T0 + COLD_AFTER_MS + EVICT_EVERY_MS)
    cold = state.facts["a"]
    assert isinstance(cold, bytes) and len(cold) < 200
    assert state.get("a") == a and thaw(freeze(a, T0 + 5)) == a
    assert isinstance(state.facts["b"], ContactFact)
    restored = FactsState(ttl_ms=72 * HOUR_MS)
    restored.restore(state.take_journal())
    assert restored.get("a") == a and isinstance(restored.facts["a"], bytes)
    # the TTL still applies to a cold fact
    state.observe(T0 + 72 * HOUR_MS + EVICT_EVERY_MS + 1)
    assert "a" not in state.facts and "b" in state.facts and state.evicted == 1


def test_a_cold_fact_written_again_is_warm_again() -> None:
    state = FactsState(ttl_ms=72 * HOUR_MS)
    state.put(fact("a", T0))
    state.observe(T0 + COLD_AFTER_MS + EVICT_EVERY_MS)
    assert isinstance(state.facts["a"], bytes)
    later = state.get("a")
    assert later is not None
    later.version = 2
    later.ended = (T0 + COLD_AFTER_MS + EVICT_EVERY_MS, "a-2", 10)
    state.put(later)
    state.observe(T0 + COLD_AFTER_MS + 2 * EVICT_EVERY_MS)
    assert state.facts["a"] is later
    state.observe(T0 + 2 * COLD_AFTER_MS + 3 * EVICT_EVERY_MS)
    assert state.get("a") == later and isinstance(state.facts["a"], bytes)


def test_every_fact_of_a_simulated_day_survives_the_cold_form() -> None:
    from vocflow.schemas import ContactEvent
    from vocflow.streams.kpi.fold import fold
    from vocflow.streams.tools.simulator import SimConfig, simulate

    facts: dict[str, ContactFact] = {}
    for rec in simulate(SimConfig(seed=5, contacts_per_day=1500)):
        if rec.kind == "contact":
            e = ContactEvent.model_validate(rec.value)
            new = fold(facts.get(e.contact_id), e)
            if new is not None:
                facts[e.contact_id] = new
    assert len(facts) >= 1500
    for f in facts.values():
        assert f.last_activity_ms is not None
        assert thaw(freeze(f, f.last_activity_ms)) == f
