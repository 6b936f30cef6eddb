"""The contacts behind a KPI number (`/api/contacts`, `vocflow contacts`, the
wallboard's tile lists).

A drill-down list is never a second definition of a KPI. It runs the KPI's own
named query of `kpis.sql` with the per-contact macros
(`queries.sql(..., per_contact=True)`): the same row source, the same
conditions and the same parameters (`service.query_parameters`), grouped by
contact instead of by queue/channel/department. Each row is then one contact's
part of the KPI (`<kpi>__numerator`, `<kpi>__denominator`), and the KPI is the
sum of its contacts' parts, so a list's length equals the KPI's numerator or
denominator by construction (tests/unit/sinks/test_drilldown.py checks it for
every KPI against `queries.run`). Exceptions, said in the answer: the
point-in-time KPIs and volume have the constant denominator 1, and
`oldest_waiting` is the largest of its contacts' ages, not their sum.

What a contact shows is what ClickHouse already holds masked: the text summary
and tags of its routing decision (`routing_log`, filled from the routing
envelope, whose text the enrich stage masked) and pseudonymized ids. The
summary is masked once more here (`mask_pii` is idempotent on masked text), so
a row written before masking existed, or by a bug, still leaves this module
without clear PII. Blocking (ClickHouse): callers on an event loop use a thread.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.kpi import agent_kpis
from vocflow.sinks.kpi import queries as kpi_queries
from vocflow.sinks.kpi.service import API_NAMES, NOW_KPIS, query_parameters
from vocflow.streams.core.settings import Settings
from vocflow.streams.kpi.kpis import UNKNOWN
from vocflow.streams.kpi.models import Interval, Kpi, to_ms
from vocflow.streams.privacy.pii import mask_pii

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
SUMMARY_CHARS = 140
MAX_RANGE = timedelta(days=31)
DIMENSIONS = ("queue", "channel", "department")
PARTS = {
    "numerator": "numerator != 0",
    "denominator": "denominator != 0",
    # In the denominator and not in the numerator: the misses of a ratio.
    "missed": "denominator != 0 AND numerator = 0",
}


@dataclass(frozen=True)
class Selection:
    """One named list: a KPI, the part of it, and an optional extra condition on the
    same per-contact row (another KPI of the same query, e.g. ``asa__denominator``)."""

    kpi: str
    part: str
    extra: str = ""
    doc: str = ""


# The names supervisors ask for (`?kpi=abandoned`); any KPI name with ?part= works too.
LISTS: dict[str, Selection] = {
    "contacts": Selection("volume", "numerator", doc="contacts begun"),
    "complaints": Selection("complaint_rate", "numerator", doc="contacts routed to complaints"),
    "answered_within": Selection("service_level", "numerator", doc="answered within T"),
    "sl_missed": Selection("service_level", "missed", doc="answered late or abandoned after T"),
    "answered_late": Selection(
        "service_level", "missed", "asa__denominator != 0", "answered after T"
    ),
    "answered": Selection("asa", "denominator", doc="answered (their wait is ASA's numerator)"),
    "abandoned": Selection("abandonment_rate", "numerator", doc="abandoned (not short)"),
    "offered": Selection("abandonment_rate", "denominator", doc="offered, short abandons out"),
    "handled": Selection("aht", "denominator", doc="handled (their time is AHT's numerator)"),
    "transferred": Selection("transfer_rate", "numerator", doc="handled and transferred"),
    "satisfied": Selection("csat", "numerator", doc="CSAT 4-5"),
    "dissatisfied": Selection("csat", "missed", doc="CSAT 1-3"),
    "promoters": Selection("nps", "denominator", "nps__numerator > 0", "NPS 9-10"),
    "detractors": Selection("nps", "denominator", "nps__numerator < 0", "NPS 0-6"),
    "repeat": Selection("repeat_contact_rate", "numerator", doc="repeated within the window"),
    "waiting": Selection("queue_depth", "numerator", doc="waiting now"),
    "backlog": Selection("backlog", "numerator", doc="async, received and not resolved"),
    "first_response_breached": Selection("first_response_breach_rate", "numerator"),
    "resolution_breached": Selection("resolution_breach_rate", "numerator"),
    "misrouted": Selection(
        "misroute_rate", "numerator", doc="routed items their department reassigned"
    ),
}
# KPI aggregation across contacts when it is not the sum.
_MAX_KPIS = frozenset({"oldest_waiting"})
_BY_API_NAME = {api: kpi for kpi, api in API_NAMES.items()}
_RANGE = re.compile(r"^(?P<start>[^.]+)\.\.(?P<end>[^.]+)$")
_FACT_COLUMNS = (
    "arrival_at",
    "customer_id",
    "agent_id",
    "wait_seconds",
    "handle_seconds",
    "transfers",
    "csat",
    "nps",
    "category",
)
_ROUTING_COLUMNS = (
    "text",
    "keywords",
    "sentiment",
    "business_type",
    "support_system",
    "bearer_network",
    "category",
    "urgency",
    "department",
    "department_rule",
    "category_rule",
    "urgency_rule",
    "reason",
    "routed_at",
    "repeat_contact",
    "previous_contact_id",
    "customer_tier",
)
CSV_COLUMNS = (
    "contact_id",
    "arrival_at",
    "channel",
    "queue",
    "department",
    "numerator",
    "denominator",
    "customer_id",
    "agent_id",
    "category",
    "business_type",
    "support_system",
    "bearer_network",
    "urgency",
    "sentiment",
    "keywords",
    "summary",
    "routed_to",
    "department_rule",
    "reason",
)


class DrilldownError(ValueError):
    """A request the caller can fix (unknown list, bad interval, bad paging); 400."""


@dataclass(frozen=True)
class Request:
    """A parsed `/api/contacts` query."""

    name: str  # what was asked for (a list name or a KPI name)
    kpi: str  # the named-query KPI (a key of queries.UNITS)
    part: str
    extra: str
    interval: str  # 15m | 60m | today | START..END
    filters: Mapping[str, str]
    limit: int
    offset: int

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Request:
        name = (query.get("kpi") or "").strip()
        if not name:
            raise DrilldownError(f"kpi is required: one of {', '.join(LISTS)}, or a KPI name")
        part = query.get("part")
        if name in LISTS:
            sel = LISTS[name]
            if part not in (None, sel.part):
                raise DrilldownError(f"{name} is the {sel.part} of {sel.kpi}; leave part out")
            kpi, part, extra = sel.kpi, sel.part, sel.extra
        else:
            kpi = _BY_API_NAME.get(name, name)
            if kpi not in kpi_queries.UNITS:
                raise DrilldownError(
                    f"unknown kpi {name!r}: one of {', '.join(LISTS)}, or a KPI name "
                    f"({', '.join(API_NAMES.values())}) with part="
                )
            part, extra = part or "numerator", ""
        if part not in PARTS:
            raise DrilldownError(f"part must be one of {', '.join(PARTS)}")
        filters = {}
        for dim in DIMENSIONS:
            value = query.get(dim)
            if value:
                if len(value) > 100:
                    raise DrilldownError(f"{dim} is too long")
                filters[dim] = value
        return cls(
            name=name,
            kpi=kpi,
            part=part,
            extra=extra,
            interval=query.get("interval") or "15m",
            filters=filters,
            limit=_int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
            offset=_int(query, "offset", 0, 0, 10**9),
        )


def parse_interval(text: str, now: datetime, tz: str) -> Interval:
    """15m | 60m | today (as /api/kpis, in the KPI time zone) or ``START..END``
    (ISO times; without an offset they are KPI-time-zone local)."""
    named = agent_kpis.intervals(now, tz)
    if text in named:
        return named[text]
    match = _RANGE.match(text)
    if not match:
        raise DrilldownError(
            "interval must be 15m, 60m, today or START..END "
            "(e.g. 2026-12-07T09:00..2026-12-07T10:00)"
        )
    zone = ZoneInfo(tz)
    ends = []
    for key in ("start", "end"):
        try:
            moment = datetime.fromisoformat(match.group(key))
        except ValueError:
            raise DrilldownError(
                f"interval {key} {match.group(key)!r} is not an ISO time"
            ) from None
        ends.append(moment if moment.tzinfo else moment.replace(tzinfo=zone))
    start, end = ends
    if not start < end:
        raise DrilldownError("interval START must be before END")
    if end - start > MAX_RANGE:
        raise DrilldownError(f"an interval is at most {MAX_RANGE.days} days")
    return Interval(to_ms(start), to_ms(end), text)


def contacts(
    settings: Settings,
    store: ClickHouseStore,
    query: Mapping[str, str],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """The `/api/contacts` document: the list's page, its length, and the KPI of
    the same rows (numerator, denominator, value) next to it."""
    req = Request.from_query(query)
    now = clock()
    name = kpi_queries.query_of(req.kpi)
    at_now = req.kpi in NOW_KPIS
    iv = None if at_now else parse_interval(req.interval, now, settings.timezone)
    params = query_parameters(settings, name, iv, now)
    where, bound = _filters(req.filters)
    params.update(bound)
    k = req.kpi
    rows_sql = (
        f"SELECT *, {k}__numerator AS numerator, {k}__denominator AS denominator "
        f"FROM ({kpi_queries.sql(name, store.database, per_contact=True)}) WHERE {where}"
    )
    picked = f"{PARTS[req.part]}{f' AND ({req.extra})' if req.extra else ''}"
    (totals,) = store.query_dicts(
        f"SELECT countIf({picked}) AS listed, sum(numerator) AS sum_n, max(numerator) AS max_n, "
        f"sum(denominator) AS sum_d FROM ({rows_sql})",
        params,
    )
    page = store.query_dicts(
        f"WITH listed AS (SELECT grp AS contact_id, queue, channel, department, numerator, "
        f"denominator FROM ({rows_sql}) WHERE {picked}) "
        "SELECT l.contact_id AS contact_id, l.channel AS channel, l.queue AS queue, "
        "l.department AS department, l.numerator AS numerator, l.denominator AS denominator, "
        + ", ".join(f"f.{c} AS {c}" for c in _FACT_COLUMNS)
        + " FROM listed AS l LEFT JOIN (SELECT contact_id, "
        + ", ".join(_FACT_COLUMNS)
        + f" FROM {store.database}.contact_facts FINAL "
        "WHERE contact_id IN (SELECT contact_id FROM listed)) AS f ON f.contact_id = l.contact_id "
        "ORDER BY f.arrival_at DESC, contact_id LIMIT {limit:UInt32} OFFSET {offset:UInt64} "
        "SETTINGS join_use_nulls = 1",
        {**params, "limit": req.limit, "offset": req.offset},
    )
    routing = _routing(store, [r["contact_id"] for r in page])
    numerator = int(totals["max_n"] if k in _MAX_KPIS else totals["sum_n"])
    sql_body = kpi_queries.named_queries()[k if name == "interval" else name]
    constant = f"1 AS {k}__denominator" in sql_body
    denominator = 1 if constant else int(totals["sum_d"])
    listed = int(totals["listed"])
    if constant and not listed and not numerator:
        denominator = 0
    kpi = Kpi.of(k, kpi_queries.UNITS[k], numerator, denominator)
    return {
        "list": req.name,
        "kpi": API_NAMES[k],
        "part": req.part,
        "condition": req.extra or None,
        "interval": None
        if iv is None
        else {"label": iv.label, "start": _iso(iv.start_ms), "end": _iso(iv.end_ms)},
        "at": now.astimezone(UTC).isoformat(),
        "timezone": settings.timezone,
        "filters": dict(req.filters),
        "kpi_totals": {
            "numerator": kpi.numerator,
            "denominator": kpi.denominator,
            "value": None if kpi.value is None else float(kpi.value),
        },
        "total": listed,
        "limit": req.limit,
        "offset": req.offset,
        "next_offset": req.offset + len(page) if req.offset + len(page) < listed else None,
        "contacts": [_contact(row, routing.get(row["contact_id"])) for row in page],
    }


def to_csv(doc: Mapping[str, Any]) -> str:
    """One line per contact of the page (`?format=csv`, `vocflow contacts --csv`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in doc["contacts"]:
        tags, routing = c.get("tags") or {}, c.get("routing") or {}
        flat = {
            **c,
            **tags,
            "keywords": " ".join(c.get("keywords") or ()),
            "routed_to": routing.get("department"),
            "department_rule": routing.get("department_rule"),
            "reason": routing.get("reason"),
        }
        writer.writerow(["" if flat.get(col) is None else flat[col] for col in CSV_COLUMNS])
    return out.getvalue()


# ---- helpers ---------------------------------------------------------------


def _int(query: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DrilldownError(f"{key} must be a whole number") from None
    if not low <= value <= high:
        raise DrilldownError(f"{key} must be between {low} and {high}")
    return value


def _filters(filters: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The dimension filters, on the group names the KPIs use (`unknown` for none)."""
    parts, params = ["1"], {}
    for dim, value in filters.items():
        parts.append(f"if({dim} = '', '{UNKNOWN}', toString({dim})) = {{f_{dim}:String}}")
        params[f"f_{dim}"] = value
    return " AND ".join(parts), params


def _routing(store: ClickHouseStore, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = store.query_dicts(
        f"SELECT contact_id, {', '.join(_ROUTING_COLUMNS)} FROM {store.database}.routing_log "
        "FINAL WHERE contact_id IN {ids:Array(String)}",
        {"ids": ids},
    )
    return {r["contact_id"]: r for r in rows}


def summary(text: str | None) -> str | None:
    """The masked text, short enough for a list row."""
    if not text:
        return None
    masked = mask_pii(text)[0]
    return masked if len(masked) <= SUMMARY_CHARS else masked[: SUMMARY_CHARS - 1] + "…"


def _contact(row: Mapping[str, Any], routed: Mapping[str, Any] | None) -> dict[str, Any]:
    r = routed or {}
    return {
        "contact_id": row["contact_id"],
        "arrival_at": _iso_dt(row.get("arrival_at")),
        "channel": row["channel"] or None,
        "queue": row["queue"] or None,
        "department": row["department"] or None,
        "numerator": int(row["numerator"]),
        "denominator": int(row["denominator"]),
        "customer_id": row.get("customer_id"),
        "agent_id": row.get("agent_id"),
        "wait_seconds": row.get("wait_seconds"),
        "handle_seconds": row.get("handle_seconds"),
        "transfers": row.get("transfers"),
        "csat": row.get("csat"),
        "nps": row.get("nps"),
        "category": r.get("category") or row.get("category") or None,
        "summary": summary(r.get("text")),
        "keywords": list(r.get("keywords") or ()),
        "sentiment": None if r.get("sentiment") is None else round(float(r["sentiment"]), 3),
        "tags": None
        if not r
        else {
            "business_type": r["business_type"],
            "support_system": r["support_system"],
            "bearer_network": r["bearer_network"],
            "category": r["category"],
            "urgency": r["urgency"],
        },
        "routing": None
        if not r
        else {
            "department": r["department"],
            "department_rule": r["department_rule"],
            "category_rule": r["category_rule"],
            "urgency_rule": r["urgency_rule"],
            "reason": r["reason"],
            "routed_at": _iso_dt(r["routed_at"]),
            "repeat_contact": bool(r["repeat_contact"]),
            "previous_contact_id": r["previous_contact_id"],
            "customer_tier": r["customer_tier"] or None,
        },
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _iso_dt(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
