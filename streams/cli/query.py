"""`vocflow sql`, `kpis`: read what the pipeline stored or computes.

They read pseudonymized data and compute no pseudonym, so they do not configure
the pseudonym key (nor need a writable data dir for it).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from vocflow.streams.cli.common import UserError, command_settings, open_store

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
    store = open_store(settings)
    try:
        rows = store.query_dicts(args.query)
    except Exception as exc:
        raise UserError(f"query failed: {str(exc).splitlines()[0][:500]}") from None
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, default=str, ensure_ascii=False))
    else:
        for row in rows:
            print("\t".join(str(v) for v in row.values()))
    return 0


def add_sql(sub: Subparsers) -> None:
    p = sub.add_parser(
        "sql",
        help="run a read query on the configured ClickHouse",
        description="Opens the embedded ClickHouse directly, so it works only "
        "while no worker or sink holds it.",
    )
    p.add_argument("query", nargs="?")
    p.add_argument("--json", action="store_true", help="print rows as a JSON array")
    p.add_argument(
        "--kpi",
        metavar="NAME",
        help="print the named KPI query NAME of sinks/kpi/kpis.sql (interval, fcr, waiting, "
        "backlog, sla_breaches) with its {parameters}, instead of running a query",
    )
    p.set_defaults(func=cmd_sql)


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
}
