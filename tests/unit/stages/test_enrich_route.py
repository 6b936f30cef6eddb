from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vocflow.schemas import ContactEvent, CustomerProfile, Tier
from vocflow.schemas.source.contact import EventType
from vocflow.streams.core.settings import DEFAULT_RULES_FILE
from vocflow.streams.privacy.pseudonyms import pseudonym, safe_id
from vocflow.streams.stages.enrich import enrich
from vocflow.streams.stages.routing import (
    LastIssue,
    carries_voc_text,
    previous_contact,
    repeat_key,
    route,
)
from vocflow.streams.stages.rules import load_rules
from vocflow.streams.stages.tagging import tag
from vocflow.streams.worker.views import ProfileStore

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
RULES = load_rules(DEFAULT_RULES_FILE)


def event(text: str | None, **extra: object) -> ContactEvent:
    return ContactEvent.model_validate(
        {
            "event_id": "e1",
            "contact_id": "c1",
            "customer_id": "C1",
            "channel": "chat",
            "event_type": "message",
            "occurred_at": "2026-11-23T09:00:00+08:00",
            "text": text,
            **extra,
        }
    )


def test_enrich_masks_before_anything_else() -> None:
    out = enrich(event("我的手机13812345678宽带断网了，邮箱 a.b@example.com"), {}, NOW)
    assert out.event.text == "我的手机[PHONE]宽带断网了，邮箱 [EMAIL]"
    assert out.analysis.pii_masked == {"phone": 1, "email": 1}
    assert "13812345678" not in out.model_dump_json()
    assert "宽带" in out.analysis.keywords
    assert out.analysis.language == "zh"
    assert out.customer_known is False
    assert out.enriched_at == NOW


def test_enrich_joins_profile_and_pseudonymises_phone_ids() -> None:
    profiles = ProfileStore()
    profile = CustomerProfile(customer_id="13812345678", tier=Tier.vip, city="杭州")
    profiles.on_record(b"13812345678", profile.model_dump_json().encode(), {}, 0)
    out = enrich(event("谢谢，问题解决了", customer_id="13812345678"), profiles, NOW)
    assert out.customer_known is True
    assert out.customer is not None and out.customer.tier is Tier.vip
    assert out.event.customer_id == pseudonym("tel", "13812345678")
    assert out.customer.customer_id == pseudonym("tel", "13812345678")
    assert "13812345678" not in out.model_dump_json()
    assert out.analysis.sentiment > 0


def test_safe_id_keeps_ordinary_ids() -> None:
    assert safe_id("C000123") == "C000123"
    assert safe_id("13812345678") == pseudonym("tel", "13812345678")


def test_enrich_without_text_is_neutral() -> None:
    out = enrich(event(None, event_type="offered"), {}, NOW)
    assert out.analysis.language == "none"
    assert out.analysis.sentiment == 0.0
    assert out.analysis.keywords == []


@pytest.mark.parametrize(
    ("event_type", "text", "expected"),
    [
        (EventType.offered, "宽带断网", True),
        (EventType.received, "发票", True),
        (EventType.message, "在吗", True),
        (EventType.message, "   ", False),
        (EventType.survey, "很满意", False),
        (EventType.answered, "x", False),
    ],
)
def test_which_events_are_voc(event_type: EventType, text: str, expected: bool) -> None:
    assert carries_voc_text(event_type, text) is expected


def test_previous_contact_window() -> None:
    at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    day = timedelta(hours=24)
    last = LastIssue("c0", at - timedelta(hours=23))
    assert previous_contact(last, "c1", at, day) == "c0"
    assert previous_contact(last, "c0", at, day) is None  # same contact is no repeat
    assert previous_contact(LastIssue("c0", at - timedelta(hours=25)), "c1", at, day) is None
    assert previous_contact(LastIssue("c0", at + timedelta(minutes=1)), "c1", at, day) is None
    assert previous_contact(None, "c1", at, day) is None
    assert LastIssue.from_json(last.to_json()) == last
    assert LastIssue.from_json({}) is None
    assert repeat_key(None, "billing") is None
    assert repeat_key("C1", "billing") == "C1|billing"


def test_route_builds_a_self_contained_envelope() -> None:
    contact = enrich(event("话费被多扣了五十块，我要投诉到工信部"), {}, NOW)
    tags = tag(contact, RULES)
    envelope = route(contact, tags, RULES, NOW, previous_contact_id="c0")
    assert envelope.department == "complaints"
    assert envelope.tags.department.rule_id == "escalation.regulator"
    assert envelope.tags.urgency.value in {"P1", "P2"}
    assert envelope.reason.startswith("department complaints (rule escalation.regulator)")
    assert envelope.sla_due_at == contact.event.occurred_at + timedelta(hours=tags.sla_hours)
    assert envelope.previous_contact_id == "c0"
    assert envelope.rules_version == RULES.version
    assert envelope.routed_at == NOW
    assert envelope.envelope_id == "e1"


def test_unknown_department_goes_to_unassigned() -> None:
    contact = enrich(event("随便说点什么"), {}, NOW)
    tags = tag(contact, RULES)
    bogus = tags.model_copy(
        update={"department": tags.department.model_copy(update={"value": "no_such_dept"})}
    )
    envelope = route(contact, bogus, RULES, NOW)
    assert envelope.department == "unassigned"
    assert envelope.reason.startswith(f"department 'no_such_dept' is not in rules {RULES.version}")
    assert envelope.sla_due_at == contact.event.occurred_at + timedelta(
        hours=RULES.department_sla("unassigned")
    )
