"""The voice-of-customer chain for one event: enrich -> classify -> tag -> repeat check -> route.

Enrichment and the department model run over a whole batch first
(`prepare_batch`), the rest per event in arrival order.

Repeat detection is by arrival order: a contact is a repeat when the customer's
latest earlier contact in the same category (event time) is within the window.
A contact that arrives before an earlier one of the same customer (possible only
when a backlog is replayed from several partitions) is not marked retroactively:
it was already routed.

The agent owns the state (last issue per customer and category, contacts
already routed) and hands it in through `last_issue` and `already_routed`, so
this stays a pure function that tests and the benchmark call directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vocflow.schemas import ContactEvent, CustomerProfile, EnrichedContact, RoutingEnvelope, Tags
from vocflow.streams.stages.deptmodel import DeptModel, features
from vocflow.streams.stages.enrich import enrich_with_tokens
from vocflow.streams.stages.routing import LastIssue, previous_contact, repeat_key, route
from vocflow.streams.stages.rules import RuleSet
from vocflow.streams.stages.tagging import ModelVote, tag


@dataclass(frozen=True)
class Prepared:
    """An enriched contact and its model vote, computed for a whole batch at once."""

    contact: EnrichedContact
    vote: ModelVote | None


def prepare_batch(
    events: Sequence[ContactEvent],
    profiles: Mapping[str, CustomerProfile],
    now: datetime,
    model: DeptModel | None,
) -> list[Prepared]:
    """Enrich every event, then classify them all in one model call (batch
    prediction is what keeps the model within the throughput budget)."""
    enriched = [enrich_with_tokens(e, profiles, now) for e in events]
    if model is None:
        return [Prepared(c, None) for c, _ in enriched]
    votes = model.predict([features(c.event.text or "", tokens) for c, tokens in enriched])
    return [Prepared(c, v) for (c, _), v in zip(enriched, votes, strict=True)]


@dataclass(frozen=True)
class VocResult:
    contact: EnrichedContact
    tags: Tags
    repeat_key: str | None  # where to store `last_issue`; None for unknown customers
    last_issue: LastIssue  # what to store: the customer's latest contact in event time
    previous_contact_id: str | None
    envelope: RoutingEnvelope | None  # None: the contact was routed before


def analyse_and_route(
    event: ContactEvent,
    profiles: Mapping[str, CustomerProfile],
    rules: RuleSet,
    now: datetime,
    last_issue: Callable[[str], LastIssue | None],
    already_routed: bool,
    window: timedelta,
    model: DeptModel | None = None,
    prepared: Prepared | None = None,
) -> VocResult:
    """One event; `prepared` (from `prepare_batch`) skips enrichment and classification."""
    if prepared is None:
        prepared = prepare_batch([event], profiles, now, model)[0]
    contact, vote = prepared.contact, prepared.vote
    tags = tag(contact, rules, vote)
    key = repeat_key(contact.event.customer_id, tags.category.value)
    previous = None
    this = LastIssue(event.contact_id, event.occurred_at)
    newest = this
    if key is not None:
        stored = last_issue(key)
        # A late event must not move the customer's latest contact back in time.
        if stored is not None and stored.at > this.at:
            newest = stored
        previous = previous_contact(stored, event.contact_id, event.occurred_at, window)
        if previous is not None:
            contact = contact.model_copy(update={"repeat_contact": True})
            tags = tag(contact, rules, vote)
    envelope = None if already_routed else route(contact, tags, rules, now, previous, vote)
    return VocResult(
        contact=contact,
        tags=tags,
        repeat_key=key,
        last_issue=newest,
        previous_contact_id=previous,
        envelope=envelope,
    )
