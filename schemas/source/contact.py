"""The canonical contact event: one step in the life of one customer contact.

Every channel adapter maps its native format to this model; everything
downstream (enrichment, KPIs, ClickHouse) reads only this. DOMAIN.md's
contact lifecycle defines the event types.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from vocflow.schemas.common import (
    SCHEMA_VERSION,
    Identifier,
    Seconds,
    ShortName,
    StrictModel,
    Timestamp,
)

MAX_TEXT_CHARS = 20_000


class Channel(StrEnum):
    phone = "phone"
    chat = "chat"
    email = "email"
    wechat = "wechat"
    weibo = "weibo"
    sms = "sms"
    app = "app"
    survey = "survey"
    callback = "callback"


class EventType(StrEnum):
    # Synchronous channels (phone, chat): offered -> queued -> answered |
    # abandoned | timed_out -> held / transferred -> ended -> wrapup_done.
    offered = "offered"
    queued = "queued"
    answered = "answered"
    abandoned = "abandoned"
    timed_out = "timed_out"
    held = "held"
    transferred = "transferred"
    ended = "ended"
    wrapup_done = "wrapup_done"
    # Post-contact survey, possibly hours later.
    survey = "survey"
    # Asynchronous channels (email, app feedback): received -> first_response -> resolved.
    received = "received"
    first_response = "first_response"
    resolved = "resolved"
    # A customer message inside an ongoing contact (chat line, e-mail reply).
    message = "message"


class Payload(StrictModel):
    """Per-type measurements; which fields an event type requires is in REQUIRED_PAYLOAD."""

    wait_seconds: Seconds | None = Field(
        default=None, description="Time in queue before answer or abandon."
    )
    talk_seconds: Seconds | None = Field(
        default=None, description="Talk/handle time, hold excluded."
    )
    hold_seconds: Seconds | None = Field(default=None, description="Total time on hold.")
    after_work_seconds: Seconds | None = Field(
        default=None, description="After-contact work (话后处理)."
    )
    transfer_to: ShortName | None = Field(default=None, description="Queue the contact moved to.")
    csat: int | None = Field(default=None, ge=1, le=5, description="Satisfaction, 1-5.")
    nps: int | None = Field(default=None, ge=0, le=10, description="Likelihood to recommend, 0-10.")
    fcr: bool | None = Field(
        default=None, description="Customer says the issue was resolved first time."
    )


# event type -> (fields that must all be present, fields of which one must be present)
REQUIRED_PAYLOAD: dict[EventType, tuple[frozenset[str], frozenset[str]]] = {
    EventType.answered: (frozenset({"wait_seconds"}), frozenset()),
    EventType.abandoned: (frozenset({"wait_seconds"}), frozenset()),
    EventType.timed_out: (frozenset({"wait_seconds"}), frozenset()),
    EventType.held: (frozenset({"hold_seconds"}), frozenset()),
    EventType.transferred: (frozenset({"transfer_to"}), frozenset()),
    EventType.ended: (frozenset({"talk_seconds"}), frozenset()),
    EventType.wrapup_done: (frozenset({"after_work_seconds"}), frozenset()),
    EventType.survey: (frozenset(), frozenset({"csat", "nps", "fcr"})),
}


def _payload_json_schema(schema: dict[str, Any]) -> None:
    """Publish REQUIRED_PAYLOAD as JSON Schema if/then rules, so consumers validate
    exactly what the pydantic model enforces."""
    rules = []
    for event_type, (all_of, one_of) in REQUIRED_PAYLOAD.items():
        then: dict[str, Any] = {"required": ["payload"]}
        payload_rule: dict[str, Any] = {}
        if all_of:
            payload_rule["required"] = sorted(all_of)
            payload_rule["properties"] = {f: {"not": {"type": "null"}} for f in sorted(all_of)}
        if one_of:
            payload_rule["anyOf"] = [
                {"required": [f], "properties": {f: {"not": {"type": "null"}}}}
                for f in sorted(one_of)
            ]
        then["properties"] = {"payload": payload_rule}
        rules.append(
            {"if": {"properties": {"event_type": {"const": event_type.value}}}, "then": then}
        )
    schema["allOf"] = rules


class ContactEvent(StrictModel):
    """One lifecycle event of one contact (一次接触), on one channel."""

    model_config = StrictModel.model_config | {"json_schema_extra": _payload_json_schema}

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier = Field(description="Globally unique; duplicates are dropped by it.")
    contact_id: Identifier = Field(description="All events of one contact share it; Kafka key.")
    customer_id: Identifier | None = Field(default=None, description="CRM id; unknown if absent.")
    channel: Channel
    event_type: EventType
    occurred_at: Timestamp = Field(description="When it happened, with a UTC offset.")
    queue: ShortName | None = Field(default=None, description="ACD/skill queue or mailbox.")
    agent_id: Identifier | None = None
    text: str | None = Field(
        default=None,
        max_length=MAX_TEXT_CHARS,
        description="Customer text: chat line, e-mail body, comment, call transcript.",
    )
    payload: Payload | None = None
    source: ShortName = Field(default="unknown", description="Adapter or system that produced it.")

    @model_validator(mode="after")
    def _payload_fits_event_type(self) -> ContactEvent:
        required = REQUIRED_PAYLOAD.get(self.event_type)
        if required is None:
            return self
        all_of, one_of = required
        # Only the fields the rule names: each event type's check reads one to three
        # attributes (a model_dump of the whole payload was ~2 % of the worker's CPU).
        payload = self.payload
        present = {name for name in all_of | one_of if getattr(payload, name, None) is not None}
        missing = sorted(all_of - present)
        if missing:
            raise ValueError(
                f"event_type '{self.event_type.value}' needs payload field(s) {', '.join(missing)}"
            )
        if one_of and not one_of & present:
            raise ValueError(
                f"event_type '{self.event_type.value}' needs at least one of payload "
                f"fields {', '.join(sorted(one_of))}"
            )
        return self
