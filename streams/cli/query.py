"""`vocflow sql`, `kpis`, `contacts`: read what the pipeline stored or computes.

They read pseudonymized data and compute no pseudonym, so they do not configure
the pseudonym key (nor need a writable data dir for it).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import unicodedata
from typing import TYPE_CHECKING, Any

from vocflow.streams.cli.common import UserError, command_settings, open_store
from vocflow.streams.core.settings import Settings

if TYPE_CHECKING:
    from vocflow.streams.cli.common import AddCommand, Subparsers


# ---- sql --------------------------------------------------------------------


def cmd_sql(args: argparse.Namespace) -> int:
    settings = command_settings(args, pseudonymize=False)
    if args.kpi is not None:
        from vocflow.sinks.kpi import queries as kpi_queries

        names = [n for n in kpi_queries.named_queries() if n not in kpi_queries.interval_kpis()]
        if args.kpi not in names:
            raise UserError(f"no named KPI query '{args.kpi}'; one of: {', '.join(names)}")
        print(kpi_queries.sql(args.kpi, settings.clickhouse_database) + ";")
        return 0
    if args.query is None:
        raise UserError("give a query, or --kpi NAME to print a named KPI query")
    from vocflow.sinks.clickhouse.readonly import check_select
    from vocflow.sinks.clickhouse.store import embedded_path_locked

    try:
        check_select(args.query)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if embedded_path_locked(settings.clickhouse_dsn):
        # The worker (or `vocflow sink`) holds the files: ask it.
        body = api_request(settings, "/api/sql", data=args.query.encode(), held=True)
        result = json.loads(body)
        columns, rows, truncated = result["columns"], result["rows"], result["truncated"]
    else:
        columns, rows, truncated = _sql_directly(settings, args.query)
    print(render_rows(columns, rows, "json" if args.json else "csv" if args.csv else "table"))
    if truncated and not (args.json or args.csv):
        print(f"(first {len(rows)} rows; VOCFLOW_SQL_MAX_ROWS)")
    return 0


def _sql_directly(settings: Settings, query: str) -> tuple[list[str], list[list[Any]], bool]:
    """No process holds the embedded files (or it is a server): open them here,
    with the same read-only checks and limits as /api/sql."""
    from vocflow.sinks.clickhouse.readonly import ReadOnlySql, SqlBusy, SqlFailed, SqlRefused

    store = open_store(settings)
    runner = ReadOnlySql(store, settings.sql_max_rows, settings.sql_max_seconds)
    try:
        result = runner.run(query)
    except (SqlRefused, SqlFailed, SqlBusy) as exc:
        raise UserError(str(exc)) from None
    finally:
        runner.close()
        store.close()
    return result.columns, result.rows, result.truncated


def add_sql(sub: Subparsers) -> None:
    p = sub.add_parser(
        "sql",
        help="run a read-only SELECT on the stored data, live or not",
        description="While a worker holds the embedded ClickHouse, the query goes to its "
        "/api/sql; otherwise the files (or the ClickHouse server) are opened here. Either "
        "way: one SELECT, read-only, at most VOCFLOW_SQL_MAX_ROWS rows and "
        "VOCFLOW_SQL_MAX_SECONDS seconds.",
    )
    p.add_argument("query", nargs="?")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print rows as a JSON array")
    out.add_argument("--csv", action="store_true", help="print rows as CSV with a header")
    p.add_argument("--web-port", type=int, help="worker web port (default 6066)")
    p.add_argument(
        "--kpi",
        metavar="NAME",
        help="print the named KPI query NAME of sinks/kpi/kpis.sql (interval, fcr, waiting, "
        "backlog, sla_breaches) with its {parameters}, instead of running a query",
    )
    p.set_defaults(func=cmd_sql)


# ---- contacts ---------------------------------------------------------------


def cmd_contacts(args: argparse.Namespace) -> int:
    from urllib.parse import urlencode

    settings = command_settings(args, pseudonymize=False)
    given = {
        "kpi": args.kpi,
        "part": args.part,
        "interval": args.interval,
        "queue": args.queue,
        "channel": args.channel,
        "department": args.department,
        "limit": args.limit,
        "offset": args.offset,
        "format": "csv" if args.csv else None,
    }
    query = urlencode({k: v for k, v in given.items() if v is not None})
    body = api_request(settings, f"/api/contacts?{query}")
    if args.csv:
        print(body.decode("utf-8").removeprefix("\ufeff"), end="")
    elif args.json:
        print(json.dumps(json.loads(body), ensure_ascii=False, indent=2))
    else:
        print(render_contacts(json.loads(body)))
    return 0


def add_contacts(sub: Subparsers) -> None:
    p = sub.add_parser(
        "contacts",
        help="the contacts behind a KPI number, from the worker",
        description="Lists the contacts behind a KPI (its numerator, denominator or misses) "
        "with their masked text summary, tags and routing, from the worker's /api/contacts; "
        "named lists: abandoned, answered_late, sl_missed, repeat, waiting, backlog, ... "
        "(docs/drilldown.md); or any KPI name with --part.",
    )
    p.add_argument("--kpi", required=True, help="a named list (abandoned, ...) or a KPI name")
    p.add_argument("--part", choices=["numerator", "denominator", "missed"])
    p.add_argument("--interval", default="15m", help="15m, 60m, today or START..END (ISO)")
    p.add_argument("--queue")
    p.add_argument("--channel")
    p.add_argument("--department")
    p.add_argument("--limit", type=int)
    p.add_argument("--offset", type=int)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the /api/contacts document")
    out.add_argument("--csv", action="store_true", help="print the page as CSV")
    p.add_argument("--web-port", type=int, help="worker web port (default 6066)")
    p.set_defaults(func=cmd_contacts)


def render_contacts(doc: dict[str, Any]) -> str:
    """A header with the KPI beside the list's length, then one line per contact."""
    totals = doc["kpi_totals"]
    value = totals["value"]
    shown = "-" if value is None else f"{value:.4g}"
    iv = doc["interval"]
    when = f"{iv['label']}" if iv else f"now ({doc['at']})"
    where = " ".join(f"{k}={v}" for k, v in doc["filters"].items()) or "all"
    head = (
        f"{doc['list']}: {doc['part']} of {doc['kpi']}, {when}, {where}: "
        f"{doc['total']} contacts; {doc['kpi']} = {totals['numerator']}/"
        f"{totals['denominator']} = {shown}"
    )
    rows = [
        [
            c["arrival_at"] or "",
            c["contact_id"],
            c["queue"] or "",
            c["channel"] or "",
            (c["routing"] or {}).get("department") or c["department"] or "",
            (c["tags"] or {}).get("urgency", ""),
            (c["summary"] or "")[:40],
        ]
        for c in doc["contacts"]
    ]
    columns = ["arrival_at", "contact", "queue", "channel", "department", "urgency", "summary"]
    lines = [head, render_rows(columns, rows, "table")]
    if doc["next_offset"] is not None:
        lines.append(f"(more: --offset {doc['next_offset']})")
    return "\n".join(lines)


def render_rows(columns: list[str], rows: list[list[Any]], style: str) -> str:
    """Rows as an aligned table (CJK counts two columns), JSON objects or CSV."""
    if style == "json":
        return json.dumps(
            [dict(zip(columns, r, strict=True)) for r in rows], default=str, ensure_ascii=False
        )
    if style == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in r] for r in rows)
        return out.getvalue().rstrip("\n")
    cells = [columns, *[["NULL" if v is None else str(v) for v in r] for r in rows]]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def api_request(
    settings: Settings, path: str, data: bytes | None = None, *, held: bool = False
) -> bytes:
    """The worker's answer to ``path`` (POST ``data`` if given), with the API token if
    one is set; its error message, or where to look, as a UserError."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "text/plain; charset=utf-8"} if data is not None else {}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    url = f"{settings.web_url}{path}"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=settings.sql_max_seconds + 30) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            reason = exc.reason
        raise UserError(f"{url.split('?')[0]} answered {exc.code}: {reason}") from None
    except (urllib.error.URLError, OSError):
        held_by = (
            f"the embedded ClickHouse at {settings.clickhouse_dsn} is held by another process and "
            if held
            else ""
        )
        raise UserError(
            f"{held_by}no worker answered at {settings.web_url}; start `vocflow worker` "
            "(a `vocflow sink` alone serves no API) or set VOCFLOW_WEB_PORT / --web-port"
        ) from None


# ---- kpis -------------------------------------------------------------------


def cmd_kpis(args: argparse.Namespace) -> int:
    import time
    import urllib.error

    from pydantic import ValidationError

    from vocflow.schemas.api import KpiDocument
    from vocflow.streams.cli.kpi_table import render_kpis
    from vocflow.streams.tools.demo import fetch_json

    settings = command_settings(args, pseudonymize=False)
    query = f"?interval={args.interval}"
    url = f"{settings.web_url}/api/kpis{query}"
    while True:
        try:
            doc = fetch_json(url)
        except urllib.error.HTTPError as exc:
            raise UserError(
                f"{url} answered {exc.code}: KPIs are served by the worker that owns "
                "ClickHouse; wait a few seconds after start-up"
            ) from None
        except (urllib.error.URLError, OSError):
            raise UserError(
                f"no worker answered at {settings.web_url}; start `vocflow worker` "
                "or set VOCFLOW_WEB_PORT"
            ) from None
        if args.json:
            print(json.dumps(doc, ensure_ascii=False, indent=2))
            return 0
        try:
            kpis = KpiDocument.model_validate(doc)
        except ValidationError as exc:
            raise UserError(f"{url} answered a document this vocflow cannot read: {exc}") from None
        if not args.once:
            print("\033[2J\033[H", end="")
        print(render_kpis(kpis, args.interval, args.by))
        if args.once:
            return 0
        time.sleep(args.refresh)


def add_kpis(sub: Subparsers) -> None:
    p = sub.add_parser(
        "kpis",
        help="live KPI table from the worker (or --json)",
        description="Service level, ASA, abandonment, AHT, CSAT, NPS, FCR, queue depth and "
        "oldest waiting contact per queue, channel or department, refreshed live from the "
        "worker's /api/kpis (DOMAIN.md formulas; see docs/kpis.md).",
    )
    p.add_argument("--interval", choices=["15m", "60m", "today"], default="15m")
    p.add_argument("--by", choices=["queue", "channel", "department"], default="queue")
    p.add_argument("--json", action="store_true", help="print the /api/kpis document once")
    p.add_argument("--once", action="store_true", help="print the table once and exit")
    p.add_argument("--refresh", type=float, default=5.0, help="seconds between refreshes")
    p.add_argument("--web-port", type=int, help="worker web port (default 6066)")
    p.set_defaults(func=cmd_kpis)


COMMANDS: dict[str, AddCommand] = {
    "sql": add_sql,
    "kpis": add_kpis,
    "contacts": add_contacts,
}
