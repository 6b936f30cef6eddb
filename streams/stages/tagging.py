"""Tag one enriched contact with the knowledge map's dimensions, urgency and SLA.

`tag` is a pure function of (contact, rules): no I/O, no clock, no globals, so
the same contact tagged with the same rules version always gets the same tags,
which is what makes a routing decision reproducible when a department disputes
it. Every value carries the id of the rule that set it ('default' otherwise),
so a supervisor can answer "why did this go to billing?" from the record alone.

Semantics (documented in streams/stages/rules.py too):
- each field is set by the highest-priority matching rule that sets it; equal
  priorities resolve by file order;
- the absolute urgency comes the same way (or from defaults), then every
  matching rule's `raise_urgency` is added on top, capped at P1. This is how
  the DOMAIN.md raisers (VIP, strongly negative sentiment, repeat contact,
  regulatory keywords) combine: each is a rule in the file, none is hard-coded;
- department with a model vote (`vote`, from stages/deptmodel.py): a rule of
  priority >= rules.model_pin_priority pins the department (escalations ->
  complaints); otherwise the model decides: its best class when its probability
  reaches the model's threshold (rule_id ``model:<version>``), else the default
  department (unassigned) marked ``triage:<version>``, which routing sends to
  the triage topic with the two best candidates;
- sla_hours: the winning rule's sla_hours, else the final department's SLA,
  else defaults.sla_hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from vocflow.schemas.derived.enriched import EnrichedContact, Tags, TagValue, Urgency
from vocflow.schemas.source.contact import Channel, ContactEvent, EventType
from vocflow.streams.stages.rules import (
    TAG_FIELDS,
    UNKNOWN_TIER,
    URGENCY_ORDER,
    CompiledRule,
    RuleSet,
)

DEFAULT_RULE_ID = "default"
MODEL_SOURCE = "model"
TRIAGE_SOURCE = "triage"


@dataclass(frozen=True, slots=True)
class ModelVote:
    """The department model's output for one contact, as tagging needs it."""

    version: str
    ranked: tuple[tuple[str, float], ...]  # (department, probability), best first
    threshold: float

    @property
    def department(self) -> str:
        return self.ranked[0][0]

    @property
    def probability(self) -> float:
        return self.ranked[0][1]

    @property
    def confident(self) -> bool:
        return self.ranked[0][1] >= self.threshold

    def candidates(self, n: int = 2) -> tuple[tuple[str, float], ...]:
        return self.ranked[:n]


def is_model_decision(rule_id: str) -> bool:
    """True when a department TagValue was set by the model (or sent to triage by it)."""
    return rule_id.startswith((MODEL_SOURCE + ":", TRIAGE_SOURCE + ":"))


_KW_SEP = "\x1f"  # joins analysis keywords so a term cannot match across two of them


class _Facts:
    """What the rules look at, computed once per contact."""

    __slots__ = (
        "channel",
        "keywords",
        "present_kw",
        "present_text",
        "queue",
        "repeat",
        "sentiment",
        "text",
        "tier",
    )

    def __init__(self, contact: EnrichedContact, rules: RuleSet) -> None:
        ev = contact.event
        self.text = (ev.text or "").lower()
        self.channel = ev.channel.value
        self.queue = ev.queue.strip().lower() if ev.queue else None
        self.tier = contact.customer.tier.value if contact.customer is not None else UNKNOWN_TIER
        self.sentiment = contact.analysis.sentiment
        self.repeat = contact.repeat_contact
        # One scan over the distinct terms of the whole rule set: each rule then
        # only does set operations, however many rules share a term.
        self.present_text = _present(self.text, rules)
        if rules.uses_keywords and contact.analysis.keywords:
            kw = _KW_SEP.join(k.lower() for k in contact.analysis.keywords)
            self.keywords = kw
            self.present_kw = _present(kw, rules)
        else:
            self.keywords = ""
            self.present_kw = _EMPTY


_EMPTY: frozenset[int] = frozenset()


def _present(text: str, rules: RuleSet) -> frozenset[int]:
    """Indexes of the rule terms that occur in `text` (substring match).

    Only terms starting with a character that occurs in the text can match, so
    the scan visits those buckets only; C-level `in` does the rest.
    """
    if not text:
        return _EMPTY
    buckets = rules.term_buckets
    found = [i for ch in set(text).intersection(buckets) for i, term in buckets[ch] if term in text]
    return frozenset(found) if found else _EMPTY


def _matches(rule: CompiledRule, f: _Facts) -> bool:
    """All given conditions must hold; cheapest checks first."""
    if rule.channels is not None and f.channel not in rule.channels:
        return False
    if rule.queues is not None and f.queue not in rule.queues:
        return False
    if rule.tiers is not None and f.tier not in rule.tiers:
        return False
    if rule.repeat_contact is not None and f.repeat != rule.repeat_contact:
        return False
    if rule.sentiment_min is not None and not (
        rule.sentiment_min <= f.sentiment <= rule.sentiment_max  # both set together
    ):
        return False
    if rule.search == "text":
        present = f.present_text
    elif rule.search == "keywords":
        present = f.present_kw
    else:
        present = f.present_text | f.present_kw
    if rule.any_terms is not None and rule.any_terms.isdisjoint(present):
        return False
    if rule.all_terms is not None and not rule.all_terms <= present:
        return False
    if rule.none_terms is not None and not rule.none_terms.isdisjoint(present):
        return False
    if rule.regex is not None:
        if rule.search == "text":
            return rule.regex.search(f.text) is not None
        if rule.search == "keywords":
            return rule.regex.search(f.keywords) is not None
        return rule.regex.search(f.text) is not None or rule.regex.search(f.keywords) is not None
    return True


def matching_rules(contact: EnrichedContact, rules: RuleSet) -> list[str]:
    """Ids of every rule that matches, in evaluation order (for debugging a rules file)."""
    facts = _Facts(contact, rules)
    return [r.id for r in rules.rules if _matches(r, facts)]


def tag(contact: EnrichedContact, rules: RuleSet, vote: ModelVote | None = None) -> Tags:
    """Decide the tags of one contact; see the module docstring for the semantics."""
    facts = _Facts(contact, rules)
    chosen: dict[str, TagValue] = {}
    department_priority: int | None = None
    base_urgency: Urgency | None = None
    base_rule = DEFAULT_RULE_ID
    raise_by = 0
    raisers: list[str] = []
    sla: float | None = None
    for rule in rules.rules:
        # Skip rules that could not change anything any more (saves the matching).
        if (
            rule.raise_urgency == 0
            and (rule.urgency is None or base_urgency is not None)
            and (rule.sla_hours is None or sla is not None)
            and all(k in chosen for k in rule.sets)
        ):
            continue
        if not _matches(rule, facts):
            continue
        for name, value in rule.sets.items():
            if name not in chosen:
                # values were validated when the rules were loaded
                chosen[name] = TagValue.model_construct(value=value, rule_id=rule.id)
                if name == "department":
                    department_priority = rule.priority
        if rule.urgency is not None and base_urgency is None:
            base_urgency = rule.urgency
            base_rule = rule.id
        if rule.raise_urgency:
            raise_by += rule.raise_urgency
            raisers.append(rule.id)
        if rule.sla_hours is not None and sla is None:
            sla = rule.sla_hours

    d = rules.defaults
    if vote is not None and (
        department_priority is None or department_priority < rules.model_pin_priority
    ):
        if vote.confident:
            chosen["department"] = TagValue.model_construct(
                value=vote.department, rule_id=f"{MODEL_SOURCE}:{vote.version}"
            )
        else:
            chosen["department"] = TagValue.model_construct(
                value=d.department, rule_id=f"{TRIAGE_SOURCE}:{vote.version}"
            )
    for name in TAG_FIELDS:
        if name not in chosen:
            chosen[name] = TagValue.model_construct(value=getattr(d, name), rule_id=DEFAULT_RULE_ID)
    start = URGENCY_ORDER.index(base_urgency or d.urgency)
    urgency = URGENCY_ORDER[max(0, start - raise_by)]
    if sla is None:
        sla = rules.department_sla(chosen["department"].value)
    if sla is None:
        sla = d.sla_hours
    # model_construct: every value comes from the validated rules file
    return Tags.model_construct(
        business_type=chosen["business_type"],
        support_system=chosen["support_system"],
        bearer_network=chosen["bearer_network"],
        department=chosen["department"],
        category=chosen["category"],
        urgency=urgency,
        urgency_rule_id="+".join([base_rule, *raisers]),
        sla_hours=sla,
    )


_FIXED_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def bare_contact(text: str, channel: str) -> EnrichedContact:
    """A contact carrying only the text and channel: what the rules see when
    text analysis adds nothing (no keywords, neutral sentiment, unknown customer).
    `vocflow eval` scores the rules alone on it; `enrich_text` enriches it."""
    event = ContactEvent(
        event_id="eval-0",
        contact_id="eval-0",
        channel=Channel(channel),
        event_type=EventType.message,
        occurred_at=_FIXED_TIME,
        text=text,
        source="eval",
    )
    return EnrichedContact(event=event, enriched_at=_FIXED_TIME)
