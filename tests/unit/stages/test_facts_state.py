"""FactsState: the journal rebuilds the state exactly; eviction by event time only."""

from __future__ import annotations

import orjson

from vocflow.streams.kpi.models import HOUR_MS, ContactFact
from vocflow.streams.stages.facts_state import EVICT_EVERY_MS, FactsState

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
    assert len(state._heap) <= 4 * len(state.facts) + 1024
    state.observe(T0 + 3 * HOUR_MS + 2 * EVICT_EVERY_MS)
    assert state.facts == {} and state.evicted == 2
