"""`vocflow eval`'s 3-class sentiment: the enriched contact's label, the
confusion matrix and per-class recall in the report (exact values)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vocflow.schemas import SentimentClass
from vocflow.streams.stages.rules import parse_rules
from vocflow.streams.tools.evaluate import default_prepare, evaluate_file, format_report

MINI_RULES = """\
version: mini
departments: [{id: unassigned}, {id: billing}]
rules:
  - id: bill
    when: {any: [话费]}
    set: {department: billing, business_type: billing}
"""

# text -> the label the fake enrichment gives; gold labels are in ROWS
GIVEN = {
    "a": SentimentClass.negative,
    "b": SentimentClass.neutral,
    "c": SentimentClass.negative,  # gold neutral: an inquiry called negative
    "d": SentimentClass.positive,
    "e": None,  # no label (no text analysed): counts as neutral
}
ROWS = [
    ("a", "negative", "dev"),
    ("b", "neutral", "dev"),
    ("c", "neutral", "holdout"),
    ("d", "positive", "holdout"),
    ("e", "negative", "holdout"),
]


def prepare(text: str, channel: str):
    contact = default_prepare(text, channel)
    analysis = contact.analysis.model_copy(update={"sentiment_class": GIVEN[text]})
    return contact.model_copy(update={"analysis": analysis})


def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "set.jsonl"
    lines = [
        json.dumps(
            {"text": t, "channel": "chat", "department": "billing", "sentiment": s, "split": sp}
        )
        for t, s, sp in ROWS
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def test_contact_label_scored_as_three_classes(tmp_path: Path) -> None:
    report = evaluate_file(
        labelled(tmp_path),
        parse_rules(MINI_RULES, "m.yaml"),
        prepare=prepare,
        contact_sentiment=True,
    )
    s = report.splits["all"]["sentiment"]
    assert s.n == 5
    assert s.accuracy == 0.6
    assert s.per_class["neutral"].recall == 0.5
    assert s.per_class["neutral"].precision == 0.5  # b right, e wrong
    assert s.per_class["negative"].recall == 0.5
    assert s.confusion == {("neutral", "negative"): 1, ("negative", "neutral"): 1}
    assert report.splits["holdout"]["sentiment"].accuracy == pytest.approx(1 / 3)

    text = format_report(report, per_class=False)
    assert "(sentiment: the enriched contact's 3-class label)" in text
    assert (
        "sentiment all (5): accuracy 0.600; recall positive 1.000, neutral 0.500, "
        "negative 0.500" in text
    )
    lines = text.splitlines()
    i = lines.index(
        "sentiment dev (2): accuracy 1.000; recall positive -, neutral 1.000, negative 1.000"
    )
    assert lines[i + 1] == "  gold / predicted   positive  neutral negative"
    assert lines[i + 2] == "  positive                  0        0        0"
    assert lines[i + 3] == "  neutral                   0        1        0"
    assert lines[i + 4] == "  negative                  0        0        1"
    j = lines.index(
        "sentiment all (5): accuracy 0.600; recall positive 1.000, neutral 0.500, negative 0.500"
    )
    assert lines[j + 2 : j + 5] == [
        "  positive                  1        0        0",
        "  neutral                   0        1        1",
        "  negative                  0        1        1",
    ]


def test_threshold_scorer_still_works_and_is_named(tmp_path: Path) -> None:
    scores = {"a": -0.5, "b": 0.0, "c": -0.2, "d": 0.9, "e": 0.05}
    report = evaluate_file(
        labelled(tmp_path),
        parse_rules(MINI_RULES, "m.yaml"),
        sentiment_fn=scores.__getitem__,
        pos_threshold=0.1,
        neg_threshold=-0.3,
    )
    assert report.splits["all"]["sentiment"].accuracy == 0.8  # only e (0.05: neutral) is wrong
    assert "(sentiment: positive if score > 0.1, negative if < -0.3)" in format_report(report)


def test_scorer_and_contact_label_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        evaluate_file(
            labelled(tmp_path),
            parse_rules(MINI_RULES, "m.yaml"),
            sentiment_fn=lambda t: 0.0,
            contact_sentiment=True,
        )


def test_no_sentiment_section_without_a_source(tmp_path: Path) -> None:
    report = evaluate_file(labelled(tmp_path), parse_rules(MINI_RULES, "m.yaml"))
    assert "sentiment" not in report.splits["all"]
    assert "gold / predicted" not in format_report(report)
