"""The department model's runtime (numpy, no scikit-learn) against scikit-learn,
the shipped model on fixed texts, and how rules and model share the decision."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from vocflow.streams.stages.deptcorpus import prepare, shipped_corpus, split_of
from vocflow.streams.stages.deptmodel import (
    ModelFileError,
    default_model,
    features,
    format_model,
    parse_model,
)
from vocflow.streams.stages.enrich import enrich_text_with_tokens
from vocflow.streams.stages.routing import is_triage, route
from vocflow.streams.stages.rules import parse_rules
from vocflow.streams.stages.tagging import ModelVote, tag
from vocflow.streams.tools.train_dept import export, fit, sklearn_proba

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

RULES = parse_rules(
    """\
version: t1
departments: [{id: unassigned}, {id: billing}, {id: network}, {id: complaints}]
rules:
  - id: escalation.regulator
    priority: 1000
    when: {any: [工信部]}
    set: {department: complaints}
  - id: billing.words
    priority: 450
    when: {any: [话费]}
    set: {department: billing}
"""
)


def test_runtime_equals_sklearn_predict_proba_on_the_dev_split() -> None:
    corpus = shipped_corpus()
    train = prepare([r for r in corpus if split_of(r.id) == "train"])
    dev = prepare([r for r in corpus if split_of(r.id) == "dev"])
    assert len(dev.rows) >= 50
    vec, clf = fit(train.feats, [r.department for r in train.rows], 30.0)
    runtime = export(vec, clf, "t", 0.5, {})  # through the weights file text
    reference = sklearn_proba(vec, clf, dev.feats)
    mine = runtime.predict_proba(dev.feats)
    assert mine.shape == reference.shape
    assert float(np.max(np.abs(mine - reference))) < 1e-6
    assert list(runtime.classes) == [str(c) for c in clf.classes_]


def _dept(text: str) -> str:
    contact, tokens = enrich_text_with_tokens(text, "chat")
    (vote,) = default_model().predict([features(contact.event.text or "", tokens)])
    return vote.department


def test_shipped_model_on_fixed_texts() -> None:
    assert _dept("家里宽带从昨晚开始一直断网，光猫红灯闪") == "network"
    assert _dept("请问怎么修改家里wifi的名字和密码？") == "tech_support"
    assert _dept("这个月话费多扣了50块，帮我退一下") == "billing"
    assert _dept("我想把套餐换成129元的5G套餐，有什么优惠吗") == "sales_retention"


def test_features_reuse_tokens_and_fold_digits() -> None:
    f = features("话费 58元", ["话费", "58", "元"])
    assert {"w:话费", "w:00", "b:话费|00", "b:00|元", "c:话", "c:话费", "c:00元"} <= f
    assert "c:58" not in f


def _vote(*ranked: tuple[str, float], threshold: float = 0.5) -> ModelVote:
    return ModelVote("m1", ranked, threshold)


def _contact(text: str):  # -> EnrichedContact
    return enrich_text_with_tokens(text, "chat")[0]


def test_a_pinning_rule_wins_over_the_model() -> None:
    tags = tag(
        _contact("话费乱扣，我要去工信部投诉"), RULES, _vote(("billing", 0.99), ("network", 0.01))
    )
    assert (tags.department.value, tags.department.rule_id) == (
        "complaints",
        "escalation.regulator",
    )


def test_the_model_decides_below_the_pin_priority() -> None:
    tags = tag(_contact("话费的事"), RULES, _vote(("network", 0.8), ("billing", 0.2)))
    assert (tags.department.value, tags.department.rule_id) == ("network", "model:m1")
    assert tag(_contact("话费的事"), RULES).department.rule_id == "billing.words"


def test_below_the_threshold_goes_to_triage_with_two_candidates() -> None:
    contact = _contact("话费的事")
    vote = _vote(("network", 0.45), ("billing", 0.40), ("complaints", 0.15))
    tags = tag(contact, RULES, vote)
    assert (tags.department.value, tags.department.rule_id) == ("unassigned", "triage:m1")
    envelope = route(contact, tags, RULES, NOW, vote=vote)
    assert is_triage(envelope)
    assert envelope.decision_source == "triage:m1"
    assert envelope.model_version == "m1"
    assert envelope.probability == 0.45
    assert [(c.department, c.probability) for c in envelope.candidates or []] == [
        ("network", 0.45),
        ("billing", 0.40),
    ]
    assert "model m1 unsure (best network 0.45, billing 0.40 < 0.50): triage" in envelope.reason


def test_envelope_records_rule_and_model_sources() -> None:
    contact = _contact("话费的事")
    vote = _vote(("billing", 0.9), ("network", 0.1))
    tags = tag(contact, RULES, vote)
    env = route(contact, tags, RULES, NOW, vote=vote)
    assert (env.department, env.decision_source, env.probability, env.candidates) == (
        "billing",
        "model:m1",
        0.9,
        None,
    )
    plain = route(contact, tag(contact, RULES), RULES, NOW)
    assert (plain.decision_source, plain.model_version, plain.probability) == (
        "rule:billing.words",
        None,
        None,
    )


def test_model_file_round_trip_and_errors() -> None:
    text = format_model("v1", ["a", "b"], 0.5, [0.1, -0.1], ["c:x"], [1.5], np.array([[1.0, -1.0]]))
    model = parse_model(text, "m.txt")
    assert (model.version, model.classes, model.threshold, model.n_features) == (
        "v1",
        ("a", "b"),
        0.5,
        1,
    )
    (p,) = model.predict_proba([{"c:x"}])
    assert p[0] == pytest.approx(1 / (1 + np.exp(-2.2)), abs=1e-12)
    with pytest.raises(ModelFileError, match=r"^m.txt:5: expected feature, idf and 2 weights$"):
        parse_model(text.replace("\t-1\n", "\n"), "m.txt")
    with pytest.raises(ModelFileError, match=r"^m.txt: no 'threshold' line$"):
        parse_model(text.replace("threshold\t0.5\n", ""), "m.txt")
