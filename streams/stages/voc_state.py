"""What the voc stage remembers for one partition of contacts.voc, as a map plus
the changelog records that rebuild it.

Two things are remembered: the latest issue per (customer, category) (repeat
detection, `stages/routing.py`) and the department each contact was routed to
(one envelope per contact). Every change is also journalled as a changelog
record (key, JSON value, or None for a deletion). The worker's voc loop writes
the journal in the same Kafka transaction as the envelopes and the consumed
offsets, so the state a restarted worker restores from the changelog is exactly
the state that goes with its committed offsets: nothing routed twice, no repeat
missed (docs/reliability.md).

Entries are forgotten by event time, never by the wall clock, so a replay of
last month routes as the live run did: an issue once it is two repeat windows
older than the newest event of the partition, a routed contact two
`ROUTED_MEMORY` after its event. Two, not one: a partition of contacts.voc
interleaves customers whose events normalize produced from different raw
partitions, so during a backlog its newest event time runs ahead of a slower
customer's; the second window is that customer's grace. Expiry runs when event
time has moved on by `EXPIRE_EVERY`, and takes the oldest entries from a heap
ordered by time: scanning every entry each simulated minute was a sixth of the
stage's CPU during a backlog (a day of contacts held, a minute of event time
per few hundred records).
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from vocflow.streams.stages.routing import LastIssue

ROUTED_MEMORY = timedelta(days=1)  # a contact active for longer may be routed again
EXPIRE_EVERY = timedelta(minutes=1)
ISSUE_PREFIX = b"i|"
ROUTED_PREFIX = b"r|"

Record = tuple[bytes, bytes | None]


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class VocState:
    """The memory of one partition. Not thread-safe; one loop owns it."""

    window: timedelta
    issues: dict[str, LastIssue] = field(default_factory=dict)
    routed: dict[str, tuple[str, int]] = field(default_factory=dict)  # -> (department, ms)
    newest_ms: int = 0
    expired_at_ms: int = 0
    journal: dict[bytes, bytes | None] = field(default_factory=dict)
    # (time in ms, key) of every entry as written; an entry superseded since (a newer
    # time for the key, or deleted) is skipped when it comes up
    _issue_heap: list[tuple[int, str]] = field(default_factory=list, repr=False, compare=False)
    _routed_heap: list[tuple[int, str]] = field(default_factory=list, repr=False, compare=False)

    def last_issue(self, key: str) -> LastIssue | None:
        return self.issues.get(key)

    def already_routed(self, contact_id: str) -> bool:
        return contact_id in self.routed

    def remember_issue(self, key: str, issue: LastIssue) -> None:
        if self.issues.get(key) == issue:
            return
        self.issues[key] = issue
        heapq.heappush(self._issue_heap, (_ms(issue.at), key))
        self.journal[ISSUE_PREFIX + key.encode()] = orjson.dumps(issue.to_json())

    def remember_routed(self, contact_id: str, department: str, at: datetime) -> None:
        # interned: a few department names, held once each, not once per contact
        entry = (sys.intern(department), _ms(at))
        self.routed[contact_id] = entry
        heapq.heappush(self._routed_heap, (entry[1], contact_id))
        self.journal[ROUTED_PREFIX + contact_id.encode()] = orjson.dumps(
            {"department": department, "at_ms": entry[1]}
        )

    def observe(self, at: datetime) -> None:
        """Event time has reached `at`: maybe forget what is too old by now."""
        ms = _ms(at)
        if ms <= self.newest_ms:
            return
        self.newest_ms = ms
        if ms - self.expired_at_ms >= EXPIRE_EVERY / timedelta(milliseconds=1):
            self.expire()

    def expire(self) -> int:
        """Forget entries too old for the newest event; journal their deletion."""
        self.expired_at_ms = self.newest_ms
        issue_limit = self.newest_ms - 2 * self.window / timedelta(milliseconds=1)
        routed_limit = self.newest_ms - 2 * ROUTED_MEMORY / timedelta(milliseconds=1)
        old_issues = _pop_older(
            self._issue_heap,
            issue_limit,
            lambda k: _ms(i.at) if (i := self.issues.get(k)) else None,
        )
        old_routed = _pop_older(
            self._routed_heap, routed_limit, lambda k: r[1] if (r := self.routed.get(k)) else None
        )
        for key in old_issues:
            del self.issues[key]
            self.journal[ISSUE_PREFIX + key.encode()] = None
        for key in old_routed:
            del self.routed[key]
            self.journal[ROUTED_PREFIX + key.encode()] = None
        return len(old_issues) + len(old_routed)

    def take_journal(self) -> list[Record]:
        """The changelog records since the last call (latest value per key)."""
        records = list(self.journal.items())
        self.journal.clear()
        return records

    def restore(self, records: Iterable[Record]) -> None:
        """Rebuild from changelog records in their log order (the last one per key
        wins; None deletes), then forget what is already too old."""
        for key, value in records:
            kind, name = key[:2], key[2:].decode()
            table: dict = self.issues if kind == ISSUE_PREFIX else self.routed
            if kind not in (ISSUE_PREFIX, ROUTED_PREFIX):
                continue  # written by a newer version: not ours to read
            if value is None:
                table.pop(name, None)
                continue
            body = orjson.loads(value)
            if kind == ISSUE_PREFIX:
                issue = LastIssue.from_json(body)
                assert issue is not None
                self.issues[name] = issue
                self.newest_ms = max(self.newest_ms, _ms(issue.at))
                self._issue_heap.append((_ms(issue.at), name))
            else:
                self.routed[name] = (sys.intern(body["department"]), int(body["at_ms"]))
                self.newest_ms = max(self.newest_ms, int(body["at_ms"]))
                self._routed_heap.append((int(body["at_ms"]), name))
        heapq.heapify(self._issue_heap)
        heapq.heapify(self._routed_heap)
        self.expire()  # its deletions are journalled: the next transaction writes them


def _pop_older(
    heap: list[tuple[int, str]], limit: float, current: Callable[[str], int | None]
) -> list[str]:
    """Keys whose current time (`current(key)`, None when gone) is below `limit`,
    popped from `heap` oldest first; heap entries superseded since are dropped.
    Each entry is popped once: the cost follows what expires, not what is held."""
    old: dict[str, None] = {}  # ordered; a key written twice at the same time is one
    while heap and heap[0][0] < limit:
        ms, key = heapq.heappop(heap)
        if current(key) == ms:
            old[key] = None
    return list(old)
