"""tag() with the shipped default rules: routing, explainability, DOMAIN.md raisers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from vocflow.schemas.derived.enriched import CustomerProfile, EnrichedContact, Tags, TextAnalysis
from vocflow.schemas.source.contact import ContactEvent
from vocflow.streams.stages.rules import RuleSet, load_rules
from vocflow.streams.stages.tagging import matching_rules, tag

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "streams" / "data" / "default_rules.yaml"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(DEFAULT_RULES)


def contact(
    text: str,
    *,
    channel: str = "chat",
    tier: str | None = None,
    sentiment: float = 0.0,
    repeat: bool = False,
) -> EnrichedContact:
    event = ContactEvent(
        event_id="e1",
        contact_id="c1",
        channel=channel,
        event_type="message",
        occurred_at=T0,
        text=text,
    )
    customer = CustomerProfile(customer_id="cust1", tier=tier) if tier else None
    return EnrichedContact(
        event=event,
        customer=customer,
        analysis=TextAnalysis(sentiment=sentiment),
        repeat_contact=repeat,
        enriched_at=T0,
    )


def dims(t: Tags) -> tuple[str, str, str, str, str]:
    return (
        t.department.value,
        t.business_type.value,
        t.support_system.value,
        t.bearer_network.value,
        t.urgency.value,
    )


def test_default_rules_load(rules: RuleSet) -> None:
    assert rules.version == "2026.11-1"
    assert set(rules.departments) == {
        "unassigned",
        "billing",
        "network",
        "tech_support",
        "sales_retention",
        "complaints",
    }
    ids = [r.id for r in rules.rules]
    assert len(ids) == len(set(ids))
    assert {"raise.vip", "raise.negative_sentiment", "raise.repeat_contact"} <= set(ids)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("话费怎么多扣了三十块，我没订过这个业务", "billing billing billing_system none P3"),
        ("支付宝交了100话费一直没到账", "billing billing payment_gateway none P3"),
        ("宽带从早上开始断网，光猫LOS灯红了", "network broadband none fixed_broadband P3"),
        ("5G信号很弱，经常掉线", "network signal none mobile_5g P3"),
        ("手机插卡后显示无SIM卡", "tech_support device none mobile P3"),
        ("APP登录一直提示验证码错误", "tech_support account self_service_app none P3"),
        ("想换个便宜点的套餐", "sales_retention plan crm none P4"),
        ("我要办理携号转网", "sales_retention cancellation crm none P4"),
        ("你好", "unassigned other none none P4"),
    ],
)
def test_routing_examples(rules: RuleSet, text: str, expected: str) -> None:
    """expected: department business_type support_system bearer_network urgency."""
    assert dims(tag(contact(text), rules)) == tuple(expected.split())


def test_escalation_goes_to_complaints_but_keeps_the_subject(rules: RuleSet) -> None:
    t = tag(contact("乱扣我话费，再不退钱我就去工信部投诉"), rules)
    assert dims(t) == ("complaints", "billing", "billing_system", "none", "P1")
    assert t.department.rule_id == "escalation.regulator"
    assert t.business_type.rule_id == "billing.charge_dispute"
    assert t.urgency_rule_id == "escalation.regulator+raise.regulatory"
    assert t.sla_hours == 4

    t = tag(contact("宽带断网一周了，报修了五次都没人管，要求赔偿"), rules)
    assert dims(t) == ("complaints", "broadband", "none", "fixed_broadband", "P2")
    assert t.department.rule_id == "escalation.compensation"


def test_phone_number_is_not_a_regulator_hotline(rules: RuleSet) -> None:
    t = tag(contact("我是13912345678的机主，话费怎么多收了"), rules)
    assert t.department.value == "billing"
    t = tag(contact("我要打12345投诉你们乱收费"), rules)
    assert (t.department.value, t.urgency.value) == ("complaints", "P1")


def test_domain_urgency_raisers(rules: RuleSet) -> None:
    text = "家里宽带断网了"
    base = tag(contact(text), rules)
    assert (base.urgency.value, base.urgency_rule_id) == ("P3", "network.broadband")
    vip = tag(contact(text, tier="vip"), rules)
    assert (vip.urgency.value, vip.urgency_rule_id) == ("P2", "network.broadband+raise.vip")
    angry = tag(contact(text, sentiment=-0.8), rules)
    assert angry.urgency.value == "P2"
    assert angry.urgency_rule_id == "network.broadband+raise.negative_sentiment"
    repeat = tag(contact(text, repeat=True), rules)
    assert repeat.urgency_rule_id == "network.broadband+raise.repeat_contact"
    everything = tag(contact(text, tier="vip", sentiment=-0.9, repeat=True), rules)
    assert everything.urgency.value == "P1"
    assert everything.urgency_rule_id == (
        "network.broadband+raise.vip+raise.negative_sentiment+raise.repeat_contact"
    )
    # gold is not VIP, mildly negative is not strongly negative
    assert tag(contact(text, tier="gold", sentiment=-0.5), rules).urgency.value == "P3"


def test_every_value_is_explained(rules: RuleSet) -> None:
    t = tag(contact("WiFi密码怎么改"), rules)
    for name in ("business_type", "support_system", "bearer_network", "department", "category"):
        tv = getattr(t, name)
        assert tv.rule_id == "default" or tv.rule_id in {r.id for r in rules.rules}
    assert t.department.rule_id == "device.router_setup"
    assert t.bearer_network.rule_id == "bearer.fixed"


def test_tag_is_pure(rules: RuleSet) -> None:
    c = contact("我要退订彩铃，还在扣费")
    assert tag(c, rules) == tag(c, rules)
    assert matching_rules(c, rules)[0] == "billing.charge_dispute"


def test_empty_text_gets_defaults(rules: RuleSet) -> None:
    event = ContactEvent(
        event_id="e1", contact_id="c1", channel="phone", event_type="offered", occurred_at=T0
    )
    t = tag(EnrichedContact(event=event, enriched_at=T0), rules)
    assert dims(t) == ("unassigned", "other", "none", "none", "P4")
    assert t.sla_hours == 4
