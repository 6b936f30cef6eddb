"""Run the named KPI queries of `kpis.sql` and turn their rows into `Kpi` values.

The SQL lives in one file so analysts, Grafana panels and this service read
the same definitions; this module only expands the grouping macros, binds
parameters and forms `Kpi` values from numerators and denominators (never from
averaged ratios), with the same presence rules as `vocflow.streams.kpi.kpis`.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.streams.kpi.kpis import ALL, UNKNOWN
from vocflow.streams.kpi.models import Kpi, Unit

# The four groupings of every query, in one pass (GROUPING SETS); grouping()
# has a bit set for each column that is *not* grouped in the row's set.
_G = "grouping(queue, channel, department)"
MACROS = {
    "by": f"multiIf({_G} = 7, 'all', {_G} = 3, 'queue', {_G} = 5, 'channel', 'department') AS by",
    "grp": (
        f"multiIf(by = 'all', '{ALL}', "
        f"by = 'queue', if(queue = '', '{UNKNOWN}', toString(queue)), "
        f"by = 'channel', if(channel = '', '{UNKNOWN}', toString(channel)), "
        f"if(department = '', '{UNKNOWN}', toString(department))) AS grp"
    ),
    "sets": "GROUPING SETS ((), (queue), (channel), (department))",
    "minutes": "{db}.kpi_minutes",
}
# The same queries, one row per contact and group instead (the drill-down lists,
# sinks/kpi/drilldown.py): each `<kpi>__numerator` / `__denominator` is then the
# contact's own part of the KPI, and summing the rows gives the KPI. The interval
# KPIs sum the per-contact deltas that `kpi_minutes` sums per minute and group
# (sinks/clickhouse/ddl/007_kpi_deltas.sql): the same rows, grouped finer.
CONTACT_MACROS = {
    "by": "'contact' AS by",
    "grp": "contact_id AS grp, queue, channel, department",
    "sets": "contact_id, queue, channel, department",
    "minutes": "{db}.kpi_deltas FINAL",
}
UNITS: dict[str, Unit] = {
    "volume": "count",
    "service_level": "ratio",
    "asa": "seconds",
    "abandonment_rate": "ratio",
    "aht": "seconds",
    "transfer_rate": "ratio",
    "csat": "ratio",
    "nps": "score",
    "fcr_survey": "ratio",
    "complaint_rate": "ratio",
    "fcr": "ratio",
    "repeat_contact_rate": "ratio",
    "queue_depth": "count",
    "oldest_waiting": "seconds",
    "backlog": "count",
    "first_response_breach_rate": "ratio",
    "resolution_breach_rate": "ratio",
    "misroute_rate": "ratio",
}
# {by: {kpi: {group: Kpi}}}
Result = dict[str, dict[str, dict[str, Kpi]]]
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.M)
_MACRO = re.compile(r"\{(\w+)\}")


@cache
def named_queries() -> dict[str, str]:
    """name -> SQL body (comments and the final semicolon removed), in file order."""
    text = resources.files("vocflow.sinks.kpi").joinpath("kpis.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    out = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
        out[name] = "\n".join(lines).strip().rstrip(";").strip()
    return out


def interval_kpis() -> list[str]:
    """The KPIs that are sums over the 1-minute aggregates (measure blocks)."""
    return [n for n, sql in named_queries().items() if not sql.startswith(("SELECT", "WITH"))]


def sql(name: str, database: str, per_contact: bool = False) -> str:
    """The runnable SQL of one named query (``interval`` gets every measure);
    ``per_contact``: grouped by contact instead of the four groupings."""
    queries = named_queries()
    macros = {**MACROS, **(CONTACT_MACROS if per_contact else {})}
    if name == "interval":
        macros["measures"] = ",\n    ".join(queries[m] for m in interval_kpis())
    macros = {k: v.replace("{db}", database) for k, v in macros.items()} | {"db": database}
    return _MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), queries[name])


def query_of(kpi: str) -> str:
    """The named query that computes ``kpi`` (a key of `UNITS`)."""
    if kpi in interval_kpis():
        return "interval"
    for name, body in named_queries().items():
        if f"AS {kpi}__numerator" in body:
            return name
    raise KeyError(kpi)


def run(store: ClickHouseStore, name: str, parameters: dict[str, Any]) -> Result:
    """Execute a named query; groups whose KPI population is 0 are left out."""
    return kpis_of_rows(store.query_dicts(sql(name, store.database), parameters))


def kpis_of_rows(rows: list[dict[str, Any]]) -> Result:
    """`Kpi` values of a named query's rows (``by``, ``grp``, ``<kpi>__numerator`` ...);
    groups whose KPI population is 0 are left out."""
    result: Result = {}
    for row in rows:
        by, group = row["by"], row["grp"]
        for column, value in row.items():
            kpi, sep, part = column.partition("__")
            if not sep or part != "population" or not value:
                continue
            numerator = int(row[f"{kpi}__numerator"])
            denominator = int(row[f"{kpi}__denominator"])
            result.setdefault(by, {}).setdefault(kpi, {})[group] = Kpi.of(
                kpi, UNITS[kpi], numerator, denominator
            )
    return result
