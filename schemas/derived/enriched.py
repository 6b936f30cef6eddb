"""What enrichment adds to a contact event, and what tagging decides about it.

Text in these models is always PII-masked: they are what leaves the enrichment
stage (DOMAIN.md, Privacy).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from vocflow.schemas.common import SCHEMA_VERSION, Identifier, ShortName, StrictModel, Timestamp
from vocflow.schemas.source.contact import ContactEvent


class SentimentClass(StrEnum):
    """Three classes: an inquiry or a status check is neutral even when it names
    a problem (my new phone cannot get online: how do I ...)."""

    negative = "negative"
    neutral = "neutral"
    positive = "positive"


class Tier(StrEnum):
    vip = "vip"
    gold = "gold"
    standard = "standard"


class CustomerProfile(StrictModel):
    """Published on the compacted topic `customers.profiles`, keyed by customer_id."""

    customer_id: Identifier
    tier: Tier = Tier.standard
    city: ShortName | None = None
    region: ShortName | None = None
    tenure_months: int | None = Field(default=None, ge=0, le=1200)
    products: list[ShortName] = Field(default_factory=list)


class TextAnalysis(StrictModel):
    language: Literal["zh", "en", "mixed", "none"] = "none"
    keywords: list[str] = Field(default_factory=list, description="Top keywords, best first.")
    sentiment: float = Field(
        default=0.0,
        ge=-1.0,
        le=1.0,
        description="-1 very negative .. 1 very positive: P(positive) - P(negative).",
    )
    sentiment_class: SentimentClass | None = Field(
        default=None,
        description=(
            "negative / neutral / positive from calibrated thresholds on `sentiment`;"
            " None when there is no text (and in contacts enriched before the field existed)."
        ),
    )
    pii_masked: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "How many of each PII kind were masked, by kind: phone, id_number, bank_card,"
            " email, address, name (kinds with none are left out)."
        ),
    )


class EnrichedContact(StrictModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    event: ContactEvent = Field(description="The event, its text already masked.")
    customer: CustomerProfile | None = None
    customer_known: bool = False
    analysis: TextAnalysis = Field(default_factory=TextAnalysis)
    repeat_contact: bool = False
    enriched_at: Timestamp


class Urgency(StrEnum):
    p1 = "P1"
    p2 = "P2"
    p3 = "P3"
    p4 = "P4"


class TagValue(StrictModel):
    value: str
    rule_id: str = Field(description="Rule that set it, or 'default'.")


class Tags(StrictModel):
    """The knowledge map's four dimensions plus category and urgency, each explainable."""

    business_type: TagValue
    support_system: TagValue
    bearer_network: TagValue
    department: TagValue
    category: TagValue
    urgency: Urgency
    urgency_rule_id: str
    sla_hours: float | None = Field(
        default=None, gt=0, description="Resolution SLA set by the rules."
    )
