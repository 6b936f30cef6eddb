"""The routing envelope: what a department's topic receives for one contact.

Self-contained, so a department system can act on it without looking anything
up: the masked text, the tags with the rule that set each one, urgency, the
reason in words, and when the department's SLA runs out. Since the department
model: who decided the department (rule or model version + probability) and,
for items the model was unsure of (contacts.triage), the two best candidates.
The new fields are optional, so envelopes from before still validate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vocflow.schemas.common import SCHEMA_VERSION, Identifier, ShortName, StrictModel, Timestamp
from vocflow.schemas.derived.enriched import SentimentClass, Tags, Tier
from vocflow.schemas.source.contact import Channel, EventType


class DepartmentCandidate(StrictModel):
    department: ShortName
    probability: float = Field(ge=0.0, le=1.0)


class RoutingEnvelope(StrictModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    envelope_id: Identifier = Field(description="The routed event's event_id; stable on replay.")
    contact_id: Identifier = Field(description="Kafka key; resolutions refer to it.")
    customer_id: Identifier | None = None
    channel: Channel
    event_type: EventType
    queue: ShortName | None = None
    occurred_at: Timestamp
    routed_at: Timestamp
    department: ShortName
    text: str = Field(description="PII-masked customer text.")
    language: Literal["zh", "en", "mixed", "none"]
    keywords: list[str]
    sentiment: float = Field(ge=-1.0, le=1.0)
    sentiment_class: SentimentClass | None = Field(
        default=None, description="negative / neutral / positive (absent in older envelopes)."
    )
    customer_tier: Tier | None = None
    customer_city: ShortName | None = None
    customer_known: bool
    repeat_contact: bool
    previous_contact_id: Identifier | None = Field(
        default=None, description="The earlier contact this one repeats (same customer, category)."
    )
    tags: Tags
    reason: str = Field(description="Why this department and urgency, in words.")
    sla_due_at: Timestamp
    rules_version: str
    # Added with the department model; absent in envelopes written before it.
    decision_source: str | None = Field(
        default=None,
        description="Who chose the department: 'rule:<rule id>', 'model:<model version>', or "
        "'triage:<model version>' (model below its threshold: sent to contacts.triage).",
    )
    model_version: str | None = Field(
        default=None, description="Department model in force (also when a rule pinned it)."
    )
    probability: float | None = Field(
        default=None, ge=0.0, le=1.0, description="The model's probability of its best class."
    )
    candidates: list[DepartmentCandidate] | None = Field(
        default=None,
        description="The model's two best departments with their probabilities (triage items).",
    )
