"""The durable queue of `vocflow notify`: one SQLite file, written before Alertmanager's 200.

* **200 means durable.** Each notification is written (WAL,
  ``synchronous=FULL``) before Alertmanager gets its 200; a sender task per
  receiver then delivers rows in order, so a chat tool's outage or a restart
  loses nothing: pending rows resume.
* **Alertmanager's duplicates are dropped.** An alert is queued for a receiver
  only if the same receiver + group + fingerprint + status + startsAt was not
  queued within the dedup window; one seen before but outside the window is a
  reminder (Alertmanager's repeat_interval) and is marked as such.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vocflow.streams.notify.webhook import dedup_key

KEEP_DONE_S = 7 * 24 * 3600
"""Sent / given-up rows and dedup keys are kept this long (audit, reminder detection)."""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    receiver: str
    created_at: float
    next_attempt_at: float
    attempts: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class EnqueueResult:
    queued: int
    duplicates: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    done_at REAL,
    last_error TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_receiver ON outbox (receiver, state, id);
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    queued_at REAL NOT NULL
);
"""


class Outbox:
    """The durable queue of notifications (stdlib sqlite3, one file).

    Rows are ``pending`` until delivered (``sent``) or given up
    (``expired``); finished rows and dedup keys are pruned after
    KEEP_DONE_S. Not thread-safe: the service uses it from one thread.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we answer 200 to Alertmanager.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def enqueue(
        self,
        batches: Mapping[str, Sequence[Mapping[str, Any]]],
        notification: Mapping[str, Any],
        *,
        now: float,
        window_s: float,
    ) -> EnqueueResult:
        """Queue one row per receiver with the alerts not queued for it within ``window_s``.

        An alert seen before but outside the window is queued again marked
        ``repeat`` (Alertmanager's repeat_interval reminder).
        """
        queued = duplicates = 0
        group = str(notification.get("groupKey", ""))
        with self._transaction() as db:
            for receiver, alerts in batches.items():
                fresh = []
                for alert in alerts:
                    key = dedup_key(receiver, group, alert)
                    row = db.execute("SELECT queued_at FROM seen WHERE key = ?", (key,)).fetchone()
                    if row is not None and now - row[0] < window_s:
                        duplicates += 1
                        continue
                    db.execute(
                        "INSERT INTO seen (key, queued_at) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET queued_at = excluded.queued_at",
                        (key, now),
                    )
                    fresh.append({**alert, "repeat": row is not None})
                if not fresh:
                    continue
                payload = {**notification, "alerts": fresh}
                db.execute(
                    "INSERT INTO outbox (receiver, created_at, next_attempt_at, payload) "
                    "VALUES (?, ?, ?, ?)",
                    (receiver, now, now, json.dumps(payload, ensure_ascii=False)),
                )
                queued += 1
        return EnqueueResult(queued, duplicates)

    def head(self, receiver: str) -> OutboxRow | None:
        """The oldest pending row of ``receiver``: delivery keeps Alertmanager's order."""
        row = self.db.execute(
            "SELECT id, receiver, created_at, next_attempt_at, attempts, payload FROM outbox "
            "WHERE receiver = ? AND state = 'pending' ORDER BY id LIMIT 1",
            (receiver,),
        ).fetchone()
        if row is None:
            return None
        return OutboxRow(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))

    def mark_sent(self, row_id: int, now: float) -> None:
        self.db.execute(
            "UPDATE outbox SET state = 'sent', done_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE id = ?",
            (now, row_id),
        )

    def mark_failed(self, row_id: int, next_attempt_at: float, error: str) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
            "WHERE id = ?",
            (next_attempt_at, error[:500], row_id),
        )

    def mark_expired(self, row_id: int, now: float) -> None:
        self.db.execute(
            "UPDATE outbox SET state = 'expired', done_at = ? WHERE id = ?", (now, row_id)
        )

    def pending(self) -> dict[str, tuple[int, float]]:
        """receiver -> (pending rows, created_at of the oldest)."""
        rows = self.db.execute(
            "SELECT receiver, COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending' "
            "GROUP BY receiver"
        ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def rows(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every row (tests and troubleshooting)."""
        sql = "SELECT id, receiver, state, attempts, last_error, payload FROM outbox"
        args: tuple[Any, ...] = ()
        if state:
            sql, args = sql + " WHERE state = ?", (state,)
        return [
            {
                "id": r[0],
                "receiver": r[1],
                "state": r[2],
                "attempts": r[3],
                "last_error": r[4],
                "payload": json.loads(r[5]),
            }
            for r in self.db.execute(sql + " ORDER BY id", args)
        ]

    def prune(self, now: float, keep_s: float = KEEP_DONE_S) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND done_at < ?", (now - keep_s,)
            )
            db.execute("DELETE FROM seen WHERE queued_at < ?", (now - keep_s,))
