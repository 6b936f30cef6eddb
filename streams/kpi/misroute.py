"""Misroute rate per department, from the departments' own corrections.

A department that answers "not ours -> X" (Resolution outcome ``reassigned``)
says routing was wrong for that item. misroute rate(D) = items routed to D
that D reassigned / items routed to D. It is the routing's precision seen from
the departments, on live traffic rather than on a labelled set; the same
corrections are the department model's new training labels. The KPI service
computes it live (named query `misroutes`, sinks/kpi/kpis.sql; `today` in
/api/kpis and `vocflow_misroute_ratio`), the ClickHouse view
`department_misroutes` (sinks/clickhouse/ddl/008_department_labels.sql) per
routing day; this function is their reference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Misroutes:
    routed: int
    reassigned: int

    @property
    def rate(self) -> float | None:
        """None for a department nothing was routed to (no value, not 0)."""
        return self.reassigned / self.routed if self.routed else None


def misroute_rates(
    routed: Iterable[tuple[str, str]], reassigned: Iterable[tuple[str, str]]
) -> dict[str, Misroutes]:
    """`routed`: (contact_id, department) per routed item (the last routing of a
    contact counts); `reassigned`: (contact_id, department that reassigned it).
    A correction counts once per item, and only against the department the item
    was routed to (a stale correction from another department is ignored)."""
    where = dict(routed)
    per_department = Counter(where.values())
    wrong = Counter(d for c, d in set(reassigned) if where.get(c) == d)
    return {d: Misroutes(n, wrong[d]) for d, n in sorted(per_department.items())}
