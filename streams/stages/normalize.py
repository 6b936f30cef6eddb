"""Stage 1: raw channel bytes -> a validated ContactEvent, or a DeadLetter saying why not.

Pure function, no I/O: the agent wires it to Kafka, the tests call it directly.
Every kind of bad input (too big, not UTF-8, not JSON, not an object, nested
deeper than ``MAX_DEPTH``, schema violations) becomes a DeadLetter with a bounded
reason code, readable field errors and the original bytes, so nothing is lost and
the worker never dies.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from vocflow.schemas import ContactEvent, DeadLetter, FieldError, Reason, SourceRef
from vocflow.streams.privacy.pii import mask_pii
from vocflow.streams.privacy.pseudonyms import safe_id

STAGE = "normalize"

# Originals larger than this are cut in the dead-letter envelope (flagged
# `truncated`), so the envelope itself always fits the DLQ topic's size limit.
MAX_DLQ_ORIGINAL_BYTES = 4 * 1024 * 1024

_MISSING = {"missing"}
_UNKNOWN_VALUE = {"enum", "literal_error"}
# Reason picked from the first error of the highest-ranked kind, so one event
# with several problems gets a stable reason.
_REASON_RANK = (Reason.missing_field, Reason.unknown_value, Reason.wrong_type, Reason.invalid_value)


_ID_FIELDS = ("event_id", "contact_id", "customer_id", "agent_id")

MAX_DEPTH = 64
"""Deepest nesting of JSON arrays/objects (the event object is level 1) an event may
have; deeper ones are dead-lettered. A ContactEvent is 2 levels deep (event ->
payload), so no valid event comes near it. Without a bound, values nested ~1,000
levels deep (still valid JSON for orjson) reach code that recurses over them:
pydantic's enum check takes the repr of a bad value, which overflows the stack."""
_CONTAINERS = frozenset({dict, list})  # what orjson makes arrays and objects into, exactly


def _classify(error_type: str) -> Reason:
    if error_type in _MISSING:
        return Reason.missing_field
    if error_type in _UNKNOWN_VALUE:
        return Reason.unknown_value
    if error_type.endswith(("_type", "_parsing")) or error_type == "model_attributes_type":
        return Reason.wrong_type
    return Reason.invalid_value


def _field_errors(exc: ValidationError) -> tuple[Reason, list[FieldError]]:
    errors = []
    reasons = set()
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in err["loc"])
        kind = err["type"]
        msg = "unknown field (check its spelling)" if kind == "extra_forbidden" else err["msg"]
        errors.append(FieldError(loc=loc, type=kind, msg=msg))
        reasons.add(_classify(kind))
    reason = next(r for r in _REASON_RANK if r in reasons)
    return reason, errors


def _clip_deep(data: dict[str, Any]) -> list[str]:
    """Replace every array/object deeper than MAX_DEPTH by an empty one, in place;
    returns the top-level fields that held one.

    Iterative, so any depth is safe. The clipped event is still validated, so the
    dead letter gets the reason the schema gives the field (an array where a string
    belongs is wrong_type, an unknown field invalid_value, ...), plus `_too_deep`.

    Only called when normalize's cheap test says the event may be too deep; a node
    holding only scalars is passed over at C speed.
    """
    deep: list[str] = []
    # (array or object as orjson made it, its level, the top-level field it is in)
    stack: list[tuple[Any, int, str | None]] = [(data, 1, None)]
    while stack:
        node, depth, field = stack.pop()
        is_dict = type(node) is dict
        if _CONTAINERS.isdisjoint(map(type, node.values() if is_dict else node)):
            continue
        # Replacing a value in place does not resize the dict/list being iterated.
        for key, value in node.items() if is_dict else enumerate(node):
            if type(value) not in _CONTAINERS:
                continue
            top = key if field is None else field
            if depth < MAX_DEPTH:
                stack.append((value, depth + 1, top))
                continue
            node[key] = type(value)()
            if top not in deep:
                deep.append(top)
    return deep


def _too_deep(fields: list[str]) -> list[FieldError]:
    msg = f"nested deeper than {MAX_DEPTH} levels (an event has at most 2)"
    return [FieldError(loc=field, type="too_deep", msg=msg) for field in fields]


def dead_letter(
    raw: bytes,
    source: SourceRef,
    reason: Reason,
    errors: list[FieldError],
    stage: str = STAGE,
    now: datetime | None = None,
) -> DeadLetter:
    kept = raw[:MAX_DLQ_ORIGINAL_BYTES]
    return DeadLetter(
        reason=reason,
        stage=stage,
        errors=errors,
        source=source,
        original_b64=base64.b64encode(kept).decode("ascii"),
        original_size=len(raw),
        truncated=len(kept) < len(raw),
        rejected_at=now or datetime.now(UTC),
    )


def normalize(
    raw: bytes,
    source: SourceRef,
    max_bytes: int = 1_000_000,
    now: datetime | None = None,
) -> ContactEvent | DeadLetter:
    """Validate one raw event. Never raises for bad input."""

    def reject(reason: Reason, loc: str, kind: str, msg: str) -> DeadLetter:
        return dead_letter(raw, source, reason, [FieldError(loc=loc, type=kind, msg=msg)], now=now)

    if len(raw) > max_bytes:
        return reject(
            Reason.oversized,
            "",
            "too_large",
            f"event is {len(raw)} bytes; the limit is {max_bytes}",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(
            Reason.invalid_utf8,
            "",
            "unicode_decode",
            f"not valid UTF-8 at byte {exc.start}; re-encode the source as UTF-8",
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return reject(Reason.bad_json, "", "json_invalid", f"not valid JSON: {exc}")
    if not isinstance(data, dict):
        return reject(
            Reason.not_an_object,
            "",
            "not_object",
            f"an event must be a JSON object, got {type(data).__name__}",
        )
    # Depth bound, on the hot path decided in C (~0.5 us, a third of walking a phone
    # event's fields in Python): fields that are all scalars (chat, e-mail: whatever the
    # size), or fewer '['/'{' bytes than MAX_DEPTH, since every level needs its own.
    if _CONTAINERS.isdisjoint(map(type, data.values())) or (
        raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH
    ):
        clipped: list[str] = []
    else:
        clipped = _clip_deep(data)
    try:
        event = ContactEvent.model_validate(data)
    except ValidationError as exc:
        # too_deep ranks lowest (invalid_value), so the schema's reason stands.
        reason, errors = _field_errors(exc)
        return dead_letter(raw, source, reason, _too_deep(clipped) + errors, now=now)
    except RecursionError:
        # Last line of defence: after _clip_deep, validation recurses at most MAX_DEPTH
        # levels, so this takes a caller that has used nearly all of the stack already.
        return reject(
            Reason.invalid_value,
            "",
            "recursion",
            "the event is nested too deeply to validate",
        )
    if clipped:  # not reached while the schema has no field for nested values
        return dead_letter(raw, source, Reason.invalid_value, _too_deep(clipped), now=now)
    return without_personal_ids(event)


def without_personal_ids(event: ContactEvent) -> ContactEvent:
    """Ids that are phone numbers, ID numbers, cards or e-mail addresses become
    keyed pseudonyms here, the first stage: producers (a CRM keyed by mobile
    number, a third-party client) may send them, and ids are copied into every
    topic, table and log line downstream. Stable, so joins and dedup still work."""
    updates = {}
    for name in _ID_FIELDS:
        value = getattr(event, name)
        if value is not None and (safe := safe_id(value, name != "event_id")) != value:
            updates[name] = safe
    return event.model_copy(update=updates) if updates else event


def published(event: ContactEvent) -> ContactEvent:
    """The copy of `event` for contacts.events, the canonical stream other systems
    subscribe to: its text with phone, ID, card, e-mail, name and address masked
    (the masking the voc stage applies). Clear text stays on the restricted input
    topics (contacts.raw, contacts.voc), where the voc stage needs it whole."""
    if not event.text:
        return event
    masked, _ = mask_pii(event.text)
    return event if masked == event.text else event.model_copy(update={"text": masked})
