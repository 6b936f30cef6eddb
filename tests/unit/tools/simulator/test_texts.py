"""Customer texts are varied, labelled truthfully, and carry realistic PII."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from vocflow.streams.tools.simulator import SimRecord
from vocflow.streams.tools.simulator.texts import (
    ESCALATIONS,
    ISSUES,
    OUTAGE_ISSUES,
    TextGenerator,
    cn_number,
    id_card_number,
    luhn_card_number,
)

DEPARTMENTS = {"billing", "network", "tech_support", "sales_retention", "complaints"}
BUSINESS_TYPES = {
    "billing",
    "plan",
    "data",
    "broadband",
    "signal",
    "device",
    "promotion",
    "cancellation",
    "service",
    "account",
    "other",
}
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
EMAIL = re.compile(r"[A-Za-z0-9._]+@[a-z0-9]+[. ]com")  # speech-to-text drops the dot
CJK = re.compile(r"[\u4e00-\u9fff]")


def _contact_texts(records: list[SimRecord]) -> list[SimRecord]:
    return [
        r
        for r in records
        if r.kind == "contact" and r.value["event_type"] in ("offered", "received")
    ]


def test_text_variety_in_20000_contacts(day: list[SimRecord]) -> None:
    texts = [r.value["text"] for r in _contact_texts(day)[:20_000]]
    assert len(texts) == 20_000
    assert len(set(texts)) >= 5_000
    # variety is not only numbers: strip digits and it is still varied
    assert len({re.sub(r"\d+", "#", t) for t in texts}) >= 5_000


def test_every_contact_text_has_labels_in_the_rules_value_space(day: list[SimRecord]) -> None:
    firsts = _contact_texts(day)
    for r in firsts:
        labels = r.labels
        assert labels is not None and r.value["text"]
        assert labels["department"] in DEPARTMENTS
        assert labels["business_type"] in BUSINESS_TYPES
        assert labels["sentiment"] in ("negative", "neutral", "positive")
        assert labels["urgency"] in ("P1", "P2", "P3", "P4")
        assert labels["language"] in ("zh", "en", "mixed")
        if labels["escalation"]:
            assert labels["department"] == "complaints"
            assert labels["sentiment"] == "negative"
        if labels["escalation"] == "regulator":
            assert labels["urgency"] == "P1"
    depts = Counter(r.labels["department"] for r in firsts if r.labels)
    assert set(depts) == DEPARTMENTS
    langs = Counter(r.labels["language"] for r in firsts if r.labels)
    assert langs["en"] > 50 and langs["mixed"] > 200
    assert langs["zh"] > 0.85 * len(firsts)


def test_labels_never_leak_into_values(day: list[SimRecord]) -> None:
    for r in day[:50_000]:
        assert "labels" not in r.value and "department" not in r.value


def test_english_texts_are_english(day: list[SimRecord]) -> None:
    en = [r for r in _contact_texts(day) if r.labels and r.labels["language"] == "en"]
    assert en
    assert all(not CJK.search(r.value["text"]) for r in en)


def test_pii_labels_match_the_text(day: list[SimRecord]) -> None:
    with_phone = [r for r in _contact_texts(day) if r.labels and "phone" in r.labels["pii"]]
    assert len(with_phone) > 500
    assert all(PHONE.search(r.value["text"]) for r in with_phone)
    kinds = Counter(k for r in _contact_texts(day) if r.labels for k in r.labels["pii"])
    assert kinds["id"] > 20 and kinds["card"] > 20 and kinds["email"] > 20
    with_email = [
        r.value["text"] for r in _contact_texts(day) if r.labels and "email" in r.labels["pii"]
    ]
    assert all(EMAIL.search(t) for t in with_email)


def test_channel_styles(day: list[SimRecord]) -> None:
    by_channel: dict[str, list[str]] = {}
    for r in _contact_texts(day):
        by_channel.setdefault(r.value["channel"], []).append(r.value["text"])
    zh_phone = [t for t in by_channel["phone"] if CJK.search(t)]
    assert sum("，" not in t for t in zh_phone) > 0.95 * len(zh_phone)  # speech-to-text
    assert sum(t.startswith("@") for t in by_channel["weibo"]) > 0.9 * len(by_channel["weibo"])
    assert sum("\n" in t for t in by_channel["email"]) > 0.9 * len(by_channel["email"])


def test_escalation_words_only_in_escalations() -> None:
    """Non-escalated texts must not contain what the domain calls an escalation."""
    gen = TextGenerator(random.Random(5), {"escalation_rate": 0.0, "mixed_rate": 0.0})
    triggers = ("投诉", "工信部", "12315", "赔偿", "补偿", "态度很差", "欺诈", "曝光")
    for i in range(5_000):
        issue = ISSUES[i % len(ISSUES)]
        text, labels = gen.contact_text(issue, "chat", "南京", "鼓楼区")
        if labels["escalation"] is None and issue.dept != "complaints":
            assert not any(w in text for w in triggers), text
            assert labels["department"] == issue.dept


def test_forced_escalations_cover_every_kind() -> None:
    gen = TextGenerator(random.Random(9), {"escalation_rate": 1.0})
    kinds = Counter()
    for i in range(2_000):
        _text, labels = gen.contact_text(ISSUES[i % 10], "wechat", "西安", "雁塔区")
        kinds[labels["escalation"]] += 1
    assert set(ESCALATIONS) <= set(kinds)


def test_outage_texts_name_the_city() -> None:
    gen = TextGenerator(random.Random(2), {})
    for i in range(500):
        text, labels = gen.contact_text(
            OUTAGE_ISSUES[i % 2], "app", "重庆", "渝北区", scenario="outage", mention_city=True
        )
        assert labels["scenario"] == "outage" and labels["urgency"] in ("P1", "P2")
        if labels["language"] != "en":
            assert "重庆" in text
        else:
            assert "Chongqing" in text


def test_survey_comments_follow_the_score() -> None:
    gen = TextGenerator(random.Random(3), {})
    for csat, sentiment in ((5, "positive"), (4, "positive"), (3, "neutral"), (1, "negative")):
        for _ in range(50):
            text, labels = gen.survey_comment(csat, ISSUES[0], solved=csat > 3, waited_long=True)
            assert text and labels["sentiment"] == sentiment
            assert labels["department"] in (None, *DEPARTMENTS)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "零"),
        (7, "七"),
        (10, "十"),
        (15, "十五"),
        (30, "三十"),
        (108, "一百零八"),
        (180, "一百八十"),
        (999, "九百九十九"),
    ],
)
def test_cn_number(n: int, text: str) -> None:
    assert cn_number(n) == text


def test_id_and_card_numbers_have_valid_checksums() -> None:
    rng = random.Random(1)
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    for _ in range(200):
        pid = id_card_number(rng, "330106")
        assert len(pid) == 18
        total = sum(int(d) * w for d, w in zip(pid[:17], weights, strict=True))
        assert "10X98765432"[total % 11] == pid[17]
        card = luhn_card_number(rng)
        digits = [int(d) for d in card]
        s = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
        assert len(card) == 16 and s % 10 == 0
