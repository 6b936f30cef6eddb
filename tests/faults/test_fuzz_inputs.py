"""Property-based fuzzing of hostile input (issue 13, fault "f"): 100,000 payloads.

What: the normalize stage (``streams/stages/normalize.py``: raw Kafka bytes ->
ContactEvent or DeadLetter) and every channel adapter in
``streams/sources/adapters/`` (cti, freeswitch, chat, email, wechat, sms, survey:
native bytes -> canonical event dicts, or ``AdapterError``). Every payload goes
through all eight.

Why: these are the doors through which outside bytes enter the pipeline. An
exception escaping normalize stops the worker's partition; one escaping an
adapter is a 500 from the webhook and a lost contact. Both promise to turn any
bad input into a bounded reason (DeadLetter, AdapterError), never to crash, and
to use memory in proportion to the input.

How many: ``BUDGET`` (payloads per test) sums to exactly 100,000; each test
asserts it checked its share. Hypothesis (``derandomize=True``, so CI sees the
same payloads every run; no example database) generates 12,521 examples: most
are expanded into 8 payloads, the example and seven transport damages of it
(``VARIANTS``: invalid UTF-8 spliced in, truncated, a byte flipped, sent twice,
trailing NULs, BOM, CRLF), because Hypothesis's own cost per example (~1 ms here)
is several times what the eight targets take per payload (~0.15 ms); the deep
MIME and multi-megabyte payloads are one per example.

Payloads: random bytes and Unicode whitespace; Chinese text in GBK / GB18030 /
UTF-16 / Big5 where UTF-8 is expected, and invalid UTF-8 sequences spliced into
valid inputs; JSON-ish documents with NaN / Infinity / 1e999 literals, lone
surrogates, huge numbers and wrong types; nesting to thousands of levels (JSON,
XML, MIME); absurd timestamps (year 0 and 99999, negative, overflowing and
millisecond/microsecond-boundary epochs, ISO strings with garbage, RFC 5322
dates out of range); one-field mutations (wrong type, deleted, unknown field,
absurd value) of valid canonical events (those the adapters make of the
fixtures in tests/fixtures/channels) and of every channel's valid native
fixtures; and 14 payloads of 64 kB to 25 MB.

Properties:

(a) normalize never raises; it returns a ContactEvent that survives a JSON round
    trip, or a DeadLetter with a ``Reason``, non-empty error messages, the
    original bytes (``original_b64``; cut at ``MAX_DLQ_ORIGINAL_BYTES`` and then
    flagged ``truncated``), their size and the ``SourceRef`` echoed, publishable
    as JSON. Payloads bad by construction (oversized, not UTF-8, not JSON, a
    wrong type, a required field deleted, an unknown field...) are always
    dead-lettered, with the reason the rules fix where they fix one.
(b) an adapter raises nothing but ``AdapterError`` (reason, non-empty message,
    JSON-able ``to_json()``, a dead-letter reason); what it returns passes
    ``ContactEvent``; payloads bad by construction are rejected, with the
    documented reason where there is one (oversized, empty, not UTF-8 / JSON,
    unknown field, missing field, wrong type, unsafe XML...).
(c) memory: the ``tracemalloc`` peak of each call on the large payloads stays
    under 20 x payload size + 50 MB (figures printed; see them with ``-s``).

Every payload is checked with the stack a production caller has (recursion
limit 1000, 50 frames already used: ``production_stack``), since Hypothesis
raises the limit while a test runs and would hide stack overflows.
"""

from __future__ import annotations

import base64
import sys
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from vocflow.schemas import ContactEvent, DeadLetter, Reason, SourceRef
from vocflow.streams.sources.adapters import ADAPTERS, AdapterError, AdapterReason
from vocflow.streams.stages.normalize import MAX_DLQ_ORIGINAL_BYTES, normalize

pytestmark = [pytest.mark.faults]

# Payloads per test; the module fuzzes exactly TOTAL_PAYLOADS inputs.
TOTAL_PAYLOADS = 100_000
BUDGET: dict[str, int] = {
    "arbitrary_bytes": 14_016,
    "foreign_encodings": 8_000,
    "hostile_json": 12_000,
    "deep_nesting": 4_000,
    "deep_mime": 10,
    "absurd_timestamps": 12_000,
    "mutated_canonical_events": 20_000,
    "mutated_native_cti": 4_280,
    "mutated_native_freeswitch": 4_280,
    "mutated_native_chat": 4_280,
    "mutated_native_email": 4_280,
    "mutated_native_wechat": 4_280,
    "mutated_native_sms": 4_280,
    "mutated_native_survey": 4_280,
    "large_payloads_memory": 14,  # = len(LARGE_PAYLOADS), each checked once
}
assert sum(BUDGET.values()) == TOTAL_PAYLOADS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "channels"
SRC = SourceRef(topic="contacts.raw", partition=7, offset=123_456, key="fuzz-key")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
MAX_BYTES = 1_000_000  # normalize's default limit, passed explicitly

JSON_FORMATS = ("cti", "chat", "sms", "survey")
# Documented size limits (README.md "Size limits").
SIZE_LIMIT = {
    "cti": 2_000_000,
    "chat": 2_000_000,
    "sms": 2_000_000,
    "survey": 2_000_000,
    "freeswitch": 256_000,
    "wechat": 64_000,
    "email": 25_000_000,
}
BAD = "bad"  # expectation: rejected, whatever the reason
NORMALIZE = "normalize"

# ------------------------------------------------------------------ payloads


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is, e.g. ``NaN`` (which no JSON encoder emits)."""

    text: bytes
    kind: str  # "invalid": makes the whole document invalid JSON; else the JSON kind


@dataclass(frozen=True)
class Case:
    """One payload and what is known about it by construction.

    ``expect`` maps a target (``"normalize"`` or an adapter key) to the reason it
    must be rejected with (a ``Reason`` / ``AdapterReason`` value) or to ``BAD``
    (rejected, reason not fixed by the rules). Targets not named: any outcome
    but a crash.
    """

    data: bytes
    expect: Mapping[str, str] = field(default_factory=dict)


def dump(value: Any) -> bytes:
    """JSON bytes that may hold ``Raw`` tokens; key order kept."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        items = (orjson.dumps(str(k)) + b":" + dump(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(dump(v) for v in value) + b"]"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value).encode()  # orjson refuses big ints; JSON allows them
    return orjson.dumps(value)


def kind_of(value: Any) -> str:
    if isinstance(value, Raw):
        return value.kind
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    return "dict"


def contains_invalid(value: Any) -> bool:
    if isinstance(value, Raw):
        return value.kind == "invalid"
    if isinstance(value, dict):
        return any(contains_invalid(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_invalid(v) for v in value)
    return False


def as_text(value: Any) -> str:
    """A value as it would appear in a text format (XML element, ESL header)."""
    if isinstance(value, Raw):
        return value.text.decode()
    return str(value)


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --------------------------------------------------------------- the checks


def universal_expectations(data: bytes) -> dict[str, str]:
    """Rejections the documented rules fix for any input, whatever its content."""
    out: dict[str, str] = {}
    utf8 = is_utf8(data)
    if len(data) > MAX_BYTES:
        out[NORMALIZE] = Reason.oversized
    elif not utf8:
        out[NORMALIZE] = Reason.invalid_utf8
    stripped = data.strip()
    for fmt, limit in SIZE_LIMIT.items():
        if len(data) > limit:
            out[fmt] = AdapterReason.oversized
        elif not stripped:
            out[fmt] = AdapterReason.empty
        elif not utf8 and fmt in JSON_FORMATS:
            out[fmt] = AdapterReason.bad_json
        elif not utf8 and fmt in ("freeswitch", "wechat"):
            out[fmt] = AdapterReason.undecodable
    return out


def check_normalize(case: Case, expected: str | None) -> None:
    result = normalize(case.data, SRC, max_bytes=MAX_BYTES, now=NOW)
    if isinstance(result, ContactEvent):
        assert expected is None, f"normalize accepted a payload that must be {expected}"
        assert len(case.data) <= MAX_BYTES
        assert ContactEvent.model_validate_json(result.model_dump_json()) == result
        return
    assert isinstance(result, DeadLetter), type(result)
    assert isinstance(result.reason, Reason)
    if expected not in (None, BAD):
        assert result.reason == expected, (result.reason, expected, result.errors[:3])
    assert result.stage == "normalize"
    assert result.errors, "a dead letter must say why"
    assert all(isinstance(e.msg, str) and e.msg for e in result.errors)
    assert result.source == SRC
    assert result.rejected_at == NOW
    assert result.original_size == len(case.data)
    assert result.truncated == (len(case.data) > MAX_DLQ_ORIGINAL_BYTES)
    assert result.original_bytes() == case.data[:MAX_DLQ_ORIGINAL_BYTES]
    assert result.model_dump_json()  # publishable to the DLQ topic as is


def check_adapter(fmt: str, case: Case, expected: str | None) -> None:
    try:
        events = ADAPTERS[fmt](case.data)
    except AdapterError as err:
        assert isinstance(err.reason, AdapterReason)
        assert isinstance(err.message, str) and err.message.strip(), "an error needs a message"
        assert isinstance(err.dead_letter_reason, Reason)
        orjson.dumps(err.to_json())
        if expected not in (None, BAD):
            assert err.reason == expected, (fmt, err.reason, expected, err.message[:200])
        return
    # Anything but AdapterError propagates: the test fails with its traceback.
    assert expected is None, f"{fmt} accepted a payload that must be rejected ({expected})"
    assert isinstance(events, list)
    for ev in events:
        ContactEvent.model_validate(ev)
        orjson.dumps(ev)


def check_everything(case: Case) -> None:
    """Normalize and all seven adapters on one payload."""
    expect = {**case.expect, **universal_expectations(case.data)}
    check_normalize(case, expect.get(NORMALIZE))
    for fmt in ADAPTERS:
        check_adapter(fmt, case, expect.get(fmt))


# Hypothesis raises the recursion limit to (current depth + 2000) while a test runs,
# which would hide every RecursionError a deep input causes in production, where
# the limit is CPython's default 1000 and the worker (Faust agent on asyncio) or
# the webhook (aiohttp handler) already uses some frames. So each payload is
# checked with the stack a production call has: PRODUCTION_FREE_FRAMES frames free.
PRODUCTION_RECURSION_LIMIT = 1000
PRODUCTION_CALLER_FRAMES = 50
PRODUCTION_FREE_FRAMES = PRODUCTION_RECURSION_LIMIT - PRODUCTION_CALLER_FRAMES


def _stack_depth() -> int:
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


@contextmanager
def production_stack() -> Iterator[None]:
    """Recursion limit as a production caller of the code under test sees it."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + PRODUCTION_FREE_FRAMES)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


VARIANTS = (
    "as generated",
    "invalid UTF-8 spliced in",
    "truncated",
    "one byte flipped",
    "sent twice back to back",
    "trailing NUL bytes",
    "UTF-8 BOM prepended",
    "CRLF line endings",
)


def damaged(case: Case, damage: int) -> list[Case]:
    """The generated payload and seven transport damages of it (``VARIANTS``).

    Generating an example costs far more than checking a payload (Hypothesis
    spends ~0.3 ms per example on this machine before any strategy runs, ~1 ms
    with ours; normalize and the seven adapters ~0.15 ms together), so each
    example is used eight times. ``damage`` (one draw, so it shrinks with the
    example) picks the position, the invalid UTF-8 sequence and the flipped bits.
    """
    data = case.data
    pos = damage & 0xFFFFFF
    bad = INVALID_UTF8[(damage >> 24) % len(INVALID_UTF8)]
    mask = (damage >> 28) % 255 + 1
    at = pos % (len(data) + 1)
    cut = pos % len(data) if data else 0
    broken_json: dict[str, str] = {}
    if data[:1] in (b"{", b"["):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict | list):
            # A proper prefix of an object or array is not JSON, nor are two of them,
            # nor one followed by NUL bytes.
            broken_json = {
                NORMALIZE: Reason.bad_json,
                "freeswitch": AdapterReason.bad_json,
                **dict.fromkeys(JSON_FORMATS, AdapterReason.bad_json),
            }
    flipped = bytearray(data)
    if data:
        flipped[cut] ^= mask
    return [
        case,
        Case(data[:at] + bad + data[at:]),
        Case(data[:cut], broken_json),
        Case(bytes(flipped)),
        Case(data + data, broken_json),
        Case(data + b"\x00" * (1 + pos % 3), broken_json),
        Case(b"\xef\xbb\xbf" + data),
        Case(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")),
    ]


def alone(case: Case) -> list[Case]:
    """One payload per example (a named function: Hypothesis then reports the example as
    ``alone(mime_doc(1000, False))``, not as its 60 kB of bytes)."""
    return [case]


def run(
    name: str,
    strategy: st.SearchStrategy[Case],
    check: Callable[[Case], None] = check_everything,
    *,
    variants: bool = True,
    shrink: bool = True,
) -> None:
    """Check exactly ``BUDGET[name]`` payloads: examples of ``strategy`` (x8 with damages)."""
    per_example = len(VARIANTS) if variants else 1
    budget = BUDGET[name]
    assert budget % per_example == 0, (name, budget, per_example)
    if variants:
        batches = st.builds(damaged, strategy, st.integers(0, 2**36 - 1))
    else:
        batches = st.builds(alone, strategy)
    seen = 0

    @settings(
        max_examples=budget // per_example,
        # Without shrinking where the examples are a handful of sampled parameters
        # and each call takes a noticeable time (deep MIME, multi-megabyte inputs).
        phases=tuple(Phase) if shrink else (Phase.explicit, Phase.generate),
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )
    @given(batches)
    def prop(cases: list[Case]) -> None:
        nonlocal seen
        for variant, case in zip(VARIANTS, cases, strict=False):
            seen += 1
            try:
                with production_stack():
                    check(case)
            except BaseException as exc:
                exc.add_note(
                    f"payload ({variant}, {len(case.data)} bytes): {case.data[:600]!r}"
                    f"{'...' if len(case.data) > 600 else ''}"
                )
                raise

    prop()
    print(f"{name}: {seen} payloads ({budget // per_example} examples x {per_example})")
    assert seen == budget, f"{seen} payloads checked, the budget is {budget}"


# ------------------------------------------------------------ building blocks

INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xa0\xa1",
    b"\xe2\x28\xa1",
    b"\xf0\x28\x8c\xbc",
    b"\xc0\xaf",  # overlong '/'
    b"\xed\xa0\x80",  # UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xe6\x96",  # cut in the middle of a character
    b"\x80",
)
RAW_TOKENS = (
    Raw(b"NaN", "invalid"),
    Raw(b"-NaN", "invalid"),
    Raw(b"Infinity", "invalid"),
    Raw(b"-Infinity", "invalid"),
    Raw(b"1e999", "invalid"),
    Raw(b"-1E400", "invalid"),
    Raw(b"undefined", "invalid"),
    Raw(b"0x1F", "invalid"),
    Raw(b"01", "invalid"),
    Raw(b"'single'", "invalid"),
    Raw(b'"\\ud800"', "invalid"),  # lone surrogate escape
    Raw(b'"\\udfff\\ud800"', "invalid"),
    Raw(b"123456789012345678901234567890", "number"),
    Raw(b"-0", "number"),
    Raw(b"1e-400", "number"),
    Raw(b"4.9e-324", "number"),
    Raw(b'"\\u0000"', "str"),
    Raw(b'"\\u202e\\ufeff"', "str"),
)
NASTY_STRINGS = (
    "",
    " ",
    "\u3000",
    "\x00",
    "\t\n",
    "null",
    "NaN",
    "-1",
    "1e999",
    "%00",
    "%FF%FE",
    "%E4%B8",
    "<!DOCTYPE x>",
    "]]>",
    "<a>",
    "&amp;&#0;",
    "=?UTF-8?B?5L2g?=",
    "\u202e\u200b",
    "\ufeff",
    "🙂🙂",
    "𠀀𪚥",
    "ａｂｃ１２３",
    "٣٤٥",
    "断网" * 3,
    "a" * 129,
    "x" * 65,
)
ABSURD_TIME_STRINGS = (
    "0000-01-01T00:00:00+08:00",
    "0001-01-01T00:00:00+08:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59+14:00",
    "99999-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "2024-02-30T10:00:00+08:00",
    "2024-13-45T25:61:61+08:00",
    "2024-05-06T09:15:00+25:00",
    "2024-05-06T09:15:00+08:00garbage",
    "2024-05-06T09:15:00.99999999999+08:00",
    "2024-05-06T09:15:00",
    "2024-05-06",
    "2024-05-06T09:15:00 +08:00",
    "２０２４-05-06T09:15:00+08:00",
    "yesterday",
    "now",
    "",
    "1714958100",
    "1714958100123",
    "1714958100123456",
    "99999999999999999999",
    "٣٤٥٦٧٨٩",
    "1e10",
    "-1",
    "0",
    "Mon, 6 May 2024 09:31:52 +0800",
)
ABSURD_EPOCHS = (
    -1,
    0,
    -62135596800,  # 0001-01-01 UTC
    -62135596801,
    253402300799,  # 9999-12-31T23:59:59 UTC: +08:00 overflows
    253402300800,
    99_999_999_999,  # just below the milliseconds threshold
    100_000_000_000,
    99_999_999_999_999,  # just below the microseconds threshold
    100_000_000_000_000,
    2**63 - 1,
    2**63,
    2**64,
    10**30,
    1e300,
    -1e300,
    5e-324,
    0.5,
)


def iso_like() -> st.SearchStrategy[str]:
    """ISO-ish strings with components in and far out of range, odd offsets, trailers."""
    return st.builds(
        lambda y, mo, d, h, mi, s, frac, off, tail: (
            f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{off}{tail}"
        ),
        st.integers(-10, 100_000),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
        st.sampled_from(("", ".5", ".123456", ".1234567", ".")),
        st.sampled_from(("", "Z", "+08:00", "-23:59", "+24:00", "+14:00", "+08:00:30", "+0800")),
        st.sampled_from(("", "", "", " ", "x", "\x00", "Z", "[Asia/Shanghai]")),
    )


def absurd_times() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(ABSURD_TIME_STRINGS),
        st.sampled_from(ABSURD_EPOCHS),
        iso_like(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(RAW_TOKENS[:6]),
        st.booleans(),
        st.just([]),
        st.just({"t": 1}),
    )


def long_strings() -> st.SearchStrategy[str]:
    """Just over the limits: ids (128), short names (64), texts (20,000 chars)."""
    return st.builds(
        lambda n, c: c * n, st.sampled_from((129, 65, 20_001, 100_000)), st.sampled_from("x字 ")
    )


def leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        long_strings(),
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(RAW_TOKENS),
        st.text(max_size=12),
        st.sampled_from(NASTY_STRINGS),
        st.sampled_from(ABSURD_TIME_STRINGS),
    )


def deep_value() -> st.SearchStrategy[Raw]:
    """A nested list: valid JSON within orjson's depth limit (1024 levels, the document's
    own up to 9 included), invalid beyond."""
    return st.one_of(
        (st.integers(1, 1015) | st.sampled_from((500, 900, 950, 980, 1000, 1015))).map(
            lambda d: Raw(b"[" * d + b"]" * d, "list")
        ),
        st.integers(1100, 5000).map(lambda d: Raw(b"[" * d + b"]" * d, "invalid")),
    )


def hostile_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        leaves(),
        absurd_times(),
        st.lists(leaves(), max_size=3),
        st.dictionaries(st.text(max_size=6), leaves(), max_size=3),
        deep_value(),
    )


# --------------------------------------------- valid inputs from the fixtures


def _fixtures(fmt: str) -> list[tuple[str, bytes]]:
    return sorted(
        (p.name, p.read_bytes())
        for p in (FIXTURES / fmt).iterdir()
        if p.is_file() and not p.name.startswith("broken")
    )


NATIVE: dict[str, list[tuple[str, bytes]]] = {fmt: _fixtures(fmt) for fmt in ADAPTERS}


def _canonical_events() -> list[dict[str, Any]]:
    """Valid ContactEvent JSON: what the adapters make of the valid fixtures."""
    out: list[dict[str, Any]] = [
        {
            "event_id": "e-1",
            "contact_id": "c-1",
            "channel": "chat",
            "event_type": "message",
            "occurred_at": "2026-11-23T10:00:00+08:00",
            "text": "宽带断网了",
        }
    ]
    for fmt, fixtures in NATIVE.items():
        for _, data in fixtures:
            out.extend(ADAPTERS[fmt](data))
    return out


CANONICAL = _canonical_events()
EVENT_FIELDS = tuple(ContactEvent.model_fields)
REQUIRED_EVENT_FIELDS = ("event_id", "contact_id", "channel", "event_type", "occurred_at")
EVENT_STRING_FIELDS = ("event_id", "contact_id", "customer_id", "agent_id", "queue", "text")
# field -> JSON kinds of value the canonical schema certainly rejects there (besides
# the wrong types of the string fields); the reason may vary (enum, literal, type).
CERTAINLY_BAD_EVENT_VALUE: dict[str, set[str]] = {
    "event_id": {"null"},
    "contact_id": {"null"},
    "channel": {"null", "bool", "number", "list", "dict"},
    "event_type": {"null", "bool", "number", "list", "dict"},
    "occurred_at": {"null", "list", "dict"},
    "payload": {"str", "number", "bool", "list"},
    "schema_version": {"null", "list", "dict"},
}
PAYLOAD_FIELDS = (
    "wait_seconds",
    "talk_seconds",
    "hold_seconds",
    "after_work_seconds",
    "transfer_to",
    "csat",
    "nps",
    "fcr",
)
UNKNOWN_KEYS = ("colour", "custmer_id", "wait_second", "Event_ID", "", " ", "ext2", "__proto__")
WRONG_FOR = {  # field type -> JSON kinds that are certainly the wrong type for it
    "str": {"bool", "number", "list", "dict"},
    "time": {"bool", "list", "dict"},
    "seconds": {"bool", "str", "list", "dict"},
    "int": {"bool", "str", "list", "dict"},
    "bool": {"number", "str", "list", "dict"},
    "list": {"bool", "number", "str", "dict"},
}

# Native JSON records: field -> type, and the required fields (module docstrings).
NATIVE_FIELDS: dict[str, dict[str, str]] = {
    "cti": {
        "call_id": "str",
        "event": "str",
        "timestamp": "time",
        "event_id": "str",
        "queue": "str",
        "agent_id": "str",
        "customer_id": "str",
        "caller": "str",
        "wait_seconds": "seconds",
        "talk_seconds": "seconds",
        "hold_seconds": "seconds",
        "after_work_seconds": "seconds",
        "transfer_to": "str",
        "transcript": "str",
    },
    "sms": {"from": "str", "to": "str", "text": "str", "received_at": "time", "message_id": "str"},
    "survey": {
        "contact_id": "str",
        "answered_at": "time",
        "csat": "int",
        "nps": "int",
        "fcr": "bool",
        "comment": "str",
        "survey_id": "str",
        "channel": "str",
        "customer_id": "str",
        "agent_id": "str",
        "queue": "str",
    },
    "chat": {
        "session_id": "str",
        "started_at": "time",
        "queue": "str",
        "customer_id": "str",
        "queued_at": "time",
        "ended_at": "time",
        "messages": "list",
    },
    "chat_message": {"id": "str", "from": "str", "text": "str", "sent_at": "time"},
}
NATIVE_REQUIRED: dict[str, tuple[str, ...]] = {
    "cti": ("call_id", "event", "timestamp"),
    "sms": ("from", "to", "text", "received_at"),
    "survey": ("contact_id", "answered_at"),
    "chat": ("session_id", "started_at", "messages"),
    "chat_message": ("from", "sent_at"),
}
BATCH_KEY = {"cti": "events", "sms": "messages", "survey": "surveys", "chat": "transcripts"}
CTI_RECORD: dict[str, Any] = {
    "call_id": "CALL-20240506-000731",
    "event": "answered",
    "timestamp": "2024-05-06T09:15:42+08:00",
    "queue": "billing",
    "agent_id": "A1024",
    "wait_seconds": 39,
}


# ------------------------------------------------------------- strategies


def arbitrary_bytes() -> st.SearchStrategy[Case]:
    prefixes = (
        b"{",
        b"[",
        b'{"',
        b"<xml>",
        b"\xef\xbb\xbf",
        b"From: a@b.cn\r\n",
        b"Event-Name: CUSTOM\n",
        b"Content-Type: text/event-plain\n\n",
        b" ",
        b"\x00",
    )
    spaces = (
        b" ",
        b"\t",
        b"\n",
        b"\r",
        b"\x0b",
        b"\x0c",
        b"\x1c",
        b"\x1d",
        b"\x1e",
        b"\x1f",
        "\x85".encode(),
        "\u3000".encode(),
        "\u2028".encode(),
        b"\xef\xbb\xbf",
        b"\x00",
    )
    return st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(prefixes), st.binary(max_size=200)).map(b"".join),
        st.lists(st.sampled_from(spaces), max_size=8).map(b"".join),
    ).map(Case)


def foreign_encodings() -> st.SearchStrategy[Case]:
    """GBK & co. where UTF-8 is required, and invalid UTF-8 spliced into valid input."""
    chinese = st.text(
        st.one_of(
            st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), st.sampled_from("ab1 ，。")
        ),
        min_size=1,
        max_size=40,
    )
    codecs = ("gbk", "gb18030", "gb2312", "big5", "utf-16", "utf-16-le", "utf-32", "shift_jis")

    def encoded_event(base: dict[str, Any], text: str, codec: str) -> Case:
        data = orjson.dumps({**base, "text": "\x01"})
        return Case(data.replace(b"\x01", text.encode(codec, errors="replace")))

    def splice(data: bytes, at: int, bad: bytes) -> Case:
        at %= len(data) + 1
        return Case(data[:at] + bad + data[at:])

    natives = [data for fixtures in NATIVE.values() for _, data in fixtures]
    valid_inputs = [orjson.dumps(ev) for ev in CANONICAL] + natives
    email_template = (
        "From: wang@example.net\r\nTo: kefu@kefu.example.cn\r\n"
        "Date: Mon, 6 May 2024 09:31:52 +0800\r\nSubject: =?{label}?B?{name}?= {subject}\r\n"
        "Content-Type: text/plain; charset={label}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    )

    def mail(text: str, codec: str, label: str, cte: str) -> Case:
        body = text.encode(codec, errors="replace")
        head = email_template.format(
            label=label,
            name=base64.b64encode(text[:4].encode(codec, errors="replace")).decode(),
            subject=quote(text[:6]),
            cte=cte,
        ).encode()
        if cte == "base64":
            body = base64.encodebytes(body)
        expect: dict[str, str] = {}
        if cte not in ("8bit", "7bit", "base64", "binary"):
            expect["email"] = AdapterReason.bad_transfer_encoding
        elif label.startswith("x-unknown"):
            expect["email"] = AdapterReason.bad_charset
        return Case(head + body, expect)

    return st.one_of(
        st.builds(encoded_event, st.sampled_from(CANONICAL), chinese, st.sampled_from(codecs)),
        st.builds(
            lambda t, c: Case(t.encode(c, errors="replace")), chinese, st.sampled_from(codecs)
        ),
        st.builds(
            splice,
            st.sampled_from(valid_inputs),
            st.integers(0, 10_000),
            st.sampled_from(INVALID_UTF8),
        ),
        st.builds(
            mail,
            chinese,
            st.sampled_from(codecs),
            st.sampled_from(("gbk", "GB2312", "utf-8", "big5", "x-unknown-cs", "utf-7", '""')),
            st.sampled_from(("8bit", "base64", "x-gzip64", "binary")),
        ),
    )


def hostile_json() -> st.SearchStrategy[Case]:
    """JSON-ish documents whose keys are real field names of every format."""
    keys = st.sampled_from(
        sorted(
            {
                *EVENT_FIELDS,
                *PAYLOAD_FIELDS,
                *(f for fields in NATIVE_FIELDS.values() for f in fields),
                *BATCH_KEY.values(),
                "ext",
                "Event-Subclass",
                "CC-Action",
                "CC-Member-Session-UUID",
                "CC-Queue",
                "CC-Member-Joined-Time",
            }
        )
    ) | st.text(max_size=6)
    # Two levels of containers built directly: st.recursive costs ~5 ms per example.
    inner = st.one_of(
        leaves(), st.lists(leaves(), max_size=3), st.dictionaries(keys, leaves(), max_size=3)
    )
    docs = st.one_of(
        leaves(), st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=8)
    )

    def case(doc: Any) -> Case:
        data = dump(doc)
        if not contains_invalid(doc):
            return Case(data)
        expect = {NORMALIZE: Reason.bad_json, **dict.fromkeys(JSON_FORMATS, AdapterReason.bad_json)}
        if isinstance(doc, dict | list):
            expect["freeswitch"] = AdapterReason.bad_json
        return Case(data, expect)

    return docs.map(case)


def deep_nesting() -> st.SearchStrategy[Case]:
    """Hundreds to thousands of levels, in JSON and XML, closed or not (MIME: deep_mime)."""
    depths = st.one_of(
        st.integers(1, 3000),
        st.sampled_from((999, 1000, 1001, 1022, 1023, 1024, 1025, 1026)),
    )

    def json_doc(depth: int, opener: str, closed: bool, wrap: str) -> Case:
        open_, close = {
            "list": (b"[", b"]"),
            "object": (b'{"a":', b"}"),
            "mixed": (b'[{"a":', b"}]"),
        }[opener]
        inner = open_ * depth + b"1" + (close * depth if closed else b"")
        if opener == "mixed":
            depth *= 2
        outer = {
            "bare": (b"", b"", 0),
            "canonical_text": (orjson.dumps(CANONICAL[0])[:-1] + b',"text":', b"}", 1),
            "canonical_channel": (orjson.dumps(CANONICAL[0])[:-1] + b',"channel":', b"}", 1),
            "cti_ext": (dump(CTI_RECORD)[:-1] + b',"ext":', b"}", 1),
            "freeswitch_header": (b'{"Event-Name":', b"}", 1),
            "chat_messages": (b'{"session_id":"s1","started_at":1714958100,"messages":', b"}", 1),
        }[wrap]
        data = outer[0] + inner + outer[1]
        expect: dict[str, str] = {}
        if not closed or depth + outer[2] > 1024:
            expect = {
                NORMALIZE: Reason.bad_json,
                **dict.fromkeys(JSON_FORMATS, AdapterReason.bad_json),
            }
            if data.lstrip().startswith((b"{", b"[")):
                expect["freeswitch"] = AdapterReason.bad_json
        elif wrap == "canonical_text":
            expect = {NORMALIZE: Reason.wrong_type}
        elif wrap == "canonical_channel":
            expect = {NORMALIZE: BAD}
        return Case(data, expect)

    def xml_doc(depth: int, closed: bool) -> Case:
        inner = b"<a>" * depth + b"x" + (b"</a>" * depth if closed else b"")
        return Case(b"<xml><MsgType>text</MsgType>" + inner + b"</xml>")

    return st.one_of(
        st.builds(
            json_doc,
            depths,
            st.sampled_from(("list", "object", "mixed")),
            st.booleans(),
            st.sampled_from(
                (
                    "bare",
                    "canonical_text",
                    "canonical_channel",
                    "cti_ext",
                    "freeswitch_header",
                    "chat_messages",
                )
            ),
        ),
        st.builds(xml_doc, depths, st.booleans()),
    )


def mime_doc(depth: int, closed: bool) -> Case:
    """An e-mail whose text part sits inside ``depth`` nested multiparts."""
    head = b"From: a@b.cn\r\nDate: Mon, 6 May 2024 09:31:52 +0800\r\nSubject: s\r\n"
    opens = [
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    ]
    closes = [b"--b%d--\r\n" % i for i in reversed(range(depth))] if closed else []
    leaf = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    return Case(head + b"".join(opens) + leaf + b"".join(closes))


MIME_DEPTHS = (1, 300, 600, 940, 1000)


def deep_mime() -> st.SearchStrategy[Case]:
    """Nested multiparts, closed or cut: all 10 combinations (the e-mail parser takes
    ~0.3 s at 1,000 levels, so a few depths only, around where the stack runs out)."""
    return st.builds(mime_doc, st.sampled_from(MIME_DEPTHS), st.booleans())


# ---------------------------------------------------------------- mutations


def mutate_canonical(base: dict[str, Any], op: str, key: str, value: Any) -> Case:
    """One change to a valid ContactEvent, with what the schema makes of it."""
    doc = dict(base)
    expect: str | None = None
    kind = kind_of(value)
    if op == "delete":
        if key in doc:
            del doc[key]
            if key in REQUIRED_EVENT_FIELDS:
                expect = Reason.missing_field
    elif op == "unknown":
        doc[key] = value
        expect = Reason.invalid_value  # extra_forbidden is the only error
    elif op == "payload":
        payload = dict(doc.get("payload") or {})
        payload[key] = value
        doc["payload"] = payload
        if key.endswith("_seconds") and kind in ("list", "dict"):
            expect = BAD
        if (
            key.endswith("_seconds")
            and kind == "number"
            and not isinstance(value, Raw)
            and (value < 0 or value > 7 * 24 * 3600)
        ):
            expect = Reason.invalid_value
    else:  # set
        doc[key] = value
        if key in EVENT_STRING_FIELDS and kind in WRONG_FOR["str"]:
            expect = Reason.wrong_type
        elif kind in CERTAINLY_BAD_EVENT_VALUE.get(key, ()):
            expect = BAD
    if op != "delete" and contains_invalid(value):
        expect = Reason.bad_json
    return Case(dump(doc), {NORMALIZE: expect} if expect else {})


def mutated_canonical_events() -> st.SearchStrategy[Case]:
    return st.one_of(
        st.builds(
            mutate_canonical,
            st.sampled_from(CANONICAL),
            st.just("set"),
            st.sampled_from(EVENT_FIELDS),
            hostile_values(),
        ),
        st.builds(
            mutate_canonical,
            st.sampled_from(CANONICAL),
            st.just("delete"),
            st.sampled_from(EVENT_FIELDS),
            st.none(),
        ),
        st.builds(
            mutate_canonical,
            st.sampled_from(CANONICAL),
            st.just("unknown"),
            st.sampled_from(UNKNOWN_KEYS),
            hostile_values(),
        ),
        st.builds(
            mutate_canonical,
            st.sampled_from(CANONICAL),
            st.just("payload"),
            st.sampled_from(PAYLOAD_FIELDS),
            hostile_values(),
        ),
    )


def absurd_timestamps() -> st.SearchStrategy[Case]:
    """Valid inputs of every kind whose time field(s) are absurd."""
    time_fields = {
        "cti": ("timestamp",),
        "sms": ("received_at",),
        "survey": ("answered_at",),
        "chat": ("started_at", "queued_at", "ended_at"),
    }

    def canonical(base: dict[str, Any], value: Any) -> Case:
        return mutate_canonical(base, "set", "occurred_at", value)

    def native_json(fmt: str, pick: int, fld: str, value: Any) -> Case:
        return mutate_native_json(fmt, pick, "set", fld, value, 0)

    def chat_message_time(pick: int, value: Any) -> Case:
        return mutate_native_json("chat", pick, "message", "sent_at", value, pick)

    def freeswitch(pick: int, header: str, value: Any) -> Case:
        return mutate_freeswitch(pick, "set", header, as_text(value))

    def wechat(pick: int, value: Any) -> Case:
        return mutate_wechat(pick, "set", "CreateTime", as_text(value))

    def email(pick: int, header: str, value: str) -> Case:
        return mutate_email(pick, "set", header, value)

    def mail_dates() -> st.SearchStrategy[str]:
        return st.builds(
            lambda wd, d, mon, y, t, z: f"{wd}{d} {mon} {y} {t} {z}",
            st.sampled_from(("Mon, ", "", "Xyz, ")),
            st.integers(-1, 40),
            st.sampled_from(("May", "Dec", "Foo", "")),
            st.sampled_from((0, 1, 49, 50, 99, 1900, 2024, 9999, 10000, 99999, -1, 10**20)),
            st.sampled_from(("09:31:52", "23:59:59", "25:61:61", "9", "")),
            st.sampled_from(("+0800", "-0000", "-2359", "+9999", "CST", "GMT+8", "")),
        ) | st.sampled_from(ABSURD_TIME_STRINGS)

    fs_times = (
        "CC-Member-Joined-Time",
        "CC-Agent-Answered-Time",
        "CC-Bridge-Terminated-Time",
        "CC-Member-Leaving-Time",
        "Event-Date-Timestamp",
    )
    return st.one_of(
        st.builds(canonical, st.sampled_from(CANONICAL), absurd_times()),
        *(
            st.builds(
                native_json,
                st.just(fmt),
                st.integers(0, 50),
                st.sampled_from(fields),
                absurd_times(),
            )
            for fmt, fields in time_fields.items()
        ),
        st.builds(chat_message_time, st.integers(0, 50), absurd_times()),
        st.builds(
            freeswitch,
            st.integers(0, 50),
            st.sampled_from(fs_times),
            absurd_times()
            | st.sampled_from(("nan", "inf", "-inf", "1_000", " 1e308", "١٧١٤٩٥٨١٠٠")),
        ),
        st.builds(wechat, st.integers(0, 50), absurd_times() | st.just("9" * 400)),
        st.builds(email, st.integers(0, 50), st.sampled_from(("Date", "Received")), mail_dates()),
    )


def _json_records(fmt: str, data: bytes) -> tuple[str, list[dict[str, Any]]]:
    doc = orjson.loads(data)
    if isinstance(doc, dict) and set(doc) == {BATCH_KEY[fmt]}:
        return "batch", list(doc[BATCH_KEY[fmt]])
    if isinstance(doc, list):
        return "array", list(doc)
    return "object", [doc]


def mutate_native_json(fmt: str, pick: int, op: str, key: str, value: Any, item: int) -> Case:
    """One change to one record of a valid native JSON input (cti, sms, survey, chat)."""
    shape, records = _json_records(fmt, NATIVE[fmt][pick % len(NATIVE[fmt])][1])
    index = item % len(records)
    record = dict(records[index])
    target, fields, required = record, NATIVE_FIELDS[fmt], NATIVE_REQUIRED[fmt]
    if op == "message":  # chat: change one message of the transcript
        messages = list(record["messages"]) or [{}]
        m = item % len(messages)
        target = dict(messages[m])
        messages[m] = target
        record["messages"] = messages
        fields, required = NATIVE_FIELDS["chat_message"], NATIVE_REQUIRED["chat_message"]
        op = "set"
    expect: str | None = None
    kind = kind_of(value)
    if op == "delete":
        if key in target:
            del target[key]
            if key in required:
                expect = AdapterReason.missing_field
    elif op == "unknown":
        target[key] = value
        expect = AdapterReason.unknown_field
    elif op == "ext":
        target["ext"] = value
        if kind != "dict" and kind != "null":
            expect = AdapterReason.wrong_type
    else:
        target[key] = value
        if kind == "null" and key in required:
            expect = AdapterReason.missing_field
        elif kind in WRONG_FOR.get(fields.get(key, ""), ()):
            expect = AdapterReason.wrong_type
    records[index] = record
    doc: Any = {
        "batch": {BATCH_KEY[fmt]: records},
        "array": records,
        "object": records[0],
    }[shape]
    if op != "delete" and contains_invalid(value):
        expect = AdapterReason.bad_json
    return Case(dump(doc), {fmt: expect} if expect else {})


def _fs_headers(data: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    text = data.decode()
    envelope = ""
    if "text/event-plain" in text.split("\n\n")[0]:
        envelope, text = text.split("\n\n", 1)
        envelope += "\n\n"
    pairs = []
    for line in text.split("\n"):
        if line.strip():
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
    return envelope.encode(), pairs


FS_HEADERS = (
    "Event-Name",
    "Event-Subclass",
    "CC-Action",
    "CC-Cause",
    "CC-Cancel-Reason",
    "CC-Queue",
    "CC-Agent",
    "CC-Member-UUID",
    "CC-Member-Session-UUID",
    "CC-Member-CID-Number",
    "CC-Member-Joined-Time",
    "CC-Agent-Answered-Time",
    "CC-Bridge-Terminated-Time",
    "CC-Member-Leaving-Time",
    "Event-Date-Timestamp",
)
FS_VALUES = (
    "member-queue-start",
    "bridge-agent-start",
    "bridge-agent-end",
    "member-queue-end",
    "agent-offering",
    "Cancel",
    "Terminated",
    "TIMEOUT",
    "callcenter::info",
    "callcenter%3A%3Ainfo",
    "CUSTOM",
    "CHANNEL_ANSWER",
    "%ZZ",
    "%FF%FE",
    "%E4%B8",
    "%00",
    "a%0Ab: c",
)


def mutate_freeswitch(pick: int, op: str, header: str, value: str) -> Case:
    """One change to a valid mod_callcenter event, ESL plain or json."""
    name, data = NATIVE["freeswitch"][pick % len(NATIVE["freeswitch"])]
    if name.endswith(".json"):
        doc = orjson.loads(data)
        headers = doc[0] if isinstance(doc, list) else doc
        if op == "delete":
            headers.pop(header, None)
        else:
            headers[header] = value
        return Case(dump(doc))
    envelope, pairs = _fs_headers(data)
    lines = [f"{n}: {v}" for n, v in pairs if op == "append" or n != header]
    if op == "raw":  # a line that is not 'Name: value'
        lines.append(value)
    elif op != "delete":
        lines.append(f"{header}: {quote(value, safe='%:@') if op == 'quoted' else value}")
    text = "\n".join(lines) + "\n\n"
    return Case(envelope + text.encode("utf-8", errors="surrogatepass"))


def _xml_elements(data: bytes) -> list[tuple[str, str]]:
    text = data.decode("utf-8-sig")
    root = ET.fromstring(text.split("?>", 1)[1] if text.startswith("<?xml") else text)
    return [(child.tag, child.text or "") for child in root]


WECHAT_ELEMENTS = (
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "Recognition",
    "Title",
    "Description",
    "Label",
    "Event",
    "Encrypt",
)
WECHAT_VALUES = ("text", "image", "voice", "link", "location", "file", "event", "video", "TEXT")


def mutate_wechat(pick: int, op: str, element: str, value: str) -> Case:
    """One change to a valid official-account push."""
    elements = _xml_elements(NATIVE["wechat"][pick % len(NATIVE["wechat"])][1])
    expect: dict[str, str] = {}
    if op == "doctype":
        body = "".join(f"<{t}><![CDATA[{v}]]></{t}>" for t, v in elements)
        data = f'<?xml version="1.0"?>\n<!DOCTYPE xml [<!ENTITY e "{value}">]><xml>{body}</xml>'
        return Case(
            data.encode("utf-8", errors="surrogatepass"), {"wechat": AdapterReason.unsafe_xml}
        )
    elements = [(t, v) for t, v in elements if t != element]
    if op == "delete":
        if element == "MsgType":
            expect["wechat"] = AdapterReason.missing_field
    elif op == "raw":  # unescaped text: may break the XML, must not break the adapter
        elements.append((element, value))
    else:
        elements.append((element, value.replace("]]>", "]]]]><![CDATA[>")))
    parts = []
    for t, v in elements:
        inner = v if op == "raw" and t == element else f"<![CDATA[{v}]]>"
        parts.append(f"<{t}>{inner}</{t}>")
    root = "xml" if op != "root" else (value.split() or ["x"])[0].strip("<>/!?&;'\"=") or "x"
    if op == "root" and root != "xml" and root.isidentifier():
        expect["wechat"] = BAD  # bad_xml, or unsafe_xml if the text holds a NUL
    data = f"<{root}>{''.join(parts)}</{root}>"
    return Case(data.encode("utf-8", errors="surrogatepass"), expect)


def _mail_parts(data: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = data.replace(b"\r\n", b"\n").partition(b"\n\n")
    headers: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += b"\n" + line
        else:
            headers.append(line)
    return headers, body


MAIL_HEADERS = (
    "From",
    "To",
    "Delivered-To",
    "Subject",
    "Date",
    "Received",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "MIME-Version",
)
MAIL_VALUES = (
    "text/plain; charset=x-klingon",
    'text/plain; charset="gb2312"',
    "text/plain; charset=\x00",
    "text/html; charset=utf-8",
    "multipart/mixed",
    'multipart/mixed; boundary="nope"',
    "multipart/alternative; boundary=",
    "message/rfc822",
    "base64",
    "quoted-printable",
    "x-uuencode",
    "x-gzip",
    "attachment",
    "=?UTF-8?B?!!!?=",
    "=?x-klingon?Q?abc?=",
    "=?GBK?B?zfXPyMn6?= <>",
    "<a@b> <c@d> <" + "x" * 1000 + ">",
    "@",
    "a@b@c",
    "undisclosed-recipients:;",
)


def mutate_email(pick: int, op: str, header: str, value: str) -> Case:
    """One change to a valid .eml: a header set, deleted or raw, or the body damaged."""
    headers, body = _mail_parts(NATIVE["email"][pick % len(NATIVE["email"])][1])
    expect: dict[str, str] = {}
    name = header.lower().encode() + b":"
    if op == "body":
        cut = len(body) * (len(value) % 7) // 7
        body = body[:cut] + value.encode("utf-8", errors="surrogatepass") + body[cut:]
    elif op == "append":
        headers.append(header.encode() + b": " + value.encode("utf-8", errors="surrogatepass"))
    else:
        headers = [h for h in headers if not h.lower().startswith(name)]
        if op == "set":
            raw = value.encode("utf-8", errors="surrogatepass").replace(b"\n", b" ")
            headers.append(header.encode() + b": " + raw)
        elif op == "gbk":
            headers.append(header.encode() + b": " + value.encode("gb18030", errors="replace"))
        elif op == "delete" and header == "From":
            expect["email"] = AdapterReason.missing_field
    return Case(b"\r\n".join(headers) + b"\r\n\r\n" + body, expect)


def mutated_native(fmt: str) -> st.SearchStrategy[Case]:
    picks = st.integers(0, 50)
    if fmt in JSON_FORMATS:
        fields = sorted(NATIVE_FIELDS[fmt])
        strategies = [
            st.builds(
                mutate_native_json,
                st.just(fmt),
                picks,
                st.sampled_from(("set", "delete")),
                st.sampled_from(fields),
                hostile_values(),
                picks,
            ),
            st.builds(
                mutate_native_json,
                st.just(fmt),
                picks,
                st.sampled_from(("unknown", "ext")),
                st.sampled_from(UNKNOWN_KEYS),
                hostile_values()
                | st.recursive(
                    leaves(), lambda c: st.dictionaries(st.text(max_size=4), c, max_size=3)
                ),
                picks,
            ),
        ]
        if fmt == "chat":
            strategies.append(
                st.builds(
                    mutate_native_json,
                    st.just(fmt),
                    picks,
                    st.just("message"),
                    st.sampled_from([*sorted(NATIVE_FIELDS["chat_message"]), "agent_id", "x"]),
                    hostile_values() | st.sampled_from(("customer", "agent", "bot", "system")),
                    picks,
                )
            )
        return st.one_of(strategies)
    text_values = st.one_of(
        st.text(max_size=40), st.sampled_from(NASTY_STRINGS), absurd_times().map(as_text)
    )
    if fmt == "freeswitch":
        return st.builds(
            mutate_freeswitch,
            picks,
            st.sampled_from(("set", "quoted", "delete", "append", "raw")),
            st.sampled_from(FS_HEADERS) | st.text(max_size=10),
            text_values | st.sampled_from(FS_VALUES),
        )
    if fmt == "wechat":
        return st.builds(
            mutate_wechat,
            picks,
            st.sampled_from(("set", "delete", "raw", "doctype", "root")),
            st.sampled_from(WECHAT_ELEMENTS),
            text_values | st.sampled_from(WECHAT_VALUES),
        )
    assert fmt == "email"
    return st.builds(
        mutate_email,
        picks,
        st.sampled_from(("set", "delete", "append", "gbk", "body")),
        st.sampled_from(MAIL_HEADERS),
        text_values | st.sampled_from(MAIL_VALUES),
    )


# ------------------------------------------------------------------- tests


def test_arbitrary_bytes() -> None:
    run("arbitrary_bytes", arbitrary_bytes())


def test_foreign_encodings_and_invalid_utf8() -> None:
    run("foreign_encodings", foreign_encodings())


def test_hostile_json_documents() -> None:
    run("hostile_json", hostile_json())


def test_deep_nesting() -> None:
    run("deep_nesting", deep_nesting())


def test_deep_mime_nesting() -> None:
    assert BUDGET["deep_mime"] == 2 * len(MIME_DEPTHS)
    run("deep_mime", deep_mime(), variants=False, shrink=False)


def test_absurd_timestamps() -> None:
    run("absurd_timestamps", absurd_timestamps())


def test_mutated_canonical_events() -> None:
    run("mutated_canonical_events", mutated_canonical_events())


@pytest.mark.parametrize("fmt", sorted(ADAPTERS))
def test_mutated_native_inputs(fmt: str) -> None:
    run(f"mutated_native_{fmt}", mutated_native(fmt))


# ------------------------------------------------------------------ memory

MB = 1024 * 1024
MEMORY_SLOPE = 20  # bound: 20 x payload size + 50 MB
MEMORY_BASE = 50 * MB


def _pad(data: bytes, size: int) -> bytes:
    """Trailing whitespace up to exactly ``size`` bytes (every format ignores it)."""
    return data + b"\n" * (size - len(data))


def large_payload(kind: str, size: int) -> Case:
    """A multi-megabyte input of one kind, built to about ``size`` bytes (not drawn byte by
    byte: Hypothesis draws the two parameters, the bulk is repetition)."""
    if kind == "random_bytes":  # incompressible-looking garbage, invalid UTF-8
        block = bytes((i * 7919 + 13) % 256 for i in range(4096))
        return Case((block * (size // len(block) + 1))[:size])
    if kind == "gbk_text":
        return Case(("宽带断网了，要求减免费用。" * (size // 24 + 1)).encode("gbk")[:size])
    if kind == "event_huge_text":  # a valid event but for a text far over 20,000 chars
        base = orjson.dumps({**CANONICAL[0], "text": ""})
        pad = max(size - len(base), 0)
        return Case(base.replace(b'"text":""', b'"text":"' + b"x" * pad + b'"'))
    if kind in ("cti_batch", "sms_batch", "survey_batch"):  # thousands of valid records
        fmt = kind.removesuffix("_batch")
        one = (
            dump(_json_records(fmt, NATIVE[fmt][0][1])[1][0]) if fmt != "cti" else dump(CTI_RECORD)
        )
        n = max(1, (size - 2) // (len(one) + 1))
        return Case(_pad(b"[" + b",".join([one] * n) + b"]", size))
    if kind == "chat_transcript":  # one session with thousands of customer lines
        msg = b'{"from":"customer","text":"' + "断网".encode() * 8 + b'","sent_at":1714958100}'
        head = b'{"session_id":"s1","started_at":1714958100,"messages":['
        n = max(1, (size - len(head) - 2) // (len(msg) + 1))
        return Case(_pad(head + b",".join([msg] * n) + b"]}", size))
    if kind == "email_body":  # a valid mail with a huge text/plain body
        head = (
            b"From: a@b.cn\r\nDate: Mon, 6 May 2024 09:31:52 +0800\r\nSubject: s\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        )
        line = "我家宽带从4月29日开始就频繁掉线 > quoted\r\n".encode()
        return Case(_pad(head + line * max(1, (size - len(head)) // len(line)), size))
    if kind == "wechat_text":  # a valid push just under / over 64 kB
        head = (
            b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName>"
            b"<CreateTime>1714958100</CreateTime><MsgType>text</MsgType><Content>"
        )
        tail = b"</Content><MsgId>1</MsgId></xml>"
        text = "断".encode() * max(1, (size - len(head) - len(tail)) // 3)
        return Case(_pad(head + text + tail, size))
    assert kind == "freeswitch_event"  # a valid event with one huge header
    _, data = next(f for f in NATIVE["freeswitch"] if f[0] == "member-queue-start.txt")
    name = b"%E5%AE%BD" * max(0, (size - len(data) - 24) // 9)  # 宽, URL-encoded
    return Case(_pad(data.rstrip() + b"\nCC-Member-CID-Name: " + name + b"\n\n", size))


LARGE_PAYLOADS: tuple[tuple[str, int], ...] = (
    ("random_bytes", MAX_BYTES + 1),
    ("random_bytes", MAX_DLQ_ORIGINAL_BYTES + 1),  # the dead letter keeps the first 4 MiB
    ("random_bytes", 25_000_001),  # just over the e-mail limit
    ("gbk_text", 3_000_000),
    ("event_huge_text", MAX_BYTES - 1),
    ("event_huge_text", 4_500_000),
    ("cti_batch", 2_000_001),  # just over the JSON limit
    # Valid batches make one event per record (~0.2 ms each under tracemalloc), so
    # these stay well under the 2 MB limit to keep the module within its time budget.
    ("cti_batch", 400_000),
    ("sms_batch", 300_000),
    ("survey_batch", 300_000),
    ("chat_transcript", 400_000),
    ("email_body", 3_000_000),
    ("wechat_text", 63_990),
    ("freeswitch_event", 255_990),
)


assert len(LARGE_PAYLOADS) == BUDGET["large_payloads_memory"]


def large_payloads() -> st.SearchStrategy[Case]:
    return st.sampled_from(LARGE_PAYLOADS).map(lambda p: large_payload(*p))


def test_memory_bounded_on_large_payloads() -> None:
    """tracemalloc peak per call, above what was allocated before it (the payload)."""
    peaks: list[tuple[int, int, str]] = []

    def measured(case: Case) -> None:
        expect = {**case.expect, **universal_expectations(case.data)}
        targets: list[tuple[str, Callable[[], None]]] = [
            (NORMALIZE, lambda: check_normalize(case, expect.get(NORMALIZE)))
        ]
        for fmt in ADAPTERS:
            targets.append((fmt, lambda fmt=fmt: check_adapter(fmt, case, expect.get(fmt))))
        for name, call in targets:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            call()
            peak = tracemalloc.get_traced_memory()[1] - base
            peaks.append((peak, len(case.data), name))
            bound = MEMORY_SLOPE * len(case.data) + MEMORY_BASE
            assert peak < bound, f"{name}: peak {peak / MB:.1f} MB for {len(case.data)} bytes"

    tracemalloc.start()
    try:
        run("large_payloads_memory", large_payloads(), measured, variants=False, shrink=False)
    finally:
        tracemalloc.stop()
    worst = max(peaks, key=lambda p: p[0] / (MEMORY_SLOPE * p[1] + MEMORY_BASE))
    print(
        f"tracemalloc: {len(peaks)} calls, largest payload {max(p[1] for p in peaks) / MB:.1f} MB;"
        f" closest to the bound: {worst[2]} {worst[0] / MB:.1f} MB for {worst[1] / MB:.1f} MB"
    )
    by_target: dict[str, tuple[int, int]] = {}
    for peak, size, name in peaks:
        by_target[name] = max(by_target.get(name, (0, 0)), (peak, size))
    for name, (peak, size) in sorted(by_target.items()):
        print(f"  {name:10s} max peak {peak / MB:7.1f} MB (payload {size / MB:.1f} MB)")
