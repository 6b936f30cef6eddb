"""Segmentation with the domain dictionary, language detection, keywords."""

from __future__ import annotations

import pytest

from vocflow.streams.stages.textanalysis import (
    MAX_KEYWORDS,
    analyze_text,
    detect_language,
    get_tokenizer,
    tokenize,
)


@pytest.mark.parametrize(
    "word", ["携号转网", "光猫", "停机保号", "工信部", "VoLTE", "12315", "七天无理由", "账单分期"]
)
def test_domain_words_stay_whole(word: str) -> None:
    assert word in tokenize(f"我想问一下{word}的事情")


def test_private_tokenizer_leaves_the_global_ones_alone() -> None:
    import jieba
    import rjieba

    assert get_tokenizer().has_word("携号转网")
    assert not rjieba.has_word("携号转网")
    assert "携号转网" not in jieba.dt.FREQ


def test_complaint_tokens_and_keywords() -> None:
    r = analyze_text("我要携号转网，你们的光猫老是断网，宽带一直没解决，我要打12315投诉到工信部")
    assert r.language == "zh"
    assert r.tokens[:4] == ("我", "要", "携号转网", "，")
    assert {"携号转网", "光猫", "断网", "宽带", "工信部", "12315"} <= set(r.keywords)
    assert "，" not in r.keywords
    assert len(r.keywords) <= MAX_KEYWORDS


def test_inquiry_keywords() -> None:
    r = analyze_text("你好，我想查一下这个月的话费和流量套餐")
    assert r.keywords == ("话费", "流量", "套餐")


def test_mask_tokens_are_single_tokens_and_not_keywords() -> None:
    r = analyze_text("电话[PHONE]，停机保号怎么办理")
    assert "[PHONE]" in r.tokens
    assert r.keywords == ("停机保号", "电话")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("宽带断网了", "zh"),
        ("5G信号很差", "zh"),
        ("我的VoLTE打不开", "zh"),
        ("My broadband has been down since Monday", "en"),
        ("我的 broadband account 被 suspended 了 please help", "mixed"),
        ("", "none"),
        ("   ", "none"),
        ("12345 ...", "none"),
        ("！！！", "none"),
    ],
)
def test_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang
    assert analyze_text(text).language == lang


def test_english_text() -> None:
    r = analyze_text("My VoLTE does not work after the 5G upgrade")
    assert r.language == "en"
    assert r.tokens[0] == "My"
    assert r.keywords == ("volte", "5g", "upgrade")


def test_mixed_text() -> None:
    r = analyze_text("APP登录不了，error code 500，refund please")
    assert r.language in ("mixed", "zh")
    assert "refund" in r.keywords


@pytest.mark.parametrize("text", ["", "   ", None, "\n\t"])
def test_empty(text: str | None) -> None:
    r = analyze_text(text)
    assert (r.language, r.tokens, r.keywords) == ("none", (), ())
