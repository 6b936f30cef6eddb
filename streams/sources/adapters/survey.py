"""Post-contact survey answers (满意度回访) -> canonical ``survey`` events.

A survey refers to a contact that already happened (often hours earlier, on
another channel), so it carries that contact's id and joins its lifecycle.

Input: one JSON object, an array, or ``{"surveys": [...]}``:

===============  ========  ==================================================
field            required  meaning
===============  ========  ==================================================
``contact_id``   yes       the surveyed contact (call id, chat session, ...)
``answered_at``  yes       ISO 8601 (naive = Asia/Shanghai) or epoch s/ms
``csat``         one of    satisfaction, whole number 1-5
``nps``          these     likelihood to recommend, whole number 0-10
``fcr``          three     true if the customer says it was solved first time
``comment``      no        free text -> ``text`` (voice of the customer)
``survey_id``    no        the survey system's answer id; keys ``event_id``
``channel``      no        channel of the surveyed contact (phone, chat, ...);
                           ``survey`` when unknown
``customer_id``  no        CRM id (not a phone number)
``agent_id``     no        agent who handled the contact (per-agent CSAT)
``queue``        no        queue of the contact
``ext``          no        survey-tool extras, accepted and ignored
===============  ========  ==================================================

Scores are checked strictly (``"4"``, ``4.5``, ``true`` are rejected, not
coerced): a wrong scale silently read would corrupt CSAT and NPS.
"""

from __future__ import annotations

from typing import Any

from vocflow.schemas import Channel
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
)

FORMAT = "survey"
_FIELDS = (
    "contact_id",
    "answered_at",
    "csat",
    "nps",
    "fcr",
    "comment",
    "survey_id",
    "channel",
    "customer_id",
    "agent_id",
    "queue",
)
CHANNELS = tuple(c.value for c in Channel)


def _one(loc: str, raw: dict[str, Any], source: str) -> dict[str, Any]:
    rec = Record(raw, loc, _FIELDS)
    contact = rec.req_identifier("contact_id", "the id of the surveyed contact")
    at = rec.req_time("answered_at")
    csat = rec.integer("csat", 1, 5)
    nps = rec.integer("nps", 0, 10)
    fcr = rec.boolean("fcr")
    if csat is None and nps is None and fcr is None:
        raise AdapterError(
            AdapterReason.missing_field,
            f"{loc or 'survey'} has no answer: give at least one of csat (1-5), nps (0-10), fcr",
            loc=rec.at("csat"),
        )
    channel = rec.string("channel") or "survey"
    if channel not in CHANNELS:
        raise AdapterError(
            AdapterReason.unknown_value,
            f"{rec.at('channel')}: unknown channel {channel!r}; use one of {', '.join(CHANNELS)}",
            loc=rec.at("channel"),
        )
    survey_id = rec.string("survey_id")
    if survey_id and survey_id.strip():
        key: tuple[str, ...] = ("id", survey_id.strip())
    else:
        key = ("contact", contact, at.isoformat())
    return event(
        event_id=make_event_id(FORMAT, source, *key),
        contact_id=contact,
        channel=channel,
        event_type="survey",
        occurred_at=at,
        source=source,
        customer_id=rec.identifier("customer_id"),
        queue=rec.short_name("queue"),
        agent_id=rec.identifier("agent_id"),
        text=clip_text(rec.string("comment")),
        csat=csat,
        nps=nps,
        fcr=fcr,
    )


def parse_survey(data: bytes, *, source: str = "survey") -> list[dict[str, Any]]:
    """Survey answer JSON (one or a batch) -> canonical ``survey`` events, in input order."""
    source = check_source(source)
    records = as_records(load_json(data, "survey"), "survey", "surveys")
    return [finish([_one(loc, raw, source)], loc)[0] for loc, raw in records]
