"""Fold a contact's lifecycle events into one ``ContactFact`` per contact_id.

Why a commutative fold: the worker is at-least-once and producers are several
systems (CTI, chat platform, survey tool), so events of one contact arrive
late, twice or out of order. Every field is therefore merged with an operation
that does not care about order (min, max, arg-min/arg-max by ``(occurred_at,
event_id)``, or a sum protected by the ``seen`` event ids). Folding any
permutation of the same events, with any duplicates, gives the same final fact
(version aside). How each late or out-of-order case is treated:

* duplicate (same event_id, already seen) -> None, nothing changes. Only events
  that changed the fact are remembered; an event that changed nothing is
  idempotent by construction (all merges are monotone), so its duplicate changes
  nothing either. ``seen`` keeps the newest ``FoldConfig.max_seen`` ids; a
  duplicate of an older id on a contact with more changes than that would be
  counted again (holds/transfers/surveys only).
* ended/wrapup before answered -> talk and after-work are stored as they
  come; the answer fills in wait and answer time later. The queue-exit time is
  the earliest of answered/abandoned/timed_out/ended, so a lost "answered" never
  leaves a contact "waiting" forever once it ended.
* answered/abandoned before offered -> the arrival (offered_ms) is the minimum
  of the offered/queued times and of (answer or abandon time - wait), so a lost
  or late offered event does not lose the contact from SL and ASA. Queue entry
  (queued_ms, where waiting for an agent starts: queue depth, oldest waiting)
  is the minimum of the queued times and (answer or abandon time - wait); it
  is later than offered when an IVR or announcement comes first.
* several answers (re-answered after a transfer) -> the first one (SL, ASA);
  answered and abandoned both -> answered (the abandon was of a later leg).
* several ended/wrapup_done -> the latest one counts (a correction or the last leg).
* message -> only fills channel/customer/first queue/first event time; it does
  not move the latest queue or agent, so a chat's many lines are not material
  changes (no table write per line).
* survey hours later -> merged whenever it comes; per field, the latest
  survey answer that carries the field wins. The survey's channel ("survey")
  and its queue/agent do not override the contact's own.
* short abandon -> recomputed on every change from the abandon's wait and the
  threshold of its queue (or of the first queue if the abandon names none), so
  a late queue does not leave a stale flag.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter

from vocflow.schemas.source.contact import ContactEvent, EventType
from vocflow.streams.kpi.models import (
    DEFAULT_FOLD_CONFIG,
    EPOCH,
    ONE_MS,
    ContactFact,
    FoldConfig,
    SurveyAnswer,
)

_SLOTS = tuple(f.name for f in fields(ContactFact))
_GET_ALL = attrgetter(*_SLOTS)

_OFFERED = EventType.offered
_QUEUED = EventType.queued
_ANSWERED = EventType.answered
_ABANDONED = EventType.abandoned
_TIMED_OUT = EventType.timed_out
_HELD = EventType.held
_TRANSFERRED = EventType.transferred
_ENDED = EventType.ended
_WRAPUP = EventType.wrapup_done
_SURVEY = EventType.survey
_RECEIVED = EventType.received
_FIRST_RESPONSE = EventType.first_response
_RESOLVED = EventType.resolved
_MESSAGE = EventType.message


def _clone(fact: ContactFact) -> ContactFact:
    """One allocation: positional construction from a C-level attrgetter tuple."""
    return ContactFact(*_GET_ALL(fact))


def _ms(seconds: float | None) -> int:
    # Required payload fields are validated by the schema; 0 keeps mypy honest.
    return 0 if seconds is None else round(seconds * 1000)


def fold(
    fact: ContactFact | None,
    event: ContactEvent,
    config: FoldConfig = DEFAULT_FOLD_CONFIG,
) -> ContactFact | None:
    """Return the new fact, or None when ``event`` changes nothing (duplicate or
    no new information). ``fact`` is never mutated, so a caller may keep it
    (Faust table value, changelog) while the new one is written."""
    eid = event.event_id
    if fact is None:
        new = ContactFact(contact_id=event.contact_id)
        changed = True
    else:
        if eid in fact.seen:
            return None
        new = _clone(fact)
        changed = False
    ms = (event.occurred_at - EPOCH) // ONE_MS
    et = event.event_type
    payload = event.payload

    # --- identity fields, merged by stamp -----------------------------------
    # Stamps are compared on (ms, event_id) before a new tuple is built: most
    # events do not move them, and not allocating is what keeps the fold fast.
    key = (ms, eid)
    prio = 1 if et is _SURVEY else 0
    cs = new.channel_stamp
    if cs is None or (prio, ms, eid) < cs[:3]:
        new.channel_stamp = (prio, ms, eid, event.channel.value)
        changed = True
    if event.customer_id is not None:
        st = new.customer_stamp
        if st is None or key < st[:2]:
            new.customer_stamp = (ms, eid, event.customer_id)
            changed = True
    if et is not _SURVEY:
        if new.first_ms is None or ms < new.first_ms:
            new.first_ms = ms
            changed = True
        queue = event.queue
        if queue is not None:
            st = new.first_queue_stamp
            if st is None or key < st[:2]:
                new.first_queue_stamp = (ms, eid, queue)
                changed = True
        if et is not _MESSAGE:
            if et is _TRANSFERRED and payload is not None:
                queue = payload.transfer_to
            if queue is not None:
                st = new.queue_stamp
                if st is None or key > st[:2]:
                    new.queue_stamp = (ms, eid, queue)
                    changed = True
            if event.agent_id is not None:
                st = new.agent_stamp
                if st is None or key > st[:2]:
                    new.agent_stamp = (ms, eid, event.agent_id)
                    changed = True

    # --- lifecycle ---------------------------------------------------------
    if et is _OFFERED or et is _QUEUED:
        changed |= _arrive(new, ms)
        if et is _QUEUED:
            changed |= _enter_queue(new, ms)
    elif et is _ANSWERED or et is _ABANDONED or et is _TIMED_OUT:
        wait = _ms(payload.wait_seconds if payload else None)
        changed |= _arrive(new, ms - wait)
        changed |= _enter_queue(new, ms - wait)
        if et is _ANSWERED:
            answer = (ms, eid, wait)
            if new.answered is None or answer < new.answered:
                new.answered = answer
                changed = True
        elif et is _ABANDONED:
            abandon = (ms, eid, wait, event.queue)
            if new.abandoned is None or abandon < new.abandoned:
                new.abandoned = abandon
                changed = True
        else:
            timeout = (ms, eid, wait)
            if new.timed_out is None or timeout < new.timed_out:
                new.timed_out = timeout
                changed = True
    elif et is _HELD:
        new.hold_ms += _ms(payload.hold_seconds if payload else None)
        new.holds += 1
        changed = True
    elif et is _TRANSFERRED:
        new.transfers += 1
        changed = True
    elif et is _ENDED:
        end = (ms, eid, _ms(payload.talk_seconds if payload else None))
        if new.ended is None or end > new.ended:
            new.ended = end
            changed = True
    elif et is _WRAPUP:
        wrap = (ms, eid, _ms(payload.after_work_seconds if payload else None))
        if new.wrapup is None or wrap > new.wrapup:
            new.wrapup = wrap
            changed = True
    elif et is _SURVEY:
        if payload is not None:
            answer_: SurveyAnswer = (ms, eid, payload.csat, payload.nps, payload.fcr)
            new.surveys = tuple(sorted((*new.surveys, answer_)))
            _derive_survey(new)
            changed = True
    elif et is _RECEIVED:
        if new.received_ms is None or ms < new.received_ms:
            new.received_ms = ms
            changed = True
    elif et is _FIRST_RESPONSE:
        if new.first_response_ms is None or ms < new.first_response_ms:
            new.first_response_ms = ms
            changed = True
    elif et is _RESOLVED and (new.resolved_ms is None or ms < new.resolved_ms):
        new.resolved_ms = ms
        changed = True
    # message: only the identity fields above.

    if not changed:
        return None
    abandoned = new.abandoned
    new.short_abandon = (
        abandoned is not None
        and new.answered is None
        and abandoned[2]
        < config.short_abandon_threshold(
            abandoned[3] if abandoned[3] is not None else new.first_queue
        )
    )
    new.version += 1
    seen = new.seen
    new.seen = (*seen, eid) if len(seen) < config.max_seen else (*seen[1:], eid)
    return new


def _arrive(fact: ContactFact, ms: int) -> bool:
    if fact.offered_ms is None or ms < fact.offered_ms:
        fact.offered_ms = ms
        return True
    return False


def _enter_queue(fact: ContactFact, ms: int) -> bool:
    if fact.queued_ms is None or ms < fact.queued_ms:
        fact.queued_ms = ms
        return True
    return False


def _derive_survey(fact: ContactFact) -> None:
    """Latest answer per field (surveys are sorted by (ms, event_id))."""
    csat = nps = fcr = None
    for _, _, s_csat, s_nps, s_fcr in fact.surveys:
        if s_csat is not None:
            csat = s_csat
        if s_nps is not None:
            nps = s_nps
        if s_fcr is not None:
            fcr = s_fcr
    fact.csat, fact.nps, fact.fcr = csat, nps, fcr
    fact.survey_ms = fact.surveys[-1][0] if fact.surveys else None


def annotate(
    fact: ContactFact,
    *,
    department: str | None = None,
    category: str | None = None,
    sentiment: float | None = None,
    repeat: bool | None = None,
) -> ContactFact | None:
    """Fill the VOC fields (what the enrichment/tagging stage decided). None
    arguments leave a field as it is; returns None when nothing changed."""
    updates = {
        name: value
        for name, value in (
            ("department", department),
            ("category", category),
            ("sentiment", sentiment),
            ("repeat", repeat),
        )
        if value is not None and getattr(fact, name) != value
    }
    if not updates:
        return None
    new = _clone(fact)
    for name, value in updates.items():
        setattr(new, name, value)
    new.version += 1
    return new


def fold_all(
    events: list[ContactEvent] | tuple[ContactEvent, ...],
    config: FoldConfig = DEFAULT_FOLD_CONFIG,
) -> dict[str, ContactFact]:
    """Fold a batch in the given order (replays, tests, backfills)."""
    facts: dict[str, ContactFact] = {}
    for event in events:
        new = fold(facts.get(event.contact_id), event, config)
        if new is not None:
            facts[event.contact_id] = new
    return facts
