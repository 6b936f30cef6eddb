"""`vocflow broker`, `topics`, `schemas`, `rules`: the local broker, the topics,
the JSON Schema files and the tagging rules.

None of them handles a contact, agent or customer record, so none configures the
pseudonym key (nor needs a writable data dir for it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from vocflow.streams.cli.common import UserError, command_settings, load_rules

if TYPE_CHECKING:
    from vocflow.streams.cli.common import AddCommand, Subparsers


# ---- broker -----------------------------------------------------------------


def cmd_broker(args: argparse.Namespace) -> int:
    from vocflow.streams.tools import broker

    settings = command_settings(args, pseudonymize=False)
    if not settings.uses_local_broker and args.action != "fetch":
        raise UserError(
            f"VOCFLOW_KAFKA_BOOTSTRAP is set ({settings.kafka_bootstrap}); the local broker is "
            "not used. Unset it to manage the local broker."
        )
    local = broker.local_broker(settings)
    try:
        if args.action == "fetch":
            path = broker.fetch(quiet=not args.verbose)
            print(f"Kafka {broker.KAFKA_VERSION} jars in {path}")
        elif args.action == "up":
            started = local.up()
            state = "started" if started else "already running"
            print(
                f"Kafka {broker.KAFKA_VERSION} broker {state} on {local.bootstrap} "
                f"(data: {local.home})"
            )
        elif args.action == "down":
            print("broker stopped" if local.down() else "broker was not running")
        else:
            status = local.status()
            print(json.dumps(status, indent=2))
            return 0 if status["answers"] else 1
    except broker.BrokerError as exc:
        raise UserError(str(exc)) from None
    return 0


def add_broker(sub: Subparsers) -> None:
    p = sub.add_parser(
        "broker",
        help="fetch, start, stop or check the local Kafka broker",
        description="Manage the single-node KRaft broker used for development, "
        "tests and the demo (jars fetched from Maven Central with mvn).",
    )
    p.add_argument("action", choices=["fetch", "up", "down", "status"])
    p.add_argument("-v", "--verbose", action="store_true", help="show Maven's output")
    p.set_defaults(func=cmd_broker)


# ---- topics -----------------------------------------------------------------


def cmd_topics(args: argparse.Namespace) -> int:
    from vocflow.streams.core import topics as T
    from vocflow.streams.core.admin import KafkaUnavailable, describe_topics, ensure_topics

    settings = command_settings(args, pseudonymize=False)
    departments = list(load_rules(settings.rules_path).departments)
    try:
        if args.create:
            specs = T.ALL + tuple(T.department_spec(d) for d in departments)
            created = ensure_topics(settings, specs)
            print(f"created: {', '.join(created) or 'nothing (all exist)'}")
        rows = describe_topics(settings, departments)
    except KafkaUnavailable as exc:
        raise UserError(str(exc)) from None
    for row in rows:
        flag = "" if row["exists"] else "  (missing: run `vocflow topics --create`)"
        compact = " compacted" if row["compacted"] else ""
        print(f"{row['topic']:<32} {row['partitions']:>3}p{compact:<10} {row['description']}{flag}")
    return 0


def add_topics(sub: Subparsers) -> None:
    p = sub.add_parser("topics", help="list (or --create) the topics vocflow uses")
    p.add_argument("--create", action="store_true", help="create missing topics first")
    p.set_defaults(func=cmd_topics)


# ---- schemas ----------------------------------------------------------------


def cmd_schemas(args: argparse.Namespace) -> int:
    from vocflow.schemas.publish import JSON_DIR, render_all, write_all

    if args.check:
        stale = [
            name
            for name, text in render_all().items()
            if not (JSON_DIR / name).exists() or (JSON_DIR / name).read_text("utf-8") != text
        ]
        if stale:
            raise UserError(f"stale JSON Schema files: {', '.join(stale)}; run `vocflow schemas`")
        print("JSON Schema files are up to date")
        return 0
    for path in write_all():
        print(path)
    return 0


def add_schemas(sub: Subparsers) -> None:
    p = sub.add_parser("schemas", help="write the JSON Schema files into schemas/json/")
    p.add_argument("--check", action="store_true", help="only check that they are up to date")
    p.set_defaults(func=cmd_schemas)


# ---- rules ------------------------------------------------------------------


def cmd_rules(args: argparse.Namespace) -> int:
    from vocflow.streams.sources.rules_push import push_rules

    settings = command_settings(args, pseudonymize=False)
    path = args.file or settings.rules_path
    rules = load_rules(path)
    print(
        f"{path}: valid, version {rules.version}, {len(rules.rules)} rules, departments "
        f"{', '.join(rules.departments)}"
    )
    if args.action == "push":
        from vocflow.streams.core.admin import KafkaUnavailable

        try:
            offset = push_rules(settings, path, list(rules.departments))
        except KafkaUnavailable as exc:
            raise UserError(str(exc)) from None
        print(f"pushed to config.rules at offset {offset}; workers apply it within seconds")
    return 0


def add_rules(sub: Subparsers) -> None:
    p = sub.add_parser(
        "rules",
        help="check or push (hot-reload) a tagging rules file",
        description="`check` validates a rules file and reports file:line: reason for the "
        "first problem; `push` validates it, then publishes it to the compacted topic "
        "config.rules, which every worker applies without a restart (an invalid version is "
        "rejected and the old rules stay).",
    )
    p.add_argument("action", choices=["check", "push"])
    p.add_argument("file", type=Path, nargs="?", help="rules YAML (default: the configured one)")
    p.set_defaults(func=cmd_rules)


COMMANDS: dict[str, AddCommand] = {
    "broker": add_broker,
    "topics": add_topics,
    "schemas": add_schemas,
    "rules": add_rules,
}
