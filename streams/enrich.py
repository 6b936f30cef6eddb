"""Stage: a validated contact event -> an EnrichedContact whose text is PII-masked.

Masking comes first: everything after this stage (tagging, routing, department
topics, ClickHouse, logs) only ever sees the masked text. An id that is itself
PII (operators often use the mobile number as customer id) is replaced by a
stable pseudonym, so joins still work and the number never leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

from vocflow.schemas import ContactEvent, CustomerProfile, EnrichedContact, TextAnalysis
from vocflow.streams.pii import mask_pii
from vocflow.streams.sentiment import sentiment_score
from vocflow.streams.textanalysis import analyze_text

STAGE = "enrich"


def pseudonym(value: str) -> str:
    """Stable, non-reversible stand-in for an id that is a phone, ID or card number."""
    return "p-" + hashlib.sha256(value.encode()).hexdigest()[:20]


def safe_id(value: str | None) -> str | None:
    if value is None:
        return None
    _, counts = mask_pii(value)
    return pseudonym(value) if any(counts.values()) else value


def enrich(
    event: ContactEvent,
    profiles: Mapping[str, CustomerProfile],
    now: datetime,
) -> EnrichedContact:
    """Mask, segment, score; join the customer profile (looked up by the raw id)."""
    masked_text, counts = mask_pii(event.text) if event.text else (event.text, {})
    result = analyze_text(masked_text)
    sentiment = sentiment_score(masked_text, result.tokens) if masked_text else 0.0
    profile = profiles.get(event.customer_id) if event.customer_id else None
    if profile is not None and profile.customer_id != safe_id(profile.customer_id):
        profile = profile.model_copy(update={"customer_id": safe_id(profile.customer_id)})
    masked_event = event.model_copy(
        update={"text": masked_text, "customer_id": safe_id(event.customer_id)}
    )
    return EnrichedContact(
        event=masked_event,
        customer=profile,
        customer_known=profile is not None,
        analysis=TextAnalysis(
            language=result.language,
            keywords=list(result.keywords),
            sentiment=round(max(-1.0, min(1.0, sentiment)), 4),
            pii_masked={kind: n for kind, n in counts.items() if n},
        ),
        enriched_at=now,
    )


def enrich_text(text: str, channel: str) -> EnrichedContact:
    """The real enrichment of a bare text (unknown customer, fixed time): what
    `vocflow eval` feeds the rules, so evaluation sees what production sees."""
    from vocflow.streams.evaluate import default_prepare

    bare = default_prepare(text, channel)
    return enrich(bare.event, {}, bare.enriched_at)
