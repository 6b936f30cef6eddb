"""Live interval KPIs between two KPI rounds: the round's sums plus the deltas
this process has stored since.

Why: a KPI round (sinks/kpi/service.py) queries ClickHouse every
`VOCFLOW_KPI_REFRESH_SECONDS` (5 s), so a contact reached the wallboard and
`/metrics` 3-6 s after it was stored (docs/benchmarks.md, freshness), and a
round is too expensive to run every second. But every interval KPI is a linear
sum over the 1-minute aggregates, and those aggregates are exactly the delta
cells the sink stores (`kpi_deltas`, written by `LatestFactDeltas`). So between
rounds the process adds the cells it stored to the last round's sums, and the
interval KPIs move within a sink flush of the event.

Exact, not approximate:

* **No cell counted twice or missed.** A cell batch is recorded under the
  store's lock together with its insert, and the round takes its mark under the
  same lock together with its interval query: a cell is either in the query's
  sums or after the mark, never both.
* **The same formulas.** The overlay evaluates the measure expressions of
  `kpis.sql` itself (``sum(col)``, ``-``, ``+`` and integer constants are all
  they use; anything else fails loudly at first use), and forms `Kpi` values
  with the rounds' own `kpis_of_rows`; tests/unit/sinks/test_live_kpis.py
  holds it equal to a round run after the same inserts.
* **What it does not cover** waits for the next round, as before: deltas
  stored by *another* sink process (several sinks on a ClickHouse server), the
  point-in-time KPIs and those read from the facts (FCR and repeat rate, SLA
  breaches, misroutes), and a minute that begins after the round (outside the
  round's rolling intervals). Deltas withdrawn for a refused fact stop the live
  path until the next round rather than guess.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.kpi import queries
from vocflow.streams.kpi.contributions import COUNTERS
from vocflow.streams.kpi.kpis import ALL, UNKNOWN
from vocflow.streams.kpi.models import Interval, to_ms

# A delta cell as stored in kpi_deltas: minute, queue, channel, department,
# contact_id, version, kafka_partition, kafka_offset, then COUNTERS.
Cell = list[Any]
_FIRST_COUNT = 8
_INDEX = {name: i for i, name in enumerate(COUNTERS)}
_ITEM = re.compile(r"^(?P<expr>.+?)\s+AS\s+(?P<alias>\w+)$", re.S)
_TERM = re.compile(r"\s*(?P<sign>[-+])?\s*(?:sum\((?P<col>\w+)\)|(?P<const>\d+))\s*")


@dataclass(frozen=True, slots=True)
class Term:
    """``coef * sum(column)``, or the constant ``coef`` when `column` is None."""

    coef: int
    column: str | None


@cache
def measure_terms() -> dict[str, tuple[Term, ...]]:
    """Column alias (``volume__numerator`` ...) -> its terms, from the measure
    blocks of kpis.sql: the definitions the round's SQL uses."""
    out: dict[str, tuple[Term, ...]] = {}
    bodies = queries.named_queries()
    for kpi in queries.interval_kpis():
        for item in _split_items(bodies[kpi]):
            m = _ITEM.match(item.strip())
            if m is None:
                raise ValueError(f"kpis.sql {kpi}: cannot read measure {item.strip()!r}")
            out[m["alias"]] = _terms(kpi, m["expr"])
    return out


def _split_items(body: str) -> list[str]:
    """Split a measure block on its top-level commas."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    return [item for item in items if item.strip()]


def _terms(kpi: str, expr: str) -> tuple[Term, ...]:
    terms: list[Term] = []
    pos = 0
    while pos < len(expr):
        m = _TERM.match(expr, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"kpis.sql {kpi}: the live KPIs cannot evaluate {expr.strip()!r}")
        coef = -1 if m["sign"] == "-" else 1
        if m["col"] is not None:
            if m["col"] not in _INDEX:
                raise ValueError(f"kpis.sql {kpi}: {m['col']} is not a kpi_deltas counter")
            terms.append(Term(coef, m["col"]))
        else:
            terms.append(Term(coef * int(m["const"]), None))
        pos = m.end()
    return tuple(terms)


Sums = dict[tuple[str, str], list[int]]  # (by, group) -> COUNTERS summed


def sum_cells(cells: Iterable[Cell], iv: Interval, into: Sums) -> Sums:
    """Add `cells` whose minute is in `iv` to the per-group counter sums `into`."""
    width = len(COUNTERS)
    for cell in cells:
        minute = to_ms(cell[0])
        if not iv.start_ms <= minute < iv.end_ms:
            continue
        counts = cell[_FIRST_COUNT : _FIRST_COUNT + width]
        for key in (
            ("all", ALL),
            ("queue", cell[1] or UNKNOWN),
            ("channel", cell[2] or UNKNOWN),
            ("department", cell[3] or UNKNOWN),
        ):
            total = into.get(key)
            if total is None:
                into[key] = list(counts)
            else:
                for i, n in enumerate(counts):
                    total[i] += n
    return into


def add_sums(rows: list[dict[str, Any]], sums: Sums) -> list[dict[str, Any]]:
    """The `interval` query's rows with per-group counter `sums` added: new rows for
    new groups, constants once; the rows given are left as they were."""
    if not sums:
        return rows
    terms = measure_terms()
    out = [dict(row) for row in rows]
    at = {(row["by"], row["grp"]): row for row in out}
    for (by, grp), total in sums.items():
        row = at.get((by, grp))
        if row is None:
            row = {"by": by, "grp": grp}
            for alias, ts in terms.items():
                row[alias] = sum(
                    t.coef * (1 if t.column is None else total[_INDEX[t.column]]) for t in ts
                )
            out.append(row)
            continue
        for alias, ts in terms.items():
            if any(t.column is not None for t in ts):
                row[alias] = int(row.get(alias, 0)) + sum(
                    t.coef * total[_INDEX[t.column]] for t in ts if t.column is not None
                )
    return out


class LiveDeltas:
    """The delta cells one store received from this process, numbered, since the
    oldest mark still in use (`LatestFactDeltas.listeners` calls `on_stored`)."""

    def __init__(self, store: ClickHouseStore, changed: Callable[[], None] | None = None) -> None:
        self.store = store
        self.changed = changed
        self._lock = threading.Lock()
        self._seq = 0
        self._batches: list[tuple[int, list[Cell]]] = []
        self._withdrawn = 0  # seq of the last withdrawal (0: none)

    def on_stored(self, store: ClickHouseStore, cells: list[Cell] | None) -> None:
        """Called under the store's lock right after the insert (None: withdrawn)."""
        if store is not self.store:
            return
        with self._lock:
            self._seq += 1
            if cells is None:
                self._withdrawn = self._seq
            else:
                self._batches.append((self._seq, cells))
        if self.changed is not None:
            self.changed()

    def mark(self) -> int:
        """The last batch recorded; take it under the store's lock with a query."""
        with self._lock:
            return self._seq

    def since(self, mark: int, after: int | None = None) -> tuple[int, list[Cell]] | None:
        """(the last batch, the cells recorded after `after`, default `mark`); None
        when deltas were withdrawn after `mark`."""
        start = mark if after is None else max(mark, after)
        with self._lock:
            if self._withdrawn > mark:
                return None
            cells = [c for seq, batch in self._batches if seq > start for c in batch]
            return self._seq, cells

    def drop_until(self, mark: int) -> None:
        """Forget batches at or before `mark` (no round needs them any more)."""
        with self._lock:
            self._batches = [(seq, cells) for seq, cells in self._batches if seq > mark]
