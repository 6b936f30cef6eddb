"""`vocflow` command line: one module per group of commands.

- `admin`: broker, topics, schemas, rules
- `run`: worker, sink, demo, ingest, notify (the long-running processes)
- `data`: simulate, replay, shifts (publish data to Kafka)
- `query`: sql, kpis
- `tools`: eval, bench
- `common`: what they share (settings, pseudonym key, Kafka, ClickHouse)

Every command reads settings the same way (defaults < --config/VOCFLOW_CONFIG
< VOCFLOW_* env < options), configures the pseudonym key from them if it handles
records, and turns errors a user can cause into one clear line on stderr and
exit code 2, never a traceback. Heavy modules are imported by the commands, so
that `vocflow --help` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from vocflow.streams.cli import admin, data, query, run, tools
from vocflow.streams.cli.common import EXIT_USAGE, UserError
from vocflow.streams.core.settings import ConfigError

# The commands as `vocflow --help` lists them (across the groups).
COMMAND_ORDER = (
    "broker",
    "worker",
    "sink",
    "topics",
    "schemas",
    "sql",
    "demo",
    "simulate",
    "kpis",
    "contacts",
    "rules",
    "shifts",
    "eval",
    "ingest",
    "replay",
    "notify",
    "bench",
)
COMMANDS = admin.COMMANDS | run.COMMANDS | data.COMMANDS | query.COMMANDS | tools.COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vocflow",
        description="Real-time contact-center event pipeline: channel events -> Kafka -> "
        "Faust agents -> department topics, ClickHouse and Prometheus.",
        epilog="Settings come from defaults, then --config FILE (YAML) or $VOCFLOW_CONFIG, then "
        "VOCFLOW_* environment variables (e.g. VOCFLOW_KAFKA_BOOTSTRAP, VOCFLOW_DATA_DIR, "
        "VOCFLOW_CLICKHOUSE_URL), then options. See docs/operations.md; a secured Kafka "
        "(VOCFLOW_KAFKA_SECURITY_PROTOCOL, ...; secrets also from VOCFLOW_*_FILE): "
        "docs/security.md.",
    )
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--data-dir", type=Path, help="data directory (default .vocflow)")
    parser.add_argument("--bootstrap", help="Kafka host:port list; default: the local broker")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_ORDER:
        COMMANDS[name](sub)
    return parser


def main(argv: list[str] | None = None, exit: Callable[[int], None] = sys.exit) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except (UserError, ConfigError) as exc:
        print(f"vocflow: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `vocflow ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    exit(code)
