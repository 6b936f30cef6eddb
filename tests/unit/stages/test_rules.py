"""Rules file: every condition operator, precedence, urgency raises, defaults,
and every load error with its exact line number."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vocflow.schemas.derived.enriched import CustomerProfile, EnrichedContact, TextAnalysis
from vocflow.schemas.source.contact import ContactEvent
from vocflow.streams.stages.rules import RulesError, load_rules, parse_rules
from vocflow.streams.stages.tagging import matching_rules, tag

T0 = datetime(2026, 1, 1, tzinfo=UTC)

HEADER = """\
version: "t1"
defaults:
  urgency: P4
  sla_hours: 72
departments:
  - {id: unassigned, sla_hours: 4}
  - {id: billing, sla_hours: 24}
  - {id: network}
rules:
"""
# HEADER is 9 lines, so the first rule's "- id:" is on line 10.


def rules_of(body: str, header: str = HEADER):
    return parse_rules(header + textwrap.dedent(body), "test.yaml")


def contact(
    text: str | None = "",
    *,
    channel: str = "chat",
    queue: str | None = None,
    tier: str | None = None,
    sentiment: float = 0.0,
    repeat: bool = False,
    keywords: list[str] | None = None,
) -> EnrichedContact:
    event = ContactEvent(
        event_id="e1",
        contact_id="c1",
        channel=channel,
        event_type="message",
        occurred_at=T0,
        queue=queue,
        text=text,
    )
    customer = CustomerProfile(customer_id="cust1", tier=tier) if tier else None
    return EnrichedContact(
        event=event,
        customer=customer,
        customer_known=customer is not None,
        analysis=TextAnalysis(sentiment=sentiment, keywords=keywords or []),
        repeat_contact=repeat,
        enriched_at=T0,
    )


def one_rule(when: str) -> object:
    """A rule set with a single rule `r` that routes to billing when `when` holds."""
    return rules_of(
        f"""\
        - id: r
          when: {when}
          set: {{department: billing}}
        """
    )


def matched(rs, c: EnrichedContact) -> bool:
    return matching_rules(c, rs) == ["r"]


# ------------------------------------------------------------------ operators


def test_any_matches_one_substring_case_insensitive() -> None:
    rs = one_rule("{any: [退款, VoLTE]}")
    assert matched(rs, contact("我要退款"))
    assert matched(rs, contact("怎么开通volte"))
    assert matched(rs, contact("VOLTE 打不了电话"))
    assert not matched(rs, contact("我要退订"))
    assert not matched(rs, contact(None))


def test_all_needs_every_term() -> None:
    rs = one_rule("{all: [宽带, 断]}")
    assert matched(rs, contact("宽带又断了"))
    assert not matched(rs, contact("宽带很慢"))


def test_none_excludes() -> None:
    rs = one_rule("{any: [信号], none: [wifi]}")
    assert matched(rs, contact("手机信号差"))
    assert not matched(rs, contact("WiFi信号差"))


def test_regex_is_case_insensitive_and_searches() -> None:
    rs = one_rule(r"{regex: '(?<!\d)12315(?!\d)'}")
    assert matched(rs, contact("我要打12315"))
    assert not matched(rs, contact("我的号码13912315678"))
    rs = one_rule("{regex: 'app.{0,4}闪退'}")
    assert matched(rs, contact("APP一直闪退"))


def test_numeric_looking_keywords_stay_strings() -> None:
    rs = one_rule("{any: [12315, 5G]}")
    assert rs.terms == ("12315", "5g")
    assert matched(rs, contact("打12315"))


def test_single_string_is_a_one_item_list() -> None:
    rs = one_rule("{any: 退款, channel: phone}")
    assert matched(rs, contact("退款", channel="phone"))
    assert not matched(rs, contact("退款", channel="chat"))


def test_search_keywords_and_both() -> None:
    rs = one_rule("{any: [携号转网], search: keywords}")
    assert rs.uses_keywords
    assert matched(rs, contact("我要转走", keywords=["携号转网"]))
    assert not matched(rs, contact("携号转网", keywords=[]))
    rs = one_rule("{any: [携号转网], search: both}")
    assert matched(rs, contact("携号转网"))
    assert matched(rs, contact("x", keywords=["携号转网"]))
    # terms never match across two keywords
    rs = one_rule("{any: [转网携], search: keywords}")
    assert not matched(rs, contact("x", keywords=["携号转网", "携号"]))


def test_channel_queue_tier_filters() -> None:
    rs = one_rule("{channel: [phone, email]}")
    assert matched(rs, contact("x", channel="email"))
    assert not matched(rs, contact("x", channel="weibo"))
    rs = one_rule("{queue: [VIP_Line]}")
    assert matched(rs, contact("x", queue="vip_line"))
    assert not matched(rs, contact("x", queue="general"))
    assert not matched(rs, contact("x"))
    rs = one_rule("{tier: [vip, gold]}")
    assert matched(rs, contact("x", tier="gold"))
    assert not matched(rs, contact("x", tier="standard"))
    assert not matched(rs, contact("x"))
    rs = one_rule("{tier: [unknown]}")
    assert matched(rs, contact("x"))
    assert not matched(rs, contact("x", tier="vip"))


def test_sentiment_range_is_inclusive() -> None:
    rs = one_rule("{sentiment: {min: -1.0, max: -0.6}}")
    assert matched(rs, contact("x", sentiment=-0.6))
    assert matched(rs, contact("x", sentiment=-1.0))
    assert not matched(rs, contact("x", sentiment=-0.59))
    rs = one_rule("{sentiment: {min: 0.5}}")
    assert matched(rs, contact("x", sentiment=1.0))
    assert not matched(rs, contact("x", sentiment=0.4))


def test_repeat_contact_flag() -> None:
    rs = one_rule("{repeat_contact: true}")
    assert matched(rs, contact("x", repeat=True))
    assert not matched(rs, contact("x", repeat=False))
    rs = one_rule("{repeat_contact: false}")
    assert matched(rs, contact("x", repeat=False))


def test_conditions_combine_with_and() -> None:
    rs = one_rule("{any: [退款], channel: [phone], tier: [vip], repeat_contact: true}")
    assert matched(rs, contact("退款", channel="phone", tier="vip", repeat=True))
    assert not matched(rs, contact("退款", channel="phone", tier="vip", repeat=False))


# ------------------------------------------------------- precedence and urgency


PRECEDENCE = """\
- id: low
  priority: 1
  when: {any: [话费]}
  set: {department: network, business_type: low_bt, category: low_cat}
- id: high
  priority: 10
  when: {any: [话费]}
  set: {department: billing}
- id: tie_first
  priority: 5
  when: {any: [话费]}
  set: {business_type: first}
- id: tie_second
  priority: 5
  when: {any: [话费]}
  set: {business_type: second, support_system: sys2}
"""


def test_highest_priority_wins_per_field_and_ties_go_to_file_order() -> None:
    rs = rules_of(PRECEDENCE)
    assert [r.id for r in rs.rules] == ["high", "tie_first", "tie_second", "low"]
    t = tag(contact("话费不对"), rs)
    assert (t.department.value, t.department.rule_id) == ("billing", "high")
    assert (t.business_type.value, t.business_type.rule_id) == ("first", "tie_first")
    assert (t.support_system.value, t.support_system.rule_id) == ("sys2", "tie_second")
    assert (t.category.value, t.category.rule_id) == ("low_cat", "low")
    assert (t.bearer_network.value, t.bearer_network.rule_id) == ("none", "default")


URGENCY = """\
- id: fault
  priority: 10
  when: {any: [断网]}
  set: {urgency: P3, department: network}
- id: minor
  priority: 5
  when: {any: [断网]}
  set: {urgency: P4}
- id: vip
  when: {tier: [vip]}
  set: {raise_urgency: 1}
- id: angry
  when: {sentiment: {max: -0.6}}
  set: {raise_urgency: 2}
- id: slow
  when: {any: [慢]}
  set: {sla_hours: 2}
"""


def test_urgency_absolute_then_raises_accumulate_and_cap_at_p1() -> None:
    rs = rules_of(URGENCY)
    t = tag(contact("断网"), rs)
    assert (t.urgency.value, t.urgency_rule_id) == ("P3", "fault")
    t = tag(contact("断网", tier="vip"), rs)
    assert (t.urgency.value, t.urgency_rule_id) == ("P2", "fault+vip")
    t = tag(contact("断网", tier="vip", sentiment=-0.9), rs)
    assert (t.urgency.value, t.urgency_rule_id) == ("P1", "fault+vip+angry")
    t = tag(contact("你好", tier="vip"), rs)
    assert (t.urgency.value, t.urgency_rule_id) == ("P3", "default+vip")


def test_sla_from_rule_then_department_then_defaults() -> None:
    rs = rules_of(URGENCY)
    assert tag(contact("断网很慢"), rs).sla_hours == 2  # rule
    assert tag(contact("断网"), rs).sla_hours == 72  # network has no SLA -> defaults
    rs2 = rules_of(PRECEDENCE)
    assert tag(contact("话费"), rs2).sla_hours == 24  # billing department
    assert tag(contact("你好"), rs2).sla_hours == 4  # default department 'unassigned'


def test_defaults_when_nothing_matches() -> None:
    rs = rules_of(PRECEDENCE)
    t = tag(contact("你好"), rs)
    assert t.model_dump() == {
        "business_type": {"value": "other", "rule_id": "default"},
        "support_system": {"value": "none", "rule_id": "default"},
        "bearer_network": {"value": "none", "rule_id": "default"},
        "department": {"value": "unassigned", "rule_id": "default"},
        "category": {"value": "general", "rule_id": "default"},
        "urgency": "P4",
        "urgency_rule_id": "default",
        "sla_hours": 4.0,
    }


def test_custom_defaults() -> None:
    header = HEADER.replace("  urgency: P4\n", "  urgency: P3\n  business_type: misc\n")
    rs = rules_of("", header=header)
    t = tag(contact("x"), rs)
    assert (t.urgency.value, t.business_type.value) == ("P3", "misc")
    assert rs.rules == ()


def test_load_rules_from_file(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(HEADER + PRECEDENCE, encoding="utf-8")
    rs = load_rules(p)
    assert rs.version == "t1"
    assert rs.filename == str(p)
    assert len(rs.rules) == 4


# ----------------------------------------------------------------- load errors


def error_of(text: str, filename: str = "test.yaml") -> RulesError:
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename)
    return info.value


def test_yaml_syntax_error_has_line() -> None:
    err = error_of(HEADER + "- id: a\n  when: {any: [x]\n  set: {department: billing}\n")
    assert err.line == 12
    assert str(err).startswith("test.yaml:12: invalid YAML: expected ',' or '}'")


def test_unknown_field_points_at_the_field() -> None:
    body = "- id: a\n  when:\n    any: [x]\n    anyy: [y]\n  set: {department: billing}\n"
    err = error_of(HEADER + body)
    assert err.line == 13
    assert str(err) == (
        "test.yaml:13: rule 'a': rules[0].when.anyy: unknown key (did you mean 'any'?)"
    )


def test_unknown_top_level_field() -> None:
    err = error_of(HEADER.replace("defaults:", "default:"))
    assert err.line == 2
    assert str(err) == "test.yaml:2: default: unknown key (did you mean 'defaults'?)"


def test_bad_regex_points_at_regex_line() -> None:
    body = (
        "- id: ok\n  when: {any: [x]}\n  set: {department: billing}\n"
        "- id: broken\n  priority: 3\n  when:\n    regex: '退(款'\n  set: {urgency: P1}\n"
    )
    err = error_of(HEADER + body)
    assert err.line == 16
    assert str(err).startswith(
        "test.yaml:16: rule 'broken': rules[1].when.regex: bad regular expression '退(款'"
    )
    assert "missing ), unterminated subpattern" in str(err)


def test_duplicate_rule_id() -> None:
    body = (
        "- id: a\n  when: {any: [x]}\n  set: {department: billing}\n"
        "- id: a\n  when: {any: [y]}\n  set: {department: network}\n"
    )
    err = error_of(HEADER + body)
    assert str(err) == "test.yaml:13: duplicate rule id 'a' (first at line 10)"


def test_unknown_department_in_rule() -> None:
    body = "- id: a\n  when: {any: [x]}\n  set:\n    department: biling\n"
    err = error_of(HEADER + body)
    assert err.line == 13
    assert str(err) == (
        "test.yaml:13: rule 'a': unknown department 'biling' "
        "(declared: billing, network, unassigned)"
    )


def test_unknown_default_department() -> None:
    err = error_of(HEADER.replace("  urgency: P4\n", "  urgency: P4\n  department: triage\n"))
    assert err.line == 4
    assert "defaults.department 'triage' is not a declared department" in str(err)


def test_duplicate_department_and_duplicate_key() -> None:
    err = error_of(HEADER.replace("  - {id: network}\n", "  - {id: billing}\n"))
    assert str(err) == "test.yaml:8: duplicate department id 'billing' (first at line 7)"
    err = error_of(HEADER.replace('version: "t1"\n', 'version: "t1"\nversion: "t2"\n'))
    assert str(err) == "test.yaml:2: duplicate key 'version' (first at line 1)"


def test_bad_values_have_lines() -> None:
    err = error_of(HEADER + "- id: a\n  priority: high\n  when: {any: [x]}\n  set: {urgency: P1}\n")
    assert err.line == 11
    assert "rules[0].priority" in str(err)
    err = error_of(HEADER + "- id: a\n  when: {any: [x]}\n  set: {urgency: P5}\n")
    assert err.line == 12
    assert "rules[0].set.urgency" in str(err)
    err = error_of(HEADER + "- id: a\n  when: {channel: [fax]}\n  set: {urgency: P1}\n")
    assert err.line == 11
    err = error_of(HEADER + "- id: a\n  when:\n    tier: [platinum]\n  set: {urgency: P1}\n")
    assert err.line == 12
    assert "'vip', 'gold', 'standard' or 'unknown'" in str(err)
    err = error_of(
        HEADER + "- id: a\n  when:\n    sentiment: {min: 0.5, max: -0.5}\n  set: {urgency: P1}\n"
    )
    assert err.line == 12
    assert "sentiment min 0.5 is greater than max -0.5" in str(err)
    err = error_of(HEADER + "- id: a\n  when: {any: [x]}\n  set: {raise_urgency: 5}\n")
    assert err.line == 12


def test_missing_fields_and_empty_rules() -> None:
    err = error_of(HEADER + "- id: a\n  set: {department: billing}\n")
    assert err.line == 10
    assert str(err) == "test.yaml:10: rule 'a': rules[0].when: missing"
    err = error_of(HEADER + "- id: a\n  when: {}\n  set: {department: billing}\n")
    assert err.line == 11
    assert "rule has no conditions" in str(err)
    err = error_of(HEADER + "- id: a\n  when: {any: [x]}\n  set: {}\n")
    assert err.line == 12
    assert "'set' sets nothing" in str(err)
    err = error_of(HEADER + "- id: a\n  when: {any: []}\n  set: {urgency: P1}\n")
    assert err.line == 11
    assert "keyword list is empty" in str(err)


def test_urgency_and_raise_together_is_an_error() -> None:
    body = "- id: a\n  when: {any: [x]}\n  set:\n    urgency: P2\n    raise_urgency: 1\n"
    err = error_of(HEADER + body)
    assert str(err) == "test.yaml:14: rule 'a': set either 'urgency' or 'raise_urgency', not both"


def test_empty_and_non_mapping_files() -> None:
    assert str(error_of("")) == "test.yaml:1: the rules file is empty"
    assert str(error_of("\n\n- a\n- b\n")) == "test.yaml:3: the top level must be a mapping"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path / "missing.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'missing.yaml'}: cannot read rules file")
