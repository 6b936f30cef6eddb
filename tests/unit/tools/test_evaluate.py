"""Evaluation metrics (exact values on a hand-checked set) and the correctness
gate: the shipped rules must route the labelled set with department precision
>= 0.90."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vocflow.streams.stages.rules import load_rules, parse_rules
from vocflow.streams.tools.evaluate import (
    default_prepare,
    evaluate_file,
    format_report,
    load_labelled,
    score,
    sentiment_class,
)

ROOT = Path(__file__).resolve().parents[3]
LABELLED = ROOT / "tests" / "data" / "voc_labelled.jsonl"
DEFAULT_RULES = ROOT / "streams" / "data" / "default_rules.yaml"

MINI_RULES = """\
version: mini
departments: [{id: unassigned}, {id: billing}, {id: network}]
rules:
  - id: bill
    when: {any: [话费]}
    set: {department: billing, business_type: billing}
  - id: net
    when: {any: [信号]}
    set: {department: network, business_type: signal}
"""


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")
    return path


ROWS = [
    # gold billing, predicted billing
    {"text": "话费不对", "channel": "chat", "department": "billing", "sentiment": "negative"},
    # gold billing, predicted network (话费 absent, 信号 present)
    {"text": "信号费用", "channel": "chat", "department": "billing", "sentiment": "neutral"},
    # gold network, predicted network
    {
        "text": "没信号",
        "channel": "phone",
        "department": "network",
        "sentiment": "negative",
        "urgency": "P4",
        "split": "holdout",
    },
    # gold network, predicted unassigned
    {
        "text": "断网了",
        "channel": "app",
        "department": "network",
        "sentiment": "positive",
        "split": "holdout",
    },
]


def test_score_exact_values() -> None:
    s = score("department", ["a", "a", "b", "b"], ["a", "b", "b", "c"])
    assert s.n == 4
    assert s.accuracy == 0.5
    assert s.per_class["a"].precision == 1.0
    assert s.per_class["a"].recall == 0.5
    assert s.per_class["a"].f1 == pytest.approx(2 / 3)
    assert s.per_class["b"].precision == 0.5
    assert s.per_class["b"].recall == 0.5
    assert (s.per_class["c"].precision, s.per_class["c"].recall) == (0.0, 0.0)
    assert (s.per_class["c"].support, s.per_class["c"].predicted) == (0, 1)
    assert s.macro_precision == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert s.macro_recall == pytest.approx(1 / 3)  # (0.5 + 0.5 + 0) / 3
    assert s.confusion == {("a", "b"): 1, ("b", "c"): 1}
    empty = score("x", [], [])
    assert (empty.n, empty.accuracy, empty.macro_precision) == (0, 0.0, 0.0)


def test_sentiment_thresholds() -> None:
    assert sentiment_class(0.11) == "positive"
    assert sentiment_class(0.1) == "neutral"
    assert sentiment_class(-0.1) == "neutral"
    assert sentiment_class(-0.11) == "negative"
    assert sentiment_class(0.3, pos_threshold=0.5) == "neutral"
    assert sentiment_class(-0.3, neg_threshold=-0.2) == "negative"


def test_evaluate_file_exact(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "set.jsonl", ROWS)
    rules = parse_rules(MINI_RULES, "mini.yaml")
    scores = {"话费不对": -0.5, "信号费用": 0.05, "没信号": 0.0, "断网了": 0.5}
    report = evaluate_file(path, rules, sentiment_fn=scores.__getitem__)
    assert report.n == 4
    assert report.rules_version == "mini"
    assert list(report.splits) == ["all", "dev", "holdout"]

    dep = report.splits["all"]["department"]
    assert dep.accuracy == 0.5
    assert dep.per_class["billing"].precision == 1.0
    assert dep.per_class["billing"].recall == 0.5
    assert dep.per_class["network"].precision == 0.5
    assert dep.per_class["network"].recall == 0.5
    assert dep.per_class["unassigned"].precision == 0.0
    assert dep.macro_precision == pytest.approx(0.5)
    assert dep.macro_recall == pytest.approx(1 / 3)

    assert report.splits["dev"]["department"].accuracy == 0.5
    assert report.splits["holdout"]["department"].accuracy == 0.5
    assert report.splits["holdout"]["department"].per_class["network"].precision == 1.0

    # urgency is scored only where labelled; no rule sets it, so P4 (default) is right
    assert report.splits["all"]["urgency"].n == 1
    assert report.splits["all"]["urgency"].accuracy == 1.0
    assert "business_type" not in report.splits["all"]  # not labelled in these rows

    sent = report.splits["all"]["sentiment"]
    # -0.5 negative (right), 0.05 neutral (right), 0.0 neutral (gold negative), 0.5 positive
    assert sent.accuracy == 0.75
    assert sent.per_class["negative"].recall == 0.5
    assert sent.per_class["neutral"].precision == 0.5

    misses = [(m.id, m.field, m.gold, m.predicted, m.rule_id) for m in report.misses]
    assert misses == [
        ("line-2", "department", "billing", "network", "net"),
        ("line-4", "department", "network", "unassigned", "default"),
    ]

    text = format_report(report, max_misses=5)
    assert "all       department           4  0.500  0.500  0.333  0.389" in text
    assert "holdout   department           2  0.500  0.500  0.250  0.333" in text
    assert "line-4 [holdout] department: gold=network got=unassigned by default: 断网了" in text
    assert "(sentiment: positive if score > 0.1, negative if < -0.1)" in text


def test_custom_prepare_is_used(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "set.jsonl", ROWS[3:])
    rules = parse_rules(MINI_RULES, "mini.yaml")
    seen: list[tuple[str, str]] = []

    def prepare(text: str, channel: str):
        seen.append((text, channel))
        return default_prepare(text + "信号", channel)

    report = evaluate_file(path, rules, prepare=prepare)
    assert seen == [("断网了", "app")]
    assert report.splits["all"]["department"].accuracy == 1.0


def test_load_labelled_errors_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "a", "channel": "chat", "department": "billing"}\n{oops\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        load_labelled(p)
    p.write_text('{"text": "a", "channel": "fax", "department": "billing"}\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: unknown channel 'fax'"):
        load_labelled(p)
    p.write_text('\n{"text": "a", "channel": "chat"}\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing department"):
        load_labelled(p)


# ---------------------------------------------------------- the labelled set


def test_labelled_set_is_well_formed() -> None:
    rows = load_labelled(LABELLED)
    assert len(rows) >= 300
    assert len({r.text for r in rows}) == len(rows)
    splits = {r.split for r in rows}
    assert splits == {"dev", "holdout"}
    holdout = sum(r.split == "holdout" for r in rows)
    assert 0.28 <= holdout / len(rows) <= 0.40
    assert {r.labels["department"] for r in rows} == {
        "billing",
        "network",
        "tech_support",
        "sales_retention",
        "complaints",
        "unassigned",
    }
    assert all(r.sentiment in ("positive", "neutral", "negative") for r in rows)


def test_gate_default_rules_department_precision() -> None:
    """Correctness gate: the shipped rules must keep department precision >= 0.90
    (macro over classes) on the whole set and on the held-out block."""
    report = evaluate_file(LABELLED, load_rules(DEFAULT_RULES))
    assert report.splits["all"]["department"].macro_precision >= 0.90
    assert report.splits["holdout"]["department"].macro_precision >= 0.90
    assert report.splits["all"]["department"].accuracy >= 0.90
