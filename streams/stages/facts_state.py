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

A fact idle for `COLD_AFTER_MS` of event time is held *cold*: its fields, in
order, as JSON compressed with lz4 (~300 bytes instead of ~1.2 KB of objects),
behind its last activity time. The TTL keeps three days of contacts, and a
day's contacts held as objects made a worker's memory grow all day (40,000
contacts: ~50 MB). Most contacts are done within minutes; the event that comes
later (a survey, an e-mail's resolution) thaws the fact (~5 us). Only the
representation changes: `get` returns the same fact, and what is journalled,
emitted and evicted is the same.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import lz4.block
import orjson

from vocflow.streams.kpi.models import ContactFact

EVICT_EVERY_MS = 5 * 60 * 1000
COLD_AFTER_MS = 30 * 60 * 1000

Record = tuple[bytes, bytes | None]
_FIELDS = tuple(f.name for f in fields(ContactFact))


def freeze(fact: ContactFact, last_ms: int) -> bytes:
    """The cold form of a fact: its last activity (8 bytes), then its fields in
    declaration order as JSON, lz4-compressed (event ids repeat the contact id)."""
    body = orjson.dumps([getattr(fact, name) for name in _FIELDS])
    return last_ms.to_bytes(8, "big", signed=True) + lz4.block.compress(body)


def thaw(cold: bytes) -> ContactFact:
    """The fact `freeze` was given, equal field by field (JSON lists back to tuples)."""
    values = orjson.loads(lz4.block.decompress(cold[8:]))
    return ContactFact(*(_tuplify(v) if isinstance(v, list) else v for v in values))


def _tuplify(value: list[Any]) -> tuple[Any, ...]:
    return tuple(_tuplify(v) if isinstance(v, list) else v for v in value)


def _last_ms(held: ContactFact | bytes) -> int | None:
    if isinstance(held, bytes):
        return int.from_bytes(held[:8], "big", signed=True)
    return held.last_activity_ms


@dataclass
class FactsState:
    """The facts of one partition. Not thread-safe; one loop owns it."""

    ttl_ms: int
    # a fact, or its cold form (`freeze`) once idle for COLD_AFTER_MS
    facts: dict[str, ContactFact | bytes] = field(default_factory=dict)
    newest_ms: int = 0  # latest event time folded: the clock of eviction
    evicted_at_ms: int = 0
    evicted: int = 0  # facts forgotten so far
    journal: dict[bytes, ContactFact | None] = field(default_factory=dict)
    # (last activity ms, contact id) per write; entries superseded since are skipped
    _heap: list[tuple[int, str]] = field(default_factory=list, repr=False, compare=False)
    # contacts whose fact is held as an object, least recently written first
    _warm: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False, compare=False)

    def get(self, contact_id: str) -> ContactFact | None:
        held = self.facts.get(contact_id)
        return thaw(held) if isinstance(held, bytes) else held

    def put(self, fact: ContactFact) -> None:
        cid = fact.contact_id
        self.facts[cid] = fact
        self.journal[cid.encode()] = fact
        self._warm[cid] = None
        self._warm.move_to_end(cid)
        if (last := fact.last_activity_ms) is not None:
            heapq.heappush(self._heap, (last, cid))
            if len(self._heap) > 2 * len(self.facts) + 1024:
                self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        """One entry per fact again (superseded entries pile up for busy contacts)."""
        self._heap = [
            (last, cid) for cid, f in self.facts.items() if (last := _last_ms(f)) is not None
        ]
        heapq.heapify(self._heap)

    def _cool(self, cutoff: int) -> None:
        """Hold the facts last written before `cutoff` (event time) in their cold form.
        In write order, which follows event time only roughly: the first fact still
        active stops the pass (it is a representation, so late is only later)."""
        warm, facts = self._warm, self.facts
        while warm:
            cid = next(iter(warm))
            fact = facts.get(cid)
            if isinstance(fact, ContactFact):
                last = fact.last_activity_ms
                if last is not None and last >= cutoff:
                    return
                if last is not None:
                    facts[cid] = freeze(fact, last)
            warm.popitem(last=False)

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
            if fact is not None and _last_ms(fact) == last:
                del self.facts[cid]
                self._warm.pop(cid, None)
                self.journal[cid.encode()] = None
                evicted += 1
        self.evicted += evicted
        self._cool(at_ms - COLD_AFTER_MS)

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
                self._warm.pop(cid, None)
            else:
                fact = ContactFact.from_dict(orjson.loads(value))
                self.facts[cid] = fact
                self._warm[cid] = None
                self._warm.move_to_end(cid)
                last = fact.last_activity_ms
                if last is not None and last > self.newest_ms:
                    self.newest_ms = last
        self.evicted_at_ms = self.newest_ms
        self._rebuild_heap()
        self._cool(self.newest_ms - COLD_AFTER_MS)
