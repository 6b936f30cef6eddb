"""`vocflow simulate`, `replay`, `shifts`: publish simulated, recorded or scheduled
data to Kafka."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vocflow.streams.cli.common import UserError, command_settings, prepare_kafka

if TYPE_CHECKING:
    from vocflow.streams.cli.common import AddCommand, Subparsers
    from vocflow.streams.tools.simulator import SimConfig


# ---- simulate ---------------------------------------------------------------


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

    settings = command_settings(args)
    try:
        config = simulate_config(args, settings.timezone, datetime.now(UTC))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    prepare_kafka(settings)
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


def add_simulate(sub: Subparsers) -> None:
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


# ---- replay -----------------------------------------------------------------


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

    settings = command_settings(args, setup_logging=True)
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
    prepare_kafka(settings)
    checkpoint_dir = args.checkpoint_dir or settings.data_dir / "replay"

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    topic = T.Topics(settings).name(T.RAW)
    try:
        with Publisher(settings, settings.topic_prefix) as publisher:
            replayer = Replayer(
                publisher,
                settings,
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


def add_replay(sub: Subparsers) -> None:
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


# ---- shifts -----------------------------------------------------------------


def cmd_shifts(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from tqdm import tqdm

    from vocflow.streams.core import topics as T
    from vocflow.streams.core.admin import KafkaUnavailable
    from vocflow.streams.sources.shifts import ShiftFileError, publish_shifts, read_shifts

    settings = command_settings(args)
    try:
        loaded = read_shifts(args.files, settings.timezone, datetime.now(UTC))
    except ShiftFileError as exc:
        raise UserError(str(exc)) from None
    prepare_kafka(settings)
    topic = T.Topics(settings).name(T.SHIFTS)
    with tqdm(total=len(loaded), unit="seg", desc="publish", disable=None, file=sys.stderr) as bar:
        try:
            publish_shifts(settings, [item.record for item in loaded], on_acked=bar.update)
        except KafkaUnavailable as exc:
            raise UserError(str(exc)) from None
    agents = len({item.record.agent_id for item in loaded})
    print(f"published {len(loaded)} shift segment(s) of {agents} agent(s) to {topic}")
    return 0


def add_shifts(sub: Subparsers) -> None:
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


COMMANDS: dict[str, AddCommand] = {
    "simulate": add_simulate,
    "replay": add_replay,
    "shifts": add_shifts,
}
