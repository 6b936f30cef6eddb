"""Stage 1: raw channel bytes -> a validated ContactEvent, or a DeadLetter saying why not.

Pure function, no I/O: the agent wires it to Kafka, the tests call it directly.
Every kind of bad input (too big, not UTF-8, not JSON, not an object, schema
violations) becomes a DeadLetter with a bounded reason code, readable field
errors and the original bytes, so nothing is lost and the worker never dies.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from vocflow.schemas import ContactEvent, DeadLetter, FieldError, Reason, SourceRef
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
    try:
        event = ContactEvent.model_validate(data)
    except ValidationError as exc:
        reason, errors = _field_errors(exc)
        return dead_letter(raw, source, reason, errors, now=now)
    return without_personal_ids(event)


def without_personal_ids(event: ContactEvent) -> ContactEvent:
    """Ids that are phone numbers, ID numbers, cards or e-mail addresses become
    keyed pseudonyms here, the first stage: producers (a CRM keyed by mobile
    number, a third-party client) may send them, and ids are copied into every
    topic, table and log line downstream. Stable, so joins and dedup still work."""
    updates = {}
    for name in _ID_FIELDS:
        value = getattr(event, name)
        if value is not None and (safe := safe_id(value)) != value:
            updates[name] = safe
    return event.model_copy(update=updates) if updates else event
