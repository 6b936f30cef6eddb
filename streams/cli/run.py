"""`vocflow worker`, `sink`, `ingest`, `notify`, `demo`: the long-running processes."""

from __future__ import annotations

import argparse
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vocflow.streams.cli.common import (
    UserError,
    command_settings,
    load_rules,
    open_store,
    prepare_kafka,
)

if TYPE_CHECKING:
    from vocflow.streams.cli.common import AddCommand, Subparsers

WEB_PORT_ADVICE = " (another worker?); set VOCFLOW_WEB_PORT or --web-port"


def check_port_free(host: str, port: int, what: str, advice: str) -> None:
    """UserError `<what> port <host>:<port> is in use<advice>` unless it can be bound."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise UserError(f"{what} port {host}:{port} is in use{advice}") from None


# ---- worker / sink ----------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
    from vocflow.streams.worker.app import create_app

    settings = command_settings(args)
    check_port_free(settings.web_host, settings.web_port, "web", WEB_PORT_ADVICE)
    rules = load_rules(settings.rules_path)
    prepare_kafka(settings, list(rules.departments))
    sink = None
    if settings.sink_enabled:
        sink = ClickHouseSink(settings, store=open_store(settings))
    app = create_app(settings, sink=sink, rules=rules)
    print(
        f"vocflow worker: kafka {settings.bootstrap_servers}, metrics {settings.web_url}/metrics, "
        f"clickhouse {settings.clickhouse_dsn if sink else 'off (run `vocflow sink`)'}",
        flush=True,
    )
    return run_app(app)


def run_app(app: Any) -> int:
    """Run a worker or sink app (a `VocflowApp`) until SIGTERM/SIGINT."""
    import faust
    import uvloop

    # Measured on the end-to-end bench: +35 % events/s over asyncio's own loop
    # (the worker spends much of its time in socket writes and callbacks).
    uvloop.install()
    worker = faust.Worker(app, loglevel=app.settings_.log_level.upper(), quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG so that every
    # library formats its debug records: it cost most of the CPU in profiles.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


def add_worker(sub: Subparsers) -> None:
    p = sub.add_parser(
        "worker",
        help="run the Faust agents (and by default the ClickHouse sink)",
        description="Consume contacts.raw, validate, publish contacts.events, "
        "dead-letter bad input, write ClickHouse, serve /metrics and /api.",
    )
    p.add_argument("--web-port", type=int, help="port of /metrics and /api (default 6066)")
    p.set_defaults(func=cmd_worker)


def cmd_sink(args: argparse.Namespace) -> int:
    from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
    from vocflow.streams.worker.app import create_sink_app

    settings = command_settings(args)
    check_port_free(settings.web_host, settings.web_port, "web", WEB_PORT_ADVICE)
    rules = load_rules(settings.rules_path)
    prepare_kafka(settings, list(rules.departments))
    sink = ClickHouseSink(settings, store=open_store(settings))
    app = create_sink_app(settings, sink, rules)
    print(
        f"vocflow sink: {settings.bootstrap_servers} -> {settings.clickhouse_dsn}; "
        f"metrics {settings.web_url}/metrics, KPIs {settings.web_url}/api/kpis",
        flush=True,
    )
    return run_app(app)


def add_sink(sub: Subparsers) -> None:
    p = sub.add_parser(
        "sink",
        help="run the Kafka -> ClickHouse sink, the KPIs and the API (no stages)",
        description="Own the ClickHouse connection in a process of its own, with what "
        "needs it: KPI round, surge detector, backlog poller, /metrics, /api/kpis, "
        "/api/contacts, /api/sql, /wallboard; set VOCFLOW_SINK_ENABLED=false on the workers.",
    )
    p.add_argument("--web-port", type=int, help="port of /metrics and /api (default 6066)")
    p.set_defaults(func=cmd_sink)


# ---- demo -------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from vocflow.streams.tools.demo import run_demo

    settings = command_settings(args)
    return run_demo(
        settings,
        duration=args.duration,
        speedup=args.speedup,
        malformed_ratio=args.malformed,
        keep_broker=args.keep_broker,
        config_file=args.config,
        seed=args.seed,
    )


def add_demo(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="broker + worker + a simulated day of live traffic, then a summary",
        description="Start the local broker (unless VOCFLOW_KAFKA_BOOTSTRAP is set), a worker, and "
        "the contact-center simulator: a working day from 08:00 with an outage burst in "
        "杭州 half an hour in, stamped from now in the KPI time zone (so the wallboard's "
        "15m, 60m and today figures fill within the first minute at any hour) and "
        "replayed --speedup times faster than real time. Prints the wallboard, KPI and "
        "metrics URLs; stops after --duration seconds or Ctrl-C and says whether "
        "anything was lost (produced = valid + dead-lettered; this run's valid events "
        "found in ClickHouse by distinct id).",
    )
    p.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)"
    )
    p.add_argument(
        "--speedup",
        type=float,
        default=60.0,
        help="simulated seconds per wall second (default 60: an hour a minute)",
    )
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    p.add_argument(
        "--malformed",
        type=float,
        default=0.01,
        help="share of deliberately broken input (default 0.01)",
    )
    p.add_argument("--keep-broker", action="store_true", help="leave the broker running at the end")
    p.add_argument("--web-port", type=int, help="worker web port (default 6066)")
    p.set_defaults(func=cmd_demo)


# ---- ingest -----------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    from vocflow.streams.sources.ingest import (
        IngestStartError,
        SourcesError,
        load_sources,
        run_ingest,
    )

    settings = command_settings(
        args,
        setup_logging=True,
        ingest_host=args.host,
        ingest_port=args.port,
        ingest_sources_file=args.sources,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the admin client's connection chatter
    if settings.ingest_sources_file is None:
        raise UserError(
            "no sources file: give --sources FILE or set VOCFLOW_INGEST_SOURCES_FILE (YAML: "
            "source -> secret and channels; see docs/ingest.md)"
        )
    try:
        sources = load_sources(settings.ingest_sources_file)
    except SourcesError as exc:
        raise UserError(str(exc)) from None
    check_port_free(
        settings.ingest_host, settings.ingest_port, "ingest", "; set VOCFLOW_INGEST_PORT or --port"
    )
    prepare_kafka(settings)
    try:
        run_ingest(settings, sources)
    except IngestStartError as exc:
        raise UserError(str(exc)) from None
    return 0


def add_ingest(sub: Subparsers) -> None:
    p = sub.add_parser(
        "ingest",
        help="HTTP endpoint for channel systems: signed POSTs -> contacts.raw",
        description="Serve POST /v1/events/<channel> (channel = an adapter: cti, freeswitch, "
        "chat, email, wechat, sms, survey), HMAC-signed per source; answer 202 only after "
        "Kafka acknowledged every event, 503 + Retry-After when Kafka is slow or down. "
        "/healthz and /metrics on the same port. See docs/ingest.md.",
    )
    p.add_argument("--sources", type=Path, help="sources YAML (or VOCFLOW_INGEST_SOURCES_FILE)")
    p.add_argument("--host", help="listen address (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, help="listen port (default 6070)")
    p.set_defaults(func=cmd_ingest)


# ---- notify -----------------------------------------------------------------


def cmd_notify(args: argparse.Namespace) -> int:
    from vocflow.streams.notify.service import (
        NotifyConfigError,
        NotifyStartError,
        default_outbox_path,
        load_notify_config,
        run_notify,
    )

    settings = command_settings(
        args,
        # Alerts carry no contact, agent or customer record; `notify --check` needs no data dir.
        pseudonymize=False,
        setup_logging=True,
        kafka_bootstrap=None,  # talks to no Kafka: --bootstrap is not applied
        notify_host=args.host,
        notify_port=args.port,
        notify_routes_file=args.routes,
    )
    if settings.notify_routes_file is None:
        raise UserError(
            "no routing file: give --routes FILE or set VOCFLOW_NOTIFY_ROUTES_FILE (YAML: "
            "receivers and routes; example deploy/alertmanager/notify.yaml, see docs/alerting.md)"
        )
    try:
        config = load_notify_config(settings.notify_routes_file)
    except NotifyConfigError as exc:
        raise UserError(str(exc)) from None
    if args.check:
        kinds = ", ".join(f"{r.name} ({r.type})" for r in config.receivers.values())
        print(
            f"{settings.notify_routes_file}: OK: {len(config.receivers)} receiver(s): {kinds}; "
            f"{len(config.routes)} route(s); language {config.language}"
        )
        return 0
    check_port_free(
        settings.notify_host, settings.notify_port, "notify", "; set VOCFLOW_NOTIFY_PORT or --port"
    )
    try:
        run_notify(settings, config)
    except NotifyStartError as exc:
        raise UserError(f"{exc} (outbox: {default_outbox_path(settings)})") from None
    return 0


def add_notify(sub: Subparsers) -> None:
    p = sub.add_parser(
        "notify",
        help="deliver Alertmanager alerts to WeCom / DingTalk / Feishu / Slack / webhooks",
        description="Serve POST /alertmanager[/<department>] (Alertmanager webhook), route each "
        "alert by its labels to the receivers of the routing file, and deliver it rendered in "
        "Chinese (or English): what, where, value vs threshold, since when, runbook. Alerts are "
        "stored in an outbox (<data dir>/notify/outbox.sqlite3) before Alertmanager gets its "
        "200, and retried with backoff until the chat tool accepts them. /healthz and /metrics "
        "on the same port. See docs/alerting.md.",
    )
    p.add_argument("--routes", type=Path, help="routing YAML (or VOCFLOW_NOTIFY_ROUTES_FILE)")
    p.add_argument("--host", help="listen address (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, help="listen port (default 6071)")
    p.add_argument("--check", action="store_true", help="only validate the routing file and exit")
    p.set_defaults(func=cmd_notify)


COMMANDS: dict[str, AddCommand] = {
    "worker": add_worker,
    "sink": add_sink,
    "demo": add_demo,
    "ingest": add_ingest,
    "notify": add_notify,
}
