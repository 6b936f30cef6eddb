"""FreeSWITCH mod_callcenter events (``callcenter::info``) -> canonical phone events.

mod_callcenter publishes CUSTOM events with subclass ``callcenter::info``; the
``CC-Action`` header says what happened. A listener on the event socket
(``event plain CUSTOM callcenter::info`` or ``event json ...``) forwards each
event body here, as either:

* ESL *plain* text: ``Header-Name: url-encoded value`` lines, optionally still
  wrapped in the socket envelope (``Content-Type: text/event-plain`` + blank
  line), or
* ESL *json*: one JSON object of header -> string (or an array of such objects).
  A multi-valued header is a JSON array of strings there; it is read as the
  plain format writes it (``ARRAY::a|:b``). Any other value that is not a
  string, number, boolean or null is rejected (``wrong_type``).

A body that is empty or only whitespace (Unicode whitespace included) is
rejected as ``empty``.

Header names are matched case-insensitively. Mapping (one queue entry of a
call is a *member*; its ``CC-Member-UUID`` keys the event ids, so each
lifecycle step of a member has exactly one id however often it is delivered):

=======================  ====================  ===================================
CC-Action                canonical events      times used (epoch seconds)
=======================  ====================  ===================================
``member-queue-start``   ``offered``,          ``CC-Member-Joined-Time``, else
                         ``queued``            ``Event-Date-Timestamp`` (µs)
``bridge-agent-start``   ``answered``          at ``CC-Agent-Answered-Time``;
                                               wait = answered - joined
``bridge-agent-end``     ``ended``             at ``CC-Bridge-Terminated-Time``
                                               (else ``Event-Date-Timestamp``);
                                               talk = terminated - answered
``member-queue-end``     ``abandoned``         at ``CC-Member-Leaving-Time``;
with ``CC-Cause:                               wait = leaving - joined.
Cancel``                                       ``CC-Cancel-Reason`` ``TIMEOUT`` /
                                               ``NO_AGENT_TIMEOUT`` (the queue
                                               gave up) -> ``timed_out``;
                                               ``NONE``, ``BREAK_OUT``,
                                               ``EXIT_WITH_KEY``, anything else
                                               (the caller left) -> ``abandoned``
=======================  ====================  ===================================

Other fields: ``contact_id`` = ``CC-Member-Session-UUID`` (the caller's
channel, the same across queues), ``queue`` = ``CC-Queue`` (e.g.
``support@default``), ``agent_id`` = ``CC-Agent``, ``customer_id`` = pseudonym
``tel-<sha256[:16]>`` of ``CC-Member-CID-Number`` (never the number in clear;
none for anonymous/withheld numbers). ``CC-Member-CID-Name`` is not used.

Ignored (return ``[]``): ``member-queue-end`` with ``CC-Cause: Terminated`` (the
call was answered; bridge-agent-start/-end already reported it),
``agent-offering`` and ``bridge-agent-fail`` (ringing an agent is not a contact
step; the member keeps waiting), ``member-queue-resume``, ``members-count``,
and the agent events ``agent-status-change`` / ``agent-state-change`` (those
belong to the agent-state stream, not to contacts). mod_callcenter reports no
hold, transfer or wrap-up; use the generic CTI JSON for those.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import unquote

import orjson

from vocflow.streams.privacy.pseudonyms import pseudonym
from vocflow.streams.sources.adapters.common import (
    AdapterError,
    AdapterReason,
    check_identifier,
    check_size,
    check_source,
    clip,
    epoch_to_datetime,
    event,
    finish,
    make_event_id,
    normalize_msisdn,
    seconds_between,
    shown,
)

FORMAT = "freeswitch"
MAX_BYTES = 256_000
SUBCLASS = "callcenter::info"

IGNORED_ACTIONS = frozenset(
    {
        "agent-offering",
        "bridge-agent-fail",
        "member-queue-resume",
        "members-count",
        "agent-status-change",
        "agent-state-change",
    }
)
HANDLED_ACTIONS = frozenset(
    {"member-queue-start", "bridge-agent-start", "bridge-agent-end", "member-queue-end"}
)
# Cancel reasons where the queue, not the caller, ended the wait.
TIMEOUT_REASONS = frozenset({"TIMEOUT", "NO_AGENT_TIMEOUT"})
_WITHHELD = frozenset({"", "anonymous", "unknown", "private", "restricted", "0"})
_SCALAR = str | int | float | bool


def _parse_plain(text: str) -> dict[str, str]:
    """ESL plain event (optionally with its socket envelope) -> lowercased headers."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    if not blocks:
        # check_size's emptiness test is bytes.strip() (ASCII whitespace); str.strip()
        # here also removes \x1c-\x1f, U+0085, U+2028, U+3000..., so a body of only
        # those passes the size check and leaves no header block: the same rejection.
        raise AdapterError(AdapterReason.empty, "FreeSWITCH input is empty (only whitespace)")
    if len(blocks) > 1 and "text/event-plain" in blocks[0].lower():
        blocks = blocks[1:]
    headers: dict[str, str] = {}
    for n, line in enumerate(blocks[0].split("\n"), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise AdapterError(
                AdapterReason.bad_format,
                f"line {n} is not a 'Header-Name: value' line: {line[:60]!r}; send the ESL "
                "event as 'event plain' text or 'event json'",
                loc=f"line {n}",
            )
        try:
            headers[name.strip().lower()] = unquote(value.strip(), errors="strict")
        except UnicodeDecodeError:
            raise AdapterError(
                AdapterReason.undecodable,
                f"header {clip(name.strip())} is not URL-encoded UTF-8",
                loc=name.strip(),
            ) from None
    return headers


def _documents(data: bytes) -> list[tuple[str, dict[str, str]]]:
    check_size(data, MAX_BYTES, "FreeSWITCH")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdapterError(
            AdapterReason.undecodable, f"FreeSWITCH event is not UTF-8 (byte {exc.start})"
        ) from None
    if not text.lstrip().startswith(("{", "[")):
        return [("", _parse_plain(text))]
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise AdapterError(
            AdapterReason.bad_json, f"FreeSWITCH event-json is not valid JSON: {exc}"
        ) from None
    items = doc if isinstance(doc, list) else [doc]
    out = []
    for i, item in enumerate(items):
        loc = f"[{i}]" if isinstance(doc, list) else ""
        if not isinstance(item, dict):
            raise AdapterError(
                AdapterReason.not_an_object,
                f"FreeSWITCH event{loc} must be a JSON object of headers",
                loc=loc,
            )
        out.append((loc, {str(k).lower(): _json_header(str(k), v, loc) for k, v in item.items()}))
    return out


def _json_header(name: str, value: object, loc: str) -> str:
    """One event-json header value as the text the plain format would carry.

    FreeSWITCH writes strings, and arrays of strings for multi-valued headers; numbers
    and booleans are read as their text. Anything else (objects, nested arrays) is
    rejected by its type alone: ``str()`` of an array nested 1,000 levels deep
    overflows the stack, and no header is structured.
    """
    if value is None:
        return ""
    if isinstance(value, _SCALAR):
        return str(value)
    at = f"{loc}.{name}" if loc else name
    if isinstance(value, list) and all(item is None or isinstance(item, _SCALAR) for item in value):
        return "ARRAY::" + "|:".join("" if item is None else str(item) for item in value)
    raise AdapterError(
        AdapterReason.wrong_type,
        f"header {clip(name)} must be a string (or an array of strings), got "
        f"{'a nested array' if isinstance(value, list) else type(value).__name__}",
        loc=at,
    )


class _Headers:
    """Located access to one event's headers (names lowercased)."""

    def __init__(self, headers: dict[str, str], loc: str) -> None:
        self.h = headers
        self.loc = loc

    def at(self, name: str) -> str:
        return f"{self.loc}.{name}" if self.loc else name

    def get(self, name: str) -> str:
        return self.h.get(name.lower(), "").strip()

    def require(self, name: str, why: str) -> str:
        value = self.get(name)
        if not value:
            raise AdapterError(
                AdapterReason.missing_field,
                f"header {name} is required for CC-Action {self.get('CC-Action')}: {why}",
                loc=self.at(name),
            )
        return value

    def epoch(self, name: str) -> datetime | None:
        """mod_callcenter writes epoch seconds; '0' means 'not happened'."""
        value = self.get(name)
        if not value or value == "0":
            return None
        try:
            number = float(value)
        except ValueError:
            raise AdapterError(
                AdapterReason.invalid_value,
                f"header {name} must be epoch seconds, got {shown(value)}",
                loc=self.at(name),
            ) from None
        return epoch_to_datetime(number, self.at(name))

    def require_epoch(self, name: str, why: str) -> datetime:
        at = self.epoch(name)
        if at is None:
            raise AdapterError(
                AdapterReason.missing_field,
                f"header {name} is required for CC-Action {self.get('CC-Action')}: {why}",
                loc=self.at(name),
            )
        return at

    def event_time(self) -> datetime | None:
        """Event-Date-Timestamp, which FreeSWITCH writes in epoch microseconds."""
        return self.epoch("Event-Date-Timestamp")


def _customer(h: _Headers) -> str | None:
    number = h.get("CC-Member-CID-Number")
    if number.lower() in _WITHHELD:
        return None
    try:
        return pseudonym("tel", normalize_msisdn(number, h.at("CC-Member-CID-Number")))
    except AdapterError:
        # A caller id that is not a number (a SIP user name, "Restricted", ...)
        # identifies nobody reliably: the contact is kept, the customer unknown.
        return None


def _convert(loc: str, headers: dict[str, str], source: str) -> list[dict[str, Any]]:
    h = _Headers(headers, loc)
    subclass = h.get("Event-Subclass")
    name = h.get("Event-Name")
    if (
        (subclass and subclass != SUBCLASS)
        or (name and name != "CUSTOM")
        or not (subclass or h.get("CC-Action"))
    ):
        what = clip(name or "?") + (f" / {clip(subclass)}" if subclass else "")
        raise AdapterError(
            AdapterReason.unsupported,
            f"event {what} is not a mod_callcenter event; subscribe with "
            f"'event plain CUSTOM {SUBCLASS}' and forward only those events",
            loc=h.at("Event-Subclass"),
        )
    action = h.require("CC-Action", "every callcenter::info event has one")
    if action in IGNORED_ACTIONS:
        return []
    if action not in HANDLED_ACTIONS:
        raise AdapterError(
            AdapterReason.unknown_value,
            f"unknown CC-Action {shown(action)}; handled: {', '.join(sorted(HANDLED_ACTIONS))}; "
            f"ignored: {', '.join(sorted(IGNORED_ACTIONS))}",
            loc=h.at("CC-Action"),
        )
    cause = h.get("CC-Cause")
    if action == "member-queue-end" and cause == "Terminated":
        return []

    session = check_identifier(
        h.require("CC-Member-Session-UUID", "it is the call's id"), h.at("CC-Member-Session-UUID")
    )
    member = h.get("CC-Member-UUID") or f"{session}/{h.get('CC-Queue')}"
    queue = h.require("CC-Queue", "KPIs are per queue")
    common: dict[str, Any] = {
        "contact_id": session,
        "channel": "phone",
        "source": source,
        "customer_id": _customer(h),
        "queue": queue,
    }

    def ev(step: str, at: datetime, **extra: Any) -> dict[str, Any]:
        return event(
            event_id=make_event_id(FORMAT, source, member, step),
            event_type=step,
            occurred_at=at,
            **common,
            **extra,
        )

    if action == "member-queue-start":
        joined = h.epoch("CC-Member-Joined-Time") or h.event_time()
        if joined is None:
            raise AdapterError(
                AdapterReason.missing_field,
                "member-queue-start needs CC-Member-Joined-Time or Event-Date-Timestamp",
                loc=h.at("CC-Member-Joined-Time"),
            )
        return [ev("offered", joined), ev("queued", joined)]

    if action == "member-queue-end":
        if cause != "Cancel":
            raise AdapterError(
                AdapterReason.unknown_value,
                f"member-queue-end has CC-Cause {shown(cause)}; expected 'Terminated' or 'Cancel'",
                loc=h.at("CC-Cause"),
            )
        joined = h.require_epoch("CC-Member-Joined-Time", "the wait starts there")
        left = h.require_epoch("CC-Member-Leaving-Time", "the wait ends there")
        reason = h.get("CC-Cancel-Reason").upper()
        step = "timed_out" if reason in TIMEOUT_REASONS else "abandoned"
        wait = seconds_between(joined, left, "wait (CC-Member-Leaving-Time - Joined-Time)")
        return [ev(step, left, wait_seconds=wait)]

    agent = check_identifier(h.require("CC-Agent", "the agent who took the call"), h.at("CC-Agent"))
    answered = h.require_epoch("CC-Agent-Answered-Time", "the answer time")
    if action == "bridge-agent-start":
        joined = h.require_epoch("CC-Member-Joined-Time", "the wait starts there")
        wait = seconds_between(joined, answered, "wait (CC-Agent-Answered-Time - Joined-Time)")
        return [ev("answered", answered, agent_id=agent, wait_seconds=wait)]

    # bridge-agent-end
    ended = h.epoch("CC-Bridge-Terminated-Time") or h.event_time()
    if ended is None:
        raise AdapterError(
            AdapterReason.missing_field,
            "bridge-agent-end needs CC-Bridge-Terminated-Time or Event-Date-Timestamp",
            loc=h.at("CC-Bridge-Terminated-Time"),
        )
    talk = seconds_between(answered, ended, "talk (CC-Bridge-Terminated-Time - Answered-Time)")
    return [ev("ended", ended, agent_id=agent, talk_seconds=talk)]


def parse_freeswitch(data: bytes, *, source: str = "freeswitch") -> list[dict[str, Any]]:
    """One ESL callcenter::info event (plain or json; json may be an array) -> events."""
    source = check_source(source)
    out: list[dict[str, Any]] = []
    for loc, headers in _documents(data):
        out.extend(finish(_convert(loc, headers, source), loc))
    return out
