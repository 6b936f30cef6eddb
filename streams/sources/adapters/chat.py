"""Web/app chat (在线客服) transcripts -> canonical chat lifecycle events.

Chat is a synchronous channel (schemas/source/contact.py): a session is *offered*,
may wait in a human queue after the bot, is *answered* when an agent first
speaks, and *ends*. One transcript JSON (one session; or an array of them, or
``{"transcripts": [...]}``) is turned into that lifecycle. A transcript can be
sent again as it grows (e.g. every few minutes and at the end): the event ids
of what was already sent do not change, so only the new events are new.

Input fields:

================  ========  =====================================================
field             required  meaning
================  ========  =====================================================
``session_id``    yes       the chat session id -> ``contact_id``
``started_at``    yes       when the customer opened the chat
``queue``         no        skill group / queue of the human agents
``customer_id``   no        platform visitor id or CRM id (not a phone number)
``queued_at``     no        when the bot handed over to the human queue
``ended_at``      no        absent while the session is still open
``messages``      yes       list of ``{"id"?, "from", "text", "sent_at",
                            "agent_id"?}``; ``from`` is ``customer``, ``agent``
                            (``agent_id`` required), ``bot`` or ``system``
``ext``           no        vendor extras, ignored (also allowed per message)
================  ========  =====================================================

Events produced (in time order):

* ``offered`` at ``started_at``, text = the first customer message;
* ``queued`` at ``queued_at`` (when given);
* ``message`` for every later customer message, with its text (bot, agent and
  system lines are not customer text and produce no events);
* ``answered`` at the first agent message, wait = that - (``queued_at`` or
  ``started_at``), with its ``agent_id``;
* when ``ended_at`` is given: ``abandoned`` (wait = ended - queued) if the chat
  was queued for a human and no agent ever spoke; otherwise ``ended`` with
  talk = ended - answered (0 for a chat the bot handled alone, no agent).

Not derived: agent-to-agent hand-overs inside one session (a second agent id
is not reported as ``transferred``, since the target queue is unknown), hold
and wrap-up (chat platforms rarely export them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    seconds_between,
)

FORMAT = "chat"
ROLES = ("customer", "agent", "bot", "system")
_FIELDS = (
    "session_id",
    "started_at",
    "queue",
    "customer_id",
    "queued_at",
    "ended_at",
    "messages",
)
_MESSAGE_FIELDS = ("id", "from", "text", "sent_at", "agent_id")


def _messages(rec: Record) -> list[tuple[str, Record, datetime]]:
    raw = rec.data.get("messages")
    if raw is None:
        raise AdapterError(
            AdapterReason.missing_field,
            f"{rec.at('messages')} is required (a list, possibly empty)",
            loc=rec.at("messages"),
        )
    if not isinstance(raw, list):
        raise AdapterError(
            AdapterReason.wrong_type,
            f"{rec.at('messages')} must be a list of message objects",
            loc=rec.at("messages"),
        )
    out = []
    for i, item in enumerate(raw):
        loc = f"{rec.at('messages')}[{i}]"
        if not isinstance(item, dict):
            raise AdapterError(AdapterReason.not_an_object, f"{loc} must be a JSON object", loc=loc)
        msg = Record(item, loc, _MESSAGE_FIELDS)
        role = msg.req_string("from", f"one of {', '.join(ROLES)}")
        if role not in ROLES:
            raise AdapterError(
                AdapterReason.unknown_value,
                f"{msg.at('from')}: unknown sender {role!r}; use one of {', '.join(ROLES)}",
                loc=msg.at("from"),
            )
        if role == "agent":
            msg.req_identifier("agent_id", "which agent wrote it")
        msg.string("text")
        msg.string("id")
        out.append((role, msg, msg.req_time("sent_at")))
    # Stable sort: platforms usually send in order; ties keep the input order.
    out.sort(key=lambda m: m[2])
    return out


def _session(loc: str, raw: dict[str, Any], source: str) -> list[dict[str, Any]]:
    rec = Record(raw, loc, _FIELDS)
    session = rec.req_identifier("session_id", "the chat session id")
    started = rec.req_time("started_at", "when the customer opened the chat")
    queued = rec.time("queued_at")
    ended = rec.time("ended_at")
    messages = _messages(rec)
    common: dict[str, Any] = {
        "contact_id": session,
        "channel": "chat",
        "source": source,
        "customer_id": rec.identifier("customer_id"),
        "queue": rec.short_name("queue"),
    }

    def ev(step: str, at: datetime, *key: str, **extra: Any) -> dict[str, Any]:
        return event(
            event_id=make_event_id(FORMAT, source, session, step, *key),
            event_type=step,
            occurred_at=at,
            **common,
            **extra,
        )

    customer_lines = [(m, at) for role, m, at in messages if role == "customer"]
    customer_lines = [(m, at) for m, at in customer_lines if clip_text(m.string("text"))]
    first_text = clip_text(customer_lines[0][0].string("text")) if customer_lines else None
    out = [ev("offered", started, text=first_text)]
    if queued is not None:
        out.append(ev("queued", queued))
    for n, (msg, at) in enumerate(customer_lines[1:], start=1):
        # The platform's message id when it has one, else its position among
        # customer lines (stable while a transcript grows).
        key = msg.string("id") or f"#{n}"
        out.append(ev("message", at, key, text=clip_text(msg.string("text"))))

    agent_lines = [(m, at) for role, m, at in messages if role == "agent"]
    answered_at: datetime | None = None
    if agent_lines:
        first, answered_at = agent_lines[0]
        wait_from = queued or started
        wait = seconds_between(wait_from, answered_at, f"{loc or 'chat'} wait before the agent")
        out.append(
            ev("answered", answered_at, agent_id=first.identifier("agent_id"), wait_seconds=wait)
        )
    if ended is not None:
        if answered_at is None and queued is not None:
            wait = seconds_between(queued, ended, f"{loc or 'chat'} wait before leaving")
            out.append(ev("abandoned", ended, wait_seconds=wait))
        else:
            talk = 0.0
            agent = None
            if answered_at is not None:
                talk = seconds_between(answered_at, ended, f"{loc or 'chat'} talk time")
                agent = agent_lines[-1][0].identifier("agent_id")
            out.append(ev("ended", ended, agent_id=agent, talk_seconds=talk))
    seconds_between(started, ended or started, f"{loc or 'chat'} session (ended_at - started_at)")
    # Time order (stable, so offered stays before a queued at the same instant).
    out.sort(key=lambda e: datetime.fromisoformat(e["occurred_at"]))
    return out


def parse_chat(data: bytes, *, source: str = "chat") -> list[dict[str, Any]]:
    """Chat transcript JSON (one session or a batch) -> canonical chat events."""
    source = check_source(source)
    records = as_records(load_json(data, "chat"), "chat", "transcripts")
    out: list[dict[str, Any]] = []
    for loc, raw in records:
        out.extend(finish(_session(loc, raw, source), loc))
    return out
