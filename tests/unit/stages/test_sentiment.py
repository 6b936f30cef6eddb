"""Sentiment: negation, degree, contact-center phrases, range."""

from __future__ import annotations

import pytest

from vocflow.streams.stages.sentiment import rule_score, sentiment_score
from vocflow.streams.stages.textanalysis import tokenize
from vocflow.streams.tools.sentiment_eval import CONTACT_CHECKS, evaluate_contact_checks


def s(text: str) -> float:
    return sentiment_score(text)


def test_negation() -> None:
    assert s("满意") > 0.5
    assert s("不满意") < -0.3
    assert s("我对处理结果不满意") < -0.3
    assert s("不是很好") < 0
    assert s("不是很好") > s("不好")  # negated degree is milder


def test_negated_degree_of_negative_is_mildly_positive() -> None:
    assert 0 < rule_score(tokenize("不太差")) < -rule_score(tokenize("差"))


def test_double_negation_non_negative() -> None:
    assert s("不是不满意") >= 0
    assert s("不是不满意") < s("满意")


def test_degree_words() -> None:
    assert s("非常满意") > s("满意") > s("有点满意") > 0
    assert s("特别不满意") < s("不满意") < s("有点不满意") < 0


@pytest.mark.parametrize(
    "text", ["我要投诉", "申请退款", "处理太慢了", "问题一直没解决", "我要打12315投诉到工信部"]
)
def test_contact_phrases_negative(text: str) -> None:
    assert s(text) < -0.3


@pytest.mark.parametrize("text", ["谢谢", "问题解决了", "谢谢你，已经解决了", "服务很耐心，点赞"])
def test_contact_phrases_positive(text: str) -> None:
    assert s(text) > 0.3


def test_contrast_later_clause_wins() -> None:
    assert s("客服态度还可以，但是问题一直没解决") < 0
    assert s("之前很慢，不过最后解决了，谢谢") > 0


@pytest.mark.parametrize("text", ["", "我想查一下话费", "请问怎么办理携号转网", "hello", "12345"])
def test_neutral_exact_zero(text: str) -> None:
    assert s(text) == 0.0


def test_range_and_tokens_argument() -> None:
    for text, _ in CONTACT_CHECKS:
        v = s(text)
        assert -1.0 <= v <= 1.0
        assert sentiment_score(text, tokens=tokenize(text)) == v
    assert -1.0 <= s("非常非常非常不满意，垃圾，骗子，投诉，曝光，退款！" * 20) <= -0.99


def test_contact_checks_accuracy() -> None:
    result = evaluate_contact_checks()
    assert result["accuracy"] >= 0.9, result["failures"]
