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
customer's; the second window is that customer's grace. The scan runs when
event time has moved on by `EXPIRE_EVERY`.
"""

from __future__ import annotations

from collections.abc import Iterable
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

    def last_issue(self, key: str) -> LastIssue | None:
        return self.issues.get(key)

    def already_routed(self, contact_id: str) -> bool:
        return contact_id in self.routed

    def remember_issue(self, key: str, issue: LastIssue) -> None:
        if self.issues.get(key) == issue:
            return
        self.issues[key] = issue
        self.journal[ISSUE_PREFIX + key.encode()] = orjson.dumps(issue.to_json())

    def remember_routed(self, contact_id: str, department: str, at: datetime) -> None:
        entry = (department, _ms(at))
        self.routed[contact_id] = entry
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
        old_issues = [k for k, v in self.issues.items() if _ms(v.at) < issue_limit]
        old_routed = [k for k, (_, ms) in self.routed.items() if ms < routed_limit]
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
            else:
                self.routed[name] = (body["department"], int(body["at_ms"]))
                self.newest_ms = max(self.newest_ms, int(body["at_ms"]))
        self.expire()  # its deletions are journalled: the next transaction writes them
