"""Stage: a validated contact event -> an EnrichedContact whose text is PII-masked.

Masking comes first: everything after this stage (tagging, routing, department
topics, ClickHouse, logs) only ever sees the masked text. Ids that are
themselves PII (operators often use the mobile number as customer id) were
already replaced by keyed pseudonyms in normalize; `safe_id` here again
covers events that reach this stage another way (tests, `vocflow eval`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from vocflow.schemas import (
    ContactEvent,
    CustomerProfile,
    EnrichedContact,
    SentimentClass,
    TextAnalysis,
)
from vocflow.streams.privacy.pii import mask_pii
from vocflow.streams.privacy.pseudonyms import safe_id
from vocflow.streams.stages.sentiment_classes import classify
from vocflow.streams.stages.tagging import bare_contact
from vocflow.streams.stages.textanalysis import analyze_text

STAGE = "enrich"


def enrich(
    event: ContactEvent,
    profiles: Mapping[str, CustomerProfile],
    now: datetime,
) -> EnrichedContact:
    """Mask, segment, score sentiment (score and 3-class label); join the customer
    profile (by the pseudonymous id)."""
    return enrich_with_tokens(event, profiles, now)[0]


def enrich_with_tokens(
    event: ContactEvent,
    profiles: Mapping[str, CustomerProfile],
    now: datetime,
) -> tuple[EnrichedContact, tuple[str, ...]]:
    """`enrich`, plus the jieba tokens of the masked text: the department model
    reuses them instead of segmenting the text a second time (segmentation is
    the most expensive step of text analysis)."""
    masked_text, counts = mask_pii(event.text) if event.text else (event.text, {})
    result = analyze_text(masked_text)
    sentiment = classify(masked_text, result.tokens) if masked_text else None
    customer_id = safe_id(event.customer_id) if event.customer_id else None
    profile = profiles.get(customer_id) if customer_id else None
    masked_event = event.model_copy(update={"text": masked_text, "customer_id": customer_id})
    contact = EnrichedContact(
        event=masked_event,
        customer=profile,
        customer_known=profile is not None,
        analysis=TextAnalysis(
            language=result.language,
            keywords=list(result.keywords),
            sentiment=sentiment.score if sentiment else 0.0,
            sentiment_class=SentimentClass(sentiment.label) if sentiment else None,
            pii_masked={kind: n for kind, n in counts.items() if n},
        ),
        enriched_at=now,
    )
    return contact, result.tokens


def enrich_text(text: str, channel: str) -> EnrichedContact:
    """The real enrichment of a bare text (unknown customer, fixed time): what
    `vocflow eval` feeds the rules, so evaluation sees what production sees."""
    return enrich_text_with_tokens(text, channel)[0]


def enrich_text_with_tokens(text: str, channel: str) -> tuple[EnrichedContact, tuple[str, ...]]:
    """`enrich_text` plus the tokens (what the department model reads)."""
    bare = bare_contact(text, channel)
    return enrich_with_tokens(bare.event, {}, bare.enriched_at)
