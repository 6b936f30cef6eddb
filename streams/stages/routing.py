"""Stages after tagging: repeat-contact detection and the routing decision.

Pure functions; the agent keeps the state (the last contact per customer and
issue category) in a Faust table and passes it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from vocflow.schemas import EnrichedContact, RoutingEnvelope, Tags
from vocflow.schemas.derived.routing import DepartmentCandidate
from vocflow.schemas.source.contact import EventType
from vocflow.streams.stages.rules import RuleSet
from vocflow.streams.stages.tagging import TRIAGE_SOURCE, ModelVote, is_model_decision

STAGE = "route"
UNASSIGNED = "unassigned"
FALLBACK_SLA_HOURS = 72.0

# Event types whose text opens or carries an issue a department may own.
VOC_EVENT_TYPES = frozenset({EventType.offered, EventType.received, EventType.message})


def carries_voc_text(event_type: EventType, text: str | None) -> bool:
    """Which events go through enrich/tag/route: customer text about an issue.

    Survey comments are voice of the customer too, but they are scored, not
    routed (they refer to a contact that was already routed).
    """
    return event_type in VOC_EVENT_TYPES and bool(text and text.strip())


@dataclass(frozen=True, slots=True)
class LastIssue:
    """What the repeat table holds per (customer, category); slots: the voc
    state holds one per customer and category for two repeat windows."""

    contact_id: str
    at: datetime

    def to_json(self) -> dict[str, str]:
        return {"contact_id": self.contact_id, "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, str] | None) -> LastIssue | None:
        if not data:
            return None
        return cls(contact_id=data["contact_id"], at=datetime.fromisoformat(data["at"]))


def repeat_key(customer_id: str | None, category: str) -> str | None:
    """Unknown customers cannot repeat: there is nothing to recognise them by."""
    return f"{customer_id}|{category}" if customer_id else None


def previous_contact(
    last: LastIssue | None, contact_id: str, at: datetime, window: timedelta
) -> str | None:
    """The earlier contact this one repeats, if the customer raised the same
    category on another contact within `window` before (DOMAIN.md: FCR)."""
    if last is None or last.contact_id == contact_id:
        return None
    if timedelta(0) <= at - last.at <= window:
        return last.contact_id
    return None


def is_triage(envelope: RoutingEnvelope) -> bool:
    """The model was unsure and no rule pinned the department: contacts.triage."""
    return (envelope.decision_source or "").startswith(TRIAGE_SOURCE + ":")


def decision_source(tags: Tags) -> str:
    rule_id = tags.department.rule_id
    return rule_id if is_model_decision(rule_id) else f"rule:{rule_id}"


def explain(tags: Tags, vote: ModelVote | None = None) -> str:
    rule_id = tags.department.rule_id
    if vote is not None and rule_id.startswith(TRIAGE_SOURCE + ":"):
        best = ", ".join(f"{d} {p:.2f}" for d, p in vote.candidates())
        how = f"model {vote.version} unsure (best {best} < {vote.threshold:.2f}): triage"
    elif vote is not None and is_model_decision(rule_id):
        how = f"model {vote.version}, p={vote.probability:.2f}"
    else:
        how = f"rule {rule_id}"
    return (
        f"department {tags.department.value} ({how}); "
        f"category {tags.category.value} (rule {tags.category.rule_id}); "
        f"urgency {tags.urgency.value} ({tags.urgency_rule_id})"
    )


def route(
    contact: EnrichedContact,
    tags: Tags,
    rules: RuleSet,
    now: datetime,
    previous_contact_id: str | None = None,
    vote: ModelVote | None = None,
) -> RoutingEnvelope:
    """The envelope for `dept.<department>`; an unknown department goes to unassigned.

    With a model vote the envelope records who decided (rule id, or model
    version and probability); triage items carry the two best candidates.
    """
    event = contact.event
    department = tags.department.value
    reason = explain(tags, vote)
    if department not in rules.departments:
        reason = f"department '{department}' is not in rules {rules.version}; " + reason
        department = UNASSIGNED
    sla_hours = (
        tags.sla_hours
        or rules.department_sla(department)
        or rules.defaults.sla_hours
        or FALLBACK_SLA_HOURS
    )
    customer = contact.customer
    return RoutingEnvelope(
        envelope_id=event.event_id,
        contact_id=event.contact_id,
        customer_id=event.customer_id,
        channel=event.channel,
        event_type=event.event_type,
        queue=event.queue,
        occurred_at=event.occurred_at,
        routed_at=now,
        department=department,
        text=event.text or "",
        language=contact.analysis.language,
        keywords=contact.analysis.keywords,
        sentiment=contact.analysis.sentiment,
        sentiment_class=contact.analysis.sentiment_class,
        customer_tier=customer.tier if customer else None,
        customer_city=customer.city if customer else None,
        customer_known=contact.customer_known,
        repeat_contact=contact.repeat_contact,
        previous_contact_id=previous_contact_id,
        tags=tags,
        reason=reason,
        sla_due_at=event.occurred_at + timedelta(hours=sla_hours),
        rules_version=rules.version,
        decision_source=decision_source(tags),
        model_version=vote.version if vote is not None else None,
        probability=round(vote.probability, 6) if vote is not None else None,
        candidates=[
            DepartmentCandidate(department=d, probability=round(p, 6)) for d, p in vote.candidates()
        ]
        if vote is not None and tags.department.rule_id.startswith(TRIAGE_SOURCE + ":")
        else None,
    )
