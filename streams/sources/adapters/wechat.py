"""WeChat official-account (公众号) message push (XML) -> canonical ``wechat`` events.

WeChat POSTs one ``<xml>`` document per customer message to the account's
server URL (plaintext mode; in safe mode the webhook must decrypt ``<Encrypt>``
with the EncodingAESKey first, an encrypted push is rejected as
``unsupported``). Elements used:

==================  ==========================================================
element             use
==================  ==========================================================
``ToUserName``      the account's original id (``gh_...``) -> ``queue``
``FromUserName``    the customer's openid -> ``customer_id`` as is (an openid
                    is already a per-account pseudonym, and the customer
                    service API needs it to reply)
``CreateTime``      epoch seconds -> ``occurred_at`` (UTC+08:00)
``MsgType``         ``text``, ``image``, ``voice``, ``video``, ``shortvideo``,
                    ``location``, ``link``, ``file``; ``event`` is ignored
``MsgId``           WeChat's message id; it keys ``event_id``, so WeChat's
                    retries (up to 3 when the server is slow) de-duplicate
``Content``         ``text`` messages: the text
``Recognition``     ``voice``: WeChat's speech recognition result, when enabled
``Title`` /         ``link``: used as the text
``Description``
``Label``           ``location``: the place name, used as the text
==================  ==========================================================

Every customer message becomes one ``message`` event. Non-text messages keep
a visible trace in the conversation with WeChat's own placeholders
(``[图片]``, ``[语音]``, ``[视频]``, ``[位置]``, ``[链接]``, ``[文件]``), followed by
whatever text the push carries (speech recognition, link title, place name);
the placeholders are listed in ``PLACEHOLDERS`` so text analysis can ignore
them. Event pushes (``MsgType`` ``event``: subscribe, unsubscribe, SCAN, CLICK,
VIEW, LOCATION, template-send reports, ...) are not customer messages and
return ``[]``.

``contact_id``: WeChat has no session, so a contact is one customer's
conversation with one account on one local (Asia/Shanghai) day:
``wechat:`` + SHA-256(account, openid, date)[:24].

Security: a push containing ``<!DOCTYPE`` or ``<!ENTITY`` is rejected
(``unsafe_xml``) before parsing, which rules out entity expansion and external
entities (XXE) with the standard library parser; input must be UTF-8 (as
WeChat always sends).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from vocflow.streams.sources.adapters.common import (
    AdapterError,
    AdapterReason,
    check_identifier,
    check_size,
    check_source,
    clip_text,
    epoch_to_datetime,
    event,
    finish,
    make_contact_id,
    make_event_id,
)

FORMAT = "wechat"
MAX_BYTES = 64_000
"""WeChat pushes are a few hundred bytes; anything far larger is not one."""

PLACEHOLDERS: dict[str, str] = {
    "image": "[图片]",
    "voice": "[语音]",
    "video": "[视频]",
    "shortvideo": "[视频]",
    "location": "[位置]",
    "link": "[链接]",
    "file": "[文件]",
}
MESSAGE_TYPES = frozenset({"text", *PLACEHOLDERS})
_UNSAFE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


def _root(data: bytes) -> ET.Element:
    check_size(data, MAX_BYTES, "WeChat")
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AdapterError(
            AdapterReason.undecodable, f"WeChat push is not UTF-8 (byte {exc.start})"
        ) from None
    if _UNSAFE.search(text) or "\x00" in text:
        raise AdapterError(
            AdapterReason.unsafe_xml,
            "WeChat push contains a DOCTYPE/ENTITY declaration (or NUL bytes); these are "
            "never in genuine pushes and are refused to prevent XXE and entity expansion",
        )
    # The declaration is dropped so the parser reads the text we checked as
    # UTF-8 whatever encoding it claims.
    try:
        root = ET.fromstring(_XML_DECL.sub("", text, count=1).encode("utf-8"))
    except ET.ParseError as exc:
        raise AdapterError(
            AdapterReason.bad_xml, f"WeChat push is not well-formed XML: {exc}"
        ) from None
    if root.tag != "xml":
        raise AdapterError(
            AdapterReason.bad_xml,
            f"WeChat push must have root element <xml>, got <{root.tag}>",
            loc=root.tag,
        )
    return root


def _field(root: ET.Element, name: str, *, required: bool = False) -> str:
    node = root.find(name)
    value = (node.text or "").strip() if node is not None else ""
    if required and not value:
        raise AdapterError(
            AdapterReason.missing_field, f"WeChat push has no <{name}> element", loc=name
        )
    return value


def _text(kind: str, root: ET.Element) -> str | None:
    if kind == "text":
        return _field(root, "Content")
    extra = {
        "voice": [_field(root, "Recognition")],
        "link": [_field(root, "Title"), _field(root, "Description")],
        "location": [_field(root, "Label")],
        "file": [_field(root, "Title")],
    }.get(kind, [])
    return " ".join([PLACEHOLDERS[kind], *(e for e in extra if e)])


def parse_wechat(data: bytes, *, source: str = "wechat") -> list[dict[str, Any]]:
    """One official-account push -> ``[message]``, or ``[]`` for an event push."""
    source = check_source(source)
    root = _root(data)
    if root.find("Encrypt") is not None and root.find("MsgType") is None:
        raise AdapterError(
            AdapterReason.unsupported,
            "WeChat push is encrypted (safe mode); decrypt <Encrypt> with the account's "
            "EncodingAESKey before calling this adapter",
            loc="Encrypt",
        )
    kind = _field(root, "MsgType", required=True).lower()
    if kind == "event":
        return []
    if kind not in MESSAGE_TYPES:
        raise AdapterError(
            AdapterReason.unknown_value,
            f"unknown MsgType {kind!r}; handled: {', '.join(sorted(MESSAGE_TYPES))} "
            "(event pushes are ignored)",
            loc="MsgType",
        )
    account = check_identifier(_field(root, "ToUserName", required=True), "ToUserName")
    openid = check_identifier(_field(root, "FromUserName", required=True), "FromUserName")
    created = _field(root, "CreateTime", required=True)
    if not (created.isascii() and created.isdigit()):
        raise AdapterError(
            AdapterReason.invalid_value,
            f"CreateTime must be epoch seconds, got {created[:30]!r}",
            loc="CreateTime",
        )
    at = epoch_to_datetime(float(created), "CreateTime")
    text = clip_text(_text(kind, root))
    if kind == "text" and text is None:
        raise AdapterError(
            AdapterReason.missing_field, "text message has an empty <Content>", loc="Content"
        )
    msg_id = _field(root, "MsgId")
    # Without MsgId, WeChat's own advice is to de-duplicate on sender + CreateTime.
    key = ("msgid", msg_id) if msg_id else ("from", openid, created, kind)
    return finish(
        [
            event(
                event_id=make_event_id(FORMAT, source, account, *key),
                contact_id=make_contact_id("wechat", account, openid, at.date().isoformat()),
                channel="wechat",
                event_type="message",
                occurred_at=at,
                source=source,
                customer_id=openid,
                queue=account,
                text=text,
            )
        ]
    )
