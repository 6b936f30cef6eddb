"""The voice-of-customer chain for one event: enrich -> tag -> repeat check -> route.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from vocflow.schemas import ContactEvent, CustomerProfile, EnrichedContact, RoutingEnvelope, Tags
from vocflow.streams.stages.enrich import enrich
from vocflow.streams.stages.routing import LastIssue, previous_contact, repeat_key, route
from vocflow.streams.stages.rules import RuleSet
from vocflow.streams.stages.tagging import tag


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
) -> VocResult:
    contact = enrich(event, profiles, now)
    tags = tag(contact, rules)
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
            tags = tag(contact, rules)
    envelope = None if already_routed else route(contact, tags, rules, now, previous)
    return VocResult(
        contact=contact,
        tags=tags,
        repeat_key=key,
        last_issue=newest,
        previous_contact_id=previous,
        envelope=envelope,
    )
