"""Phone CTI/ACD call events in vocflow's generic JSON -> canonical phone events.

Most ACDs (Avaya, Genesys, Huawei CEC, home-grown) can push call events to a
webhook but each has its own shape; rather than one adapter per vendor, a
vendor connector (or a few lines of ACD scripting) emits this documented JSON,
which maps one-to-one onto the canonical lifecycle. FreeSWITCH mod_callcenter
has its own adapter (``freeswitch.py``) because its events are fixed.

Input: one object, a JSON array of objects, or ``{"events": [...]}``. Fields:

=====================  ========  ============================================
field                  required  meaning
=====================  ========  ============================================
``call_id``            yes       the call's id in the ACD -> ``contact_id``
``event``              yes       ``offered`` (call reached the ACD, e.g. after
                                 IVR), ``queued``, ``answered``, ``abandoned``
                                 (caller hung up waiting), ``timed_out`` (ACD
                                 gave up: overflow/queue timeout), ``held``
                                 (sent when the hold *ends*, with its
                                 duration), ``transferred``, ``ended``,
                                 ``wrapup_done``
``timestamp``          yes       ISO 8601 (naive = Asia/Shanghai) or epoch
                                 s/ms
``event_id``           no        the ACD's own id of this event; when present
                                 it (not the other fields) keys the event id
``queue``              no        ACD/skill queue name (1-64 chars)
``agent_id``           no        agent id (answered, held, ended, wrapup_done)
``customer_id``        no        CRM id of the caller
``caller``             no        caller number (ANI); used only as the
                                 pseudonym ``tel-<sha256[:16]>`` when no
                                 ``customer_id`` is given, never in clear
``wait_seconds``       per type  answered, abandoned, timed_out: time queued
``talk_seconds``       per type  ended: talk time, hold excluded
``hold_seconds``       per type  held: this hold's length; ended: total hold
``after_work_seconds`` per type  wrapup_done: after-contact work (话后处理)
``transfer_to``        per type  transferred: target queue
``transcript``         no        speech-to-text of the call -> ``text``
``ext``                no        vendor extras, accepted and ignored
=====================  ========  ============================================

Unknown fields are rejected (a misspelt ``wait_second`` must not silently drop
a KPI input). A batch is all-or-nothing; the error's ``loc`` names the item.
"""

from __future__ import annotations

from typing import Any

from vocflow.streams.privacy.pseudonyms import pseudonym
from vocflow.streams.sources.adapters.common import (
    AdapterError,
    AdapterReason,
    Record,
    as_records,
    check_source,
    clip_text,
    event,
    finish,
    load_json,
    make_event_id,
    normalize_msisdn,
)

FORMAT = "cti"

# Payload fields each event type needs, with the hint shown when one is missing.
_REQUIRED: dict[str, tuple[str, str]] = {
    "answered": ("wait_seconds", "seconds the caller waited in queue before the answer"),
    "abandoned": ("wait_seconds", "seconds the caller waited before hanging up"),
    "timed_out": ("wait_seconds", "seconds the caller waited before the ACD gave up"),
    "held": ("hold_seconds", "length of this hold; send 'held' when the hold ends"),
    "transferred": ("transfer_to", "the queue the call moved to"),
    "ended": ("talk_seconds", "talk time of the call, hold excluded"),
    "wrapup_done": ("after_work_seconds", "after-contact work time"),
}
EVENTS = ("offered", "queued", *_REQUIRED)

_FIELDS = (
    "call_id",
    "event",
    "timestamp",
    "event_id",
    "queue",
    "agent_id",
    "customer_id",
    "caller",
    "wait_seconds",
    "talk_seconds",
    "hold_seconds",
    "after_work_seconds",
    "transfer_to",
    "transcript",
)


def _one(loc: str, raw: dict[str, Any], source: str) -> dict[str, Any]:
    rec = Record(raw, loc, _FIELDS)
    call_id = rec.req_identifier("call_id", "the ACD's call id")
    kind = rec.req_string("event", f"one of {', '.join(EVENTS)}")
    if kind not in EVENTS:
        raise AdapterError(
            AdapterReason.unknown_value,
            f"{rec.at('event')}: unknown call event {kind!r}; use one of {', '.join(EVENTS)}",
            loc=rec.at("event"),
        )
    at = rec.req_time("timestamp")
    if kind in _REQUIRED:
        need, hint = _REQUIRED[kind]
        if not rec.has(need):
            raise AdapterError(
                AdapterReason.missing_field,
                f"{rec.at(need)} is required for a {kind!r} event: {hint}",
                loc=rec.at(need),
            )
    customer = rec.identifier("customer_id")
    caller = rec.string("caller")
    if customer is None and caller and caller.strip():
        customer = pseudonym("tel", normalize_msisdn(caller, rec.at("caller")))
    native_id = rec.string("event_id")
    if native_id is not None and native_id.strip():
        key: tuple[str, ...] = ("id", native_id.strip())
    else:
        key = ("call", call_id, kind, at.isoformat())
    return event(
        event_id=make_event_id(FORMAT, source, *key),
        contact_id=call_id,
        channel="phone",
        event_type=kind,
        occurred_at=at,
        source=source,
        customer_id=customer,
        queue=rec.short_name("queue"),
        agent_id=rec.identifier("agent_id"),
        text=clip_text(rec.string("transcript")),
        wait_seconds=rec.seconds("wait_seconds"),
        talk_seconds=rec.seconds("talk_seconds"),
        hold_seconds=rec.seconds("hold_seconds"),
        after_work_seconds=rec.seconds("after_work_seconds"),
        transfer_to=rec.short_name("transfer_to"),
    )


def parse_cti(data: bytes, *, source: str = "cti") -> list[dict[str, Any]]:
    """Generic CTI JSON (one event or a batch) -> canonical phone events, in input order."""
    source = check_source(source)
    records = as_records(load_json(data, "CTI"), "CTI", "events")
    return [finish([_one(loc, raw, source)], loc)[0] for loc, raw in records]
