"""What every channel adapter shares: the error type, ids, pseudonyms, times, validation.

Adapters are pure functions ``bytes -> list[dict]``. They never raise anything
but :class:`AdapterError`, whose ``reason`` is a short, bounded code (usable as a
metric label and in the webhook's per-item error list) and whose ``message``
tells the sender what to fix. Everything an adapter returns has already passed
``ContactEvent.model_validate``, so the webhook can publish it as is.

Conventions shared by all adapters (documented once here and in README.md):

* **Deterministic ids.** ``event_id`` is ``<format>-`` + the first 32 hex digits
  of SHA-256 over the adapter format, the ``source`` and the stable fields of
  the native record (its own message id when it has one). Re-delivering the
  same input therefore yields the same ``event_id`` and the pipeline's
  de-duplication drops the copy.
* **Time zone.** Naive local times (no offset) are read as Asia/Shanghai
  (UTC+08:00, no DST since 1991, so a fixed offset is exact and needs no tz
  database). Epoch numbers are converted to UTC+08:00. Times that carry an
  offset keep it.
* **Pseudonyms.** Phone numbers and e-mail addresses never become
  ``customer_id`` in clear: ``tel-``/``mail-`` + keyed HMAC of the normalized
  value (`vocflow.streams.privacy.pseudonyms`; the same number gets the same
  pseudonym on every channel).
* **Texts** longer than the schema's limit are cut to ``MAX_TEXT_CHARS``
  rather than rejected: a long e-mail is still a customer contact.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError

from vocflow.schemas import ContactEvent, Reason
from vocflow.schemas.source.contact import MAX_TEXT_CHARS
from vocflow.streams.privacy.pseudonyms import msisdn

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
"""China Standard Time. Fixed offset on purpose: China has had no DST since 1991."""

MAX_JSON_BYTES = 2_000_000
"""JSON bodies above this are rejected (a chat transcript is well under 1 MB)."""

ECHO_CHARS = 100
"""Input values quoted in error messages are cut to this many characters: a message
names the offending value, it does not return a 256 kB header to its sender."""

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$")
_ID_MAX = 128
_SHORT_MAX = 64

# Epoch magnitudes: seconds until year 5138 stay below 1e11, milliseconds below
# 1e14; so a number's size tells its unit without ambiguity for real dates.
_EPOCH_MS = 1e11
_EPOCH_US = 1e14


class AdapterReason(StrEnum):
    """Bounded set of reasons an adapter rejects its input (metric label, API field)."""

    oversized = "oversized"
    empty = "empty"
    bad_json = "bad_json"
    bad_format = "bad_format"
    not_an_object = "not_an_object"
    missing_field = "missing_field"
    unknown_field = "unknown_field"
    wrong_type = "wrong_type"
    unknown_value = "unknown_value"
    invalid_value = "invalid_value"
    bad_charset = "bad_charset"
    undecodable = "undecodable"
    bad_transfer_encoding = "bad_transfer_encoding"
    truncated_mime = "truncated_mime"
    no_body = "no_body"
    bad_xml = "bad_xml"
    unsafe_xml = "unsafe_xml"
    unsupported = "unsupported"


# How an adapter rejection is filed in the dead-letter topic, whose reason set
# is smaller and shared by all stages.
DEAD_LETTER_REASON: dict[AdapterReason, Reason] = {
    AdapterReason.oversized: Reason.oversized,
    AdapterReason.bad_json: Reason.bad_json,
    AdapterReason.not_an_object: Reason.not_an_object,
    AdapterReason.missing_field: Reason.missing_field,
    AdapterReason.wrong_type: Reason.wrong_type,
    AdapterReason.unknown_value: Reason.unknown_value,
}


class AdapterError(Exception):
    """Input that cannot become a ContactEvent; ``message`` says what to fix.

    ``loc`` is the place in the native input (``"events[2].wait_seconds"``,
    ``"part 1"``, ``"Content"``) or ``""`` for the whole input.
    """

    def __init__(self, reason: AdapterReason | str, message: str, *, loc: str = "") -> None:
        self.reason = AdapterReason(reason)
        self.message = message
        self.loc = loc
        super().__init__(f"{self.reason.value}: {message}")

    @property
    def dead_letter_reason(self) -> Reason:
        """The dead-letter reason code this rejection is filed under."""
        return DEAD_LETTER_REASON.get(self.reason, Reason.invalid_value)

    def to_json(self) -> dict[str, str]:
        """The shape the webhook returns per rejected item."""
        return {"reason": self.reason.value, "loc": self.loc, "message": self.message}


# --------------------------------------------------------- error messages


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters (marked with an ellipsis), to quote input."""
    return text if len(text) <= limit else text[:limit] + "…"


def shown(value: object, limit: int = ECHO_CHARS) -> str:
    """An input value as an error message quotes it: bounded, and never the repr of a
    container (JSON nested 1,000 levels deep overflows the stack in repr, and a list of
    100,000 items is no message), nor of an int too long for ``repr``."""
    if isinstance(value, str):
        return repr(clip(value, limit))
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 256 else f"<{value.bit_length()}-bit int>"
    if isinstance(value, list | tuple):
        return f"[…] ({len(value)} items)"
    if isinstance(value, dict):
        return f"{{…}} ({len(value)} keys)"
    return f"<{type(value).__name__}>"


# --------------------------------------------------------------------- ids


def _sha(*parts: str) -> str:
    # Unit separator between parts, so ("ab", "c") and ("a", "bc") differ.
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def make_event_id(fmt: str, source: str, *parts: str) -> str:
    """Deterministic event id: same format, source and stable fields -> same id."""
    return f"{fmt}-{_sha(fmt, source, *parts)[:32]}"


def make_contact_id(prefix: str, *parts: str) -> str:
    """Contact id derived from native ids that are unsafe or too long to use raw."""
    return f"{prefix}:{_sha(prefix, *parts)[:24]}"


def normalize_msisdn(raw: str, loc: str) -> str:
    """A phone number's canonical form (`pseudonyms.msisdn`), or a clear error."""
    digits = re.sub(r"[\s()-]", "", raw)
    bare = digits.removeprefix("+")
    if not bare.isascii() or not bare.isdigit() or not 3 <= len(bare) <= 20:
        raise AdapterError(
            AdapterReason.invalid_value,
            f"{loc} must be a phone number (digits, optional leading +), got {shown(raw)}",
            loc=loc,
        )
    return msisdn(digits)


# -------------------------------------------------------------------- times


def epoch_to_datetime(value: float, loc: str) -> datetime:
    """Epoch seconds, milliseconds or microseconds (told apart by size) -> UTC+08:00."""
    if not math.isfinite(value) or value <= 0:
        raise AdapterError(
            AdapterReason.invalid_value, f"{loc} must be a positive epoch time", loc=loc
        )
    if value >= _EPOCH_US:
        value /= 1e6
    elif value >= _EPOCH_MS:
        value /= 1e3
    try:
        return datetime.fromtimestamp(value, UTC).astimezone(SHANGHAI)
    except (OverflowError, OSError, ValueError) as exc:
        raise AdapterError(
            AdapterReason.invalid_value, f"{loc} is not a usable epoch time: {exc}", loc=loc
        ) from None


def parse_time(value: object, loc: str) -> datetime:
    """ISO 8601 string (naive = Asia/Shanghai) or epoch number -> aware datetime."""
    if isinstance(value, bool):
        raise AdapterError(
            AdapterReason.wrong_type, f"{loc} must be a time, not a boolean", loc=loc
        )
    if isinstance(value, int | float):
        return epoch_to_datetime(float(value), loc)
    if not isinstance(value, str):
        raise AdapterError(
            AdapterReason.wrong_type,
            f"{loc} must be an ISO 8601 string or an epoch number, got {type(value).__name__}",
            loc=loc,
        )
    text = value.strip()
    if text.isascii() and text.isdigit():
        return epoch_to_datetime(float(text), loc)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise AdapterError(
            AdapterReason.invalid_value,
            f"{loc}: {shown(value)} is not an ISO 8601 time; send e.g. '2024-05-01T09:30:00+08:00'",
            loc=loc,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=SHANGHAI)
    return parsed


def seconds_between(start: datetime, end: datetime, what: str) -> float:
    """Non-negative duration; a negative one means the sender's clocks disagree."""
    delta = (end - start).total_seconds()
    if delta < 0:
        raise AdapterError(
            AdapterReason.invalid_value,
            f"{what} is negative ({delta:g} s): the end time is before the start time",
        )
    return round(delta, 3)


# ---------------------------------------------------------------- JSON input


def check_size(data: bytes, limit: int, what: str) -> None:
    """Reject non-bytes, empty and oversized inputs before any parsing work."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AdapterError(
            AdapterReason.wrong_type, f"{what} input must be bytes, got {type(data).__name__}"
        )
    if len(data) > limit:
        raise AdapterError(
            AdapterReason.oversized,
            f"{what} input is {len(data)} bytes, above the {limit}-byte limit; split it",
        )
    if not bytes(data).strip():
        raise AdapterError(AdapterReason.empty, f"{what} input is empty")


def load_json(data: bytes, what: str) -> Any:
    """Parse a JSON body (UTF-8), with a size check first."""
    check_size(data, MAX_JSON_BYTES, what)
    try:
        return orjson.loads(bytes(data))
    except orjson.JSONDecodeError as exc:
        raise AdapterError(
            AdapterReason.bad_json, f"{what} input is not valid UTF-8 JSON: {exc}"
        ) from None


def as_records(doc: Any, what: str, batch_key: str) -> list[tuple[str, dict[str, Any]]]:
    """One object, a JSON array of objects, or ``{batch_key: [...]}`` -> (loc, object) pairs."""
    if isinstance(doc, dict) and set(doc) == {batch_key}:
        doc = doc[batch_key]
        prefix = batch_key
    else:
        prefix = ""
    if isinstance(doc, dict):
        return [("", doc)]
    if not isinstance(doc, list):
        raise AdapterError(
            AdapterReason.not_an_object,
            f"{what} input must be a JSON object or an array of objects, got {type(doc).__name__}",
        )
    if not doc:
        raise AdapterError(AdapterReason.empty, f"{what} input is an empty array")
    out = []
    for i, item in enumerate(doc):
        loc = f"{prefix}[{i}]"
        if not isinstance(item, dict):
            raise AdapterError(
                AdapterReason.not_an_object,
                f"{loc} must be a JSON object, got {type(item).__name__}",
                loc=loc,
            )
        out.append((loc, item))
    return out


class Record:
    """Typed, located access to one native JSON object's fields.

    Unknown fields are rejected (a typo such as ``wait_second`` would otherwise
    silently drop a KPI input); vendor extras belong under ``ext``, which is
    accepted and ignored.
    """

    def __init__(self, data: Mapping[str, Any], loc: str, known: Iterable[str]) -> None:
        self.data = data
        self.loc = loc
        allowed = {*known, "ext"}
        unknown = sorted(k for k in data if k not in allowed)
        if unknown:
            raise AdapterError(
                AdapterReason.unknown_field,
                f"unknown field(s) {', '.join(map(shown, unknown))} in {loc or 'the object'}; "
                f"known: {', '.join(sorted(allowed))} (put vendor extras under 'ext')",
                loc=self.at(unknown[0]),
            )
        if "ext" in data and not isinstance(data["ext"], dict):
            raise AdapterError(
                AdapterReason.wrong_type, f"{self.at('ext')} must be an object", loc=self.at("ext")
            )

    def at(self, key: str) -> str:
        return f"{self.loc}.{key}" if self.loc else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _missing(self, key: str, hint: str = "") -> AdapterError:
        return AdapterError(
            AdapterReason.missing_field,
            f"{self.at(key)} is required{': ' + hint if hint else ''}",
            loc=self.at(key),
        )

    def string(self, key: str, *, required: bool = False, hint: str = "") -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key, hint)
            return None
        if not isinstance(value, str):
            raise AdapterError(
                AdapterReason.wrong_type,
                f"{self.at(key)} must be a string, got {type(value).__name__}",
                loc=self.at(key),
            )
        if required and not value.strip():
            raise AdapterError(
                AdapterReason.invalid_value, f"{self.at(key)} must not be empty", loc=self.at(key)
            )
        return value

    def req_string(self, key: str, hint: str = "") -> str:
        value = self.string(key, required=True, hint=hint)
        assert value is not None
        return value

    def identifier(self, key: str, *, required: bool = False, hint: str = "") -> str | None:
        value = self.string(key, required=required, hint=hint)
        if value is None:
            return None
        return check_identifier(value, self.at(key))

    def req_identifier(self, key: str, hint: str = "") -> str:
        value = self.identifier(key, required=True, hint=hint)
        assert value is not None
        return value

    def short_name(self, key: str) -> str | None:
        value = self.string(key)
        if value is None:
            return None
        value = value.strip()
        if not value or len(value) > _SHORT_MAX:
            raise AdapterError(
                AdapterReason.invalid_value,
                f"{self.at(key)} must be 1-{_SHORT_MAX} characters, got {len(value)}",
                loc=self.at(key),
            )
        return value

    def seconds(self, key: str, *, required: bool = False, hint: str = "") -> float | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key, hint)
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AdapterError(
                AdapterReason.wrong_type,
                f"{self.at(key)} must be a number of seconds, got {type(value).__name__}",
                loc=self.at(key),
            )
        if not math.isfinite(value) or value < 0:
            raise AdapterError(
                AdapterReason.invalid_value,
                f"{self.at(key)} must be a non-negative number of seconds, got {value}",
                loc=self.at(key),
            )
        return float(value)

    def time(self, key: str, *, required: bool = False, hint: str = "") -> datetime | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key, hint)
            return None
        return parse_time(value, self.at(key))

    def req_time(self, key: str, hint: str = "") -> datetime:
        value = self.time(key, required=True, hint=hint)
        assert value is not None
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise AdapterError(
                AdapterReason.wrong_type,
                f"{self.at(key)} must be a whole number {low}-{high}, "
                f"got {type(value).__name__} {shown(value)}",
                loc=self.at(key),
            )
        if not low <= value <= high:
            raise AdapterError(
                AdapterReason.invalid_value,
                f"{self.at(key)} must be between {low} and {high}, got {value}",
                loc=self.at(key),
            )
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise AdapterError(
                AdapterReason.wrong_type,
                f"{self.at(key)} must be true or false, got {type(value).__name__} {shown(value)}",
                loc=self.at(key),
            )
        return value


def check_identifier(value: str, loc: str) -> str:
    """Ids become Kafka keys and ClickHouse columns: no spaces, bounded length."""
    value = value.strip()
    if len(value) > _ID_MAX or not _IDENTIFIER.match(value):
        raise AdapterError(
            AdapterReason.invalid_value,
            f"{loc}: {value[:40]!r} is not a usable id (1-{_ID_MAX} chars, starting with a "
            "letter or digit, then letters, digits or ._:@/+=-)",
            loc=loc,
        )
    return value


def clip_text(text: str | None) -> str | None:
    """Texts above the schema limit are cut, not rejected; blank texts become None."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    return text[:MAX_TEXT_CHARS]


# ------------------------------------------------------------------- output


def event(
    *,
    event_id: str,
    contact_id: str,
    channel: str,
    event_type: str,
    occurred_at: datetime,
    source: str,
    customer_id: str | None = None,
    queue: str | None = None,
    agent_id: str | None = None,
    text: str | None = None,
    **payload: float | str | bool | int | None,
) -> dict[str, Any]:
    """A canonical event dict; payload keys with None values are left out."""
    out: dict[str, Any] = {
        "event_id": event_id,
        "contact_id": contact_id,
        "channel": channel,
        "event_type": event_type,
        "occurred_at": occurred_at.isoformat(),
        "source": source,
    }
    optional = {"customer_id": customer_id, "queue": queue, "agent_id": agent_id, "text": text}
    out.update({k: v for k, v in optional.items() if v is not None})
    body = {k: v for k, v in payload.items() if v is not None}
    if body:
        out["payload"] = body
    return out


def check_source(source: str) -> str:
    """``source`` is a ShortName in the schema; a bad one is the caller's bug, said early."""
    if not isinstance(source, str) or not source.strip() or len(source.strip()) > _SHORT_MAX:
        raise AdapterError(
            AdapterReason.invalid_value,
            f"source must be 1-{_SHORT_MAX} characters: {shown(source)}",
        )
    return source.strip()


def finish(events: list[dict[str, Any]], loc: str = "") -> list[dict[str, Any]]:
    """Validate against ContactEvent and return the JSON-ready dumps.

    Adapters check their inputs field by field; this is the backstop that
    guarantees nothing invalid leaves an adapter, and turns a schema violation
    into an AdapterError instead of a pydantic exception.
    """
    out = []
    for ev in events:
        try:
            model = ContactEvent.model_validate(ev)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            raise AdapterError(
                AdapterReason.invalid_value,
                f"{ev.get('event_type', 'event')} event would be invalid: {where}: {first['msg']}",
                loc=loc,
            ) from None
        out.append(model.model_dump(mode="json", exclude_none=True))
    return out
