"""The routing envelope: what a department's topic receives for one contact.

Self-contained, so a department system can act on it without looking anything
up: the masked text, the tags with the rule that set each one, urgency, the
reason in words, and when the department's SLA runs out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vocflow.schemas.common import SCHEMA_VERSION, Identifier, ShortName, StrictModel, Timestamp
from vocflow.schemas.derived.enriched import SentimentClass, Tags, Tier
from vocflow.schemas.source.contact import Channel, EventType


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
