"""What the facts stage remembers for one partition of contacts.events /
contacts.routed: the current fact of each contact, as a map plus the changelog
records that rebuild it.

Every change is journalled as a changelog record (contact id, the fact as JSON,
or None for a deletion). The worker's facts loop writes the journal in the same
Kafka transaction as the facts it emits and the consumed offsets, so the state a
restarted worker restores is exactly the state that goes with its committed
offsets: no event folded twice or lost, no fact emitted twice
(docs/reliability.md).

A fact idle (no event) for longer than the TTL in event time is forgotten with a
tombstone, so a worker's memory and its restore time do not grow with every
contact it ever saw. Its numbers stay in ClickHouse; an event arriving even
later starts a new fact whose version is below the stored one, so the sink keeps
the stored fact and does not count the late event (docs/kpis.md). Event time,
never the wall clock: a replay of last month forgets as the live run did.
Eviction runs when event time has moved on by `EVICT_EVERY_MS` and takes the
idlest facts from a heap ordered by last activity (a scan of every fact held
cost more the longer the TTL). A fact is serialized for the changelog once per
batch, when the journal is taken, not at every event that changed it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from vocflow.streams.kpi.models import ContactFact

EVICT_EVERY_MS = 5 * 60 * 1000

Record = tuple[bytes, bytes | None]


@dataclass
class FactsState:
    """The facts of one partition. Not thread-safe; one loop owns it."""

    ttl_ms: int
    facts: dict[str, ContactFact] = field(default_factory=dict)
    newest_ms: int = 0  # latest event time folded: the clock of eviction
    evicted_at_ms: int = 0
    evicted: int = 0  # facts forgotten so far
    journal: dict[bytes, ContactFact | None] = field(default_factory=dict)
    # (last activity ms, contact id) per write; entries superseded since are skipped
    _heap: list[tuple[int, str]] = field(default_factory=list, repr=False, compare=False)

    def get(self, contact_id: str) -> ContactFact | None:
        return self.facts.get(contact_id)

    def put(self, fact: ContactFact) -> None:
        self.facts[fact.contact_id] = fact
        self.journal[fact.contact_id.encode()] = fact
        if (last := fact.last_activity_ms) is not None:
            heapq.heappush(self._heap, (last, fact.contact_id))
            if len(self._heap) > 4 * len(self.facts) + 1024:
                self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        """One entry per fact again (superseded entries pile up for busy contacts)."""
        self._heap = [
            (last, cid) for cid, f in self.facts.items() if (last := f.last_activity_ms) is not None
        ]
        heapq.heapify(self._heap)

    def observe(self, at_ms: int) -> None:
        """Event time has reached `at_ms`: maybe forget the facts idle too long."""
        if at_ms <= self.newest_ms:
            return
        self.newest_ms = at_ms
        if at_ms - self.evicted_at_ms < EVICT_EVERY_MS:
            return
        self.evicted_at_ms = at_ms
        cutoff = at_ms - self.ttl_ms
        evicted = 0
        heap = self._heap
        while heap and heap[0][0] < cutoff:
            last, cid = heapq.heappop(heap)
            fact = self.facts.get(cid)
            if fact is not None and fact.last_activity_ms == last:
                del self.facts[cid]
                self.journal[cid.encode()] = None
                evicted += 1
        self.evicted += evicted

    def take_journal(self) -> list[Record]:
        """The changelog records since the last call, one per changed contact."""
        records = [
            (key, None if fact is None else orjson.dumps(fact.to_dict()))
            for key, fact in self.journal.items()
        ]
        self.journal.clear()
        return records

    def restore(self, records: Iterable[Record]) -> None:
        """Rebuild from the changelog (records in offset order; the last one wins)."""
        for key, value in records:
            cid = key.decode()
            if value is None:
                self.facts.pop(cid, None)
            else:
                fact = ContactFact.from_dict(orjson.loads(value))
                self.facts[cid] = fact
                last = fact.last_activity_ms
                if last is not None and last > self.newest_ms:
                    self.newest_ms = last
        self.evicted_at_ms = self.newest_ms
        self._rebuild_heap()
