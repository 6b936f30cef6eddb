"""Inbound SMS (短信上行) -> one canonical ``received`` event on channel ``sms``.

Input: one JSON object, an array, or ``{"messages": [...]}``:

===============  ========  ==================================================
field            required  meaning
===============  ========  ==================================================
``from``         yes       sender's number (MSISDN), any of ``13800138000``,
                           ``+86 138 0013 8000``, ``008613800138000``
``to``           yes       the service number it was sent to (``10086``,
                           ``1069...``) -> ``queue``
``text``         yes       the message (the provider joins long SMS parts)
``received_at``  yes       ISO 8601 (naive = Asia/Shanghai) or epoch s/ms
``message_id``   no        the SMS gateway's id; keys ``event_id`` when given
``ext``          no        gateway extras, accepted and ignored
===============  ========  ==================================================

Every SMS is its own contact: SMS has no thread, and joining texts into
conversations needs state this pure function does not have (the repeat-contact
detector links them through ``customer_id``). The number never appears in
clear: ``customer_id`` = ``sms-`` + SHA-256(normalized number)[:16] where
normalizing drops spaces, dashes and a +86/0086/86 prefix of a mainland mobile.
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
    make_contact_id,
    make_event_id,
    normalize_msisdn,
)

FORMAT = "sms"
_FIELDS = ("from", "to", "text", "received_at", "message_id")


def _one(loc: str, raw: dict[str, Any], source: str) -> dict[str, Any]:
    rec = Record(raw, loc, _FIELDS)
    sender = normalize_msisdn(rec.req_string("from", "the sender's number"), rec.at("from"))
    to = rec.req_string("to", "the service number").strip()
    if len(to) > 64:
        raise AdapterError(
            AdapterReason.invalid_value, f"{rec.at('to')} is longer than 64 chars", loc=rec.at("to")
        )
    text = clip_text(rec.req_string("text", "the message text"))
    at = rec.req_time("received_at")
    message_id = rec.string("message_id")
    if message_id and message_id.strip():
        key: tuple[str, ...] = ("id", message_id.strip())
    else:
        key = ("msg", sender, to, at.isoformat(), text or "")
    return event(
        event_id=make_event_id(FORMAT, source, *key),
        contact_id=make_contact_id("sms", source, *key),
        channel="sms",
        event_type="received",
        occurred_at=at,
        source=source,
        customer_id=pseudonym("tel", sender),
        queue=to,
        text=text,
    )


def parse_sms(data: bytes, *, source: str = "sms") -> list[dict[str, Any]]:
    """Inbound SMS JSON (one or a batch) -> canonical ``received`` events, in input order."""
    source = check_source(source)
    records = as_records(load_json(data, "SMS"), "SMS", "messages")
    return [finish([_one(loc, raw, source)], loc)[0] for loc, raw in records]
