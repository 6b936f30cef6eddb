"""Customer e-mail (RFC 5322 ``.eml`` bytes) -> one canonical ``email`` event.

E-mail is an asynchronous channel: the first message of a thread is
``received`` (it starts the first-response SLA clock); a later customer
message in the same thread (it has ``In-Reply-To`` / ``References``) is a
``message`` of that contact, as schemas/source/contact.py defines for e-mail replies.

Mapping:

* ``contact_id`` = ``email:`` + SHA-256 of the thread root (first id in
  ``References``, else ``In-Reply-To``, else the mail's own ``Message-ID``)
  [:24]. Hashed because Message-IDs may hold characters ids may not, exceed
  128 chars, and look like e-mail addresses to the PII masker.
* ``event_id`` from ``Message-ID`` (or, when absent, SHA-256 of the raw bytes).
* ``customer_id`` = ``mail-`` + SHA-256(lower-cased From address)[:16]; the
  address itself is not kept anywhere in the event.
* ``occurred_at`` = arrival time, from the top ``Received:`` header (the
  receiving server's clock, which is when the SLA starts), else ``Date:``.
  ``-0000`` dates are UTC (RFC 5322 3.3).
* ``queue`` = the mailbox it was delivered to (``Delivered-To``, else the first
  ``To`` address), lower-cased.
* ``text`` = decoded subject, a blank line, then the body: the first
  ``text/plain`` part that is not an attachment, else the first ``text/html``
  part stripped to text. Quoted replies are cut where that is easy: lines
  starting with ``>``, everything after a reply header (``-----Original
  Message-----``, QQ/Foxmail ``------------------ 原始邮件 ------------------``,
  ``On ... wrote:``, ``在 ... 写道：``, an Outlook ``发件人:/From:`` block), after
  a ``-- `` signature line, HTML ``<blockquote>``, and ``发自我的iPhone``-style
  lines.

Charsets: GB2312 and GBK are decoded as GB18030, their superset (mailers that
declare GB2312 routinely send GBK-only characters such as 镕 or 喆). A part
without a charset is tried as UTF-8, then GB18030. Headers (RFC 2047 encoded
words or raw 8-bit) are decoded the same way but leniently (a damaged subject
must not lose the body).

Rejected with :class:`AdapterError`: unknown charset name (``bad_charset``),
body bytes that do not decode in the declared charset (``undecodable``),
damaged base64/quoted-printable or an unknown Content-Transfer-Encoding
(``bad_transfer_encoding``), a multipart body without its closing boundary
(``truncated_mime``) or without any boundary (``bad_format``), MIME nested too
deeply (``unsupported``: more than ``MAX_MIME_CONTAINERS`` multipart or message
parts, counted in the raw bytes before parsing), no ``From``
address (``missing_field``), no date at all (``missing_field``), and a mail
with neither a text body nor a subject (``no_body``; an attachment-only mail
with a subject is kept, its subject is the text).
"""

from __future__ import annotations

import codecs
import email
import hashlib
import re
from datetime import UTC, datetime
from email import errors as email_errors
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from vocflow.streams.privacy.pseudonyms import pseudonym
from vocflow.streams.sources.adapters.common import (
    AdapterError,
    AdapterReason,
    check_size,
    check_source,
    clip_text,
    event,
    finish,
    make_contact_id,
    make_event_id,
)

FORMAT = "email"
MAX_BYTES = 25_000_000
"""Common mail-server size limit; the body text we keep is far smaller."""

_GB_FAMILY = frozenset(
    {
        "gb2312",
        "gb_2312",
        "gb_2312-80",
        "csgb2312",
        "euc-cn",
        "euc_cn",
        "x-euc-cn",
        "cn-gb",
        "gbk",
        "x-gbk",
        "cp936",
        "ms936",
        "windows-936",
        "gb18030",
    }
)
_KNOWN_CTE = frozenset(
    {"", "7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "uuencode"}
)
_TRUNCATED = (email_errors.CloseBoundaryNotFoundDefect, email_errors.StartBoundaryNotFoundDefect)
_NO_BOUNDARY = (email_errors.NoBoundaryInMultipartDefect,)
_BAD_CTE = (
    email_errors.InvalidBase64PaddingDefect,
    email_errors.InvalidBase64CharactersDefect,
    email_errors.InvalidBase64LengthDefect,
)
_MSGID = re.compile(r"<([^<>\s]+)>")

MAX_MIME_CONTAINERS = 100
"""Most ``Content-Type: multipart/*`` or ``message/*`` headers a mail may have.

The stdlib parser recurses once per nested multipart or message part (and so do
``Message.walk`` and our readers of the tree); about 930 levels exhaust the default
stack, as a ~55 kB mail of nested multiparts does. Only these two kinds of part nest
(a multipart/digest's parts default to message/rfc822, one level more per header),
so counting their headers bounds the depth from above without parsing. The count
includes siblings (each forwarded mail attached brings 2-3), so the limit is far above
any real nesting and far below the stack's.
"""
# On the lower-cased bytes: a literal prefix, so lower() and the scan take ~30 ms for
# 25 MB, a tenth of parsing them (re.IGNORECASE: ~110 ms). Not anchored at a line start:
# the parser also splits lines at a lone CR, and a match inside a body only counts
# one too many. After the colon, what str.strip() removes in the parser's header value.
_CONTAINER_TYPE = re.compile(rb"content-type[ \t]*:[\s\x1c-\x1f]*(?:multipart|message)/")


# ------------------------------------------------------------------ charsets


def codec_for(charset: str | None, loc: str) -> str | None:
    """Python codec for a MIME charset name; GB2312/GBK widen to GB18030."""
    if charset is None:
        return None
    name = charset.strip().strip('"').lower()
    if not name:
        return None
    if name in _GB_FAMILY:
        return "gb18030"
    if name in {"us-ascii", "ascii"}:
        return "utf-8"  # strict superset; 8-bit bytes in "ascii" mail are usually UTF-8
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):  # ValueError: NUL bytes in the name
        raise AdapterError(
            AdapterReason.bad_charset,
            f"{loc} declares charset {charset!r}, which is not a known character set; "
            "the sender's mailer must use a standard one (UTF-8, GB18030, GBK, GB2312)",
            loc=loc,
        ) from None
    return "gb18030" if codec in {"gb2312", "gbk"} else codec


def _decode_lenient(raw: bytes, charset: str | None) -> str:
    for codec in (charset, "utf-8", "gb18030"):
        if codec is None:
            continue
        try:
            return raw.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("utf-8", errors="replace")


def header_text(msg: Message, name: str) -> str:
    """A header as text: RFC 2047 words and raw 8-bit bytes decoded, leniently."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        parts = decode_header(value)
    except (email_errors.HeaderParseError, ValueError):
        return str(value)
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        codec: str | None
        try:
            codec = None if charset in (None, "unknown-8bit") else codec_for(charset, name)
        except AdapterError:
            codec = None
        out.append(_decode_lenient(chunk, codec))
    return re.sub(r"\s+", " ", "".join(out)).strip()


# ---------------------------------------------------------------- body text


class _HtmlText(HTMLParser):
    """HTML -> plain text: block tags become line breaks; script/style and
    ``<blockquote>`` (the quoted earlier mail in HTML replies) are dropped."""

    _BLOCK = frozenset(
        {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr"}
    )
    _SKIP = frozenset({"script", "style", "head", "title", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


_REPLY_HEADER = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:original message|forwarded message|原始邮件|转发邮件)\s*-{2,}"
    r"|on\b.{0,200}\bwrote:"
    r"|在.{0,200}写道\s*[:：]"
    r")\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\s*(?:发件人|from)\s*[:：]", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\s*(?:发送时间|时间|日期|sent|date|收件人|to)\s*[:：]", re.IGNORECASE)
_MOBILE_SIGNATURE = re.compile(r"^\s*(?:发自我的|sent from my )\S.{0,40}$", re.IGNORECASE)


def strip_quoted(text: str) -> str:
    """The customer's own words: quoted replies and signatures cut (best effort)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line == "-- " or _REPLY_HEADER.match(line):
            break
        if _OUTLOOK_FROM.match(line):
            following = next((n for n in lines[i + 1 : i + 4] if n.strip()), "")
            if _OUTLOOK_NEXT.match(following):
                break
        if line.lstrip().startswith(">") or _MOBILE_SIGNATURE.match(line):
            continue
        kept.append(re.sub(r"[ \t\u3000\xa0]+", " ", line).strip())
    # Collapse runs of blank lines left by the HTML conversion and the cuts.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _check_structure(msg: Message) -> None:
    for n, part in enumerate(msg.walk()):
        where = "message" if n == 0 else f"MIME part {n}"
        for defect in part.defects:
            if isinstance(defect, _TRUNCATED):
                raise AdapterError(
                    AdapterReason.truncated_mime,
                    f"{where} ({part.get_content_type()}) is truncated: its closing MIME "
                    "boundary is missing, so the mail was cut in transit or storage; "
                    "fetch it again from the mail server",
                    loc=where,
                )
            if isinstance(defect, _NO_BOUNDARY):
                raise AdapterError(
                    AdapterReason.bad_format,
                    f"{where} is {part.get_content_type()} but declares no boundary; the "
                    "MIME structure cannot be read",
                    loc=where,
                )


def _body_part(msg: Message) -> tuple[int, Message] | None:
    plain: tuple[int, Message] | None = None
    html: tuple[int, Message] | None = None
    for n, part in enumerate(msg.walk()):
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if str(part.get("Content-Disposition") or "").strip().lower().startswith("attachment"):
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain" and plain is None:
            plain = (n, part)
        elif subtype == "html" and html is None:
            html = (n, part)
    return plain or html


def _part_text(n: int, part: Message) -> str:
    loc = f"MIME part {n}" if n else "message body"
    cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
    if cte not in _KNOWN_CTE:
        raise AdapterError(
            AdapterReason.bad_transfer_encoding,
            f"{loc} has unknown Content-Transfer-Encoding {cte!r}; "
            "expected base64, quoted-printable, 7bit or 8bit",
            loc=loc,
        )
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        raw = b""
    bad = [d for d in part.defects if isinstance(d, _BAD_CTE)]
    if bad:
        raise AdapterError(
            AdapterReason.bad_transfer_encoding,
            f"{loc}: its {cte or 'encoded'} content is damaged ({type(bad[0]).__name__}); "
            "the mail was probably cut off, fetch it again",
            loc=loc,
        )
    declared = part.get_content_charset()
    charset = codec_for(declared, loc)
    if charset is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_strict(raw, "gb18030", loc, "no charset declared; tried UTF-8 and")
    else:
        text = _decode_strict(raw, charset, loc, f"declared charset {declared!r} decoded as")
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return strip_quoted(text)


def _decode_strict(raw: bytes, codec: str, loc: str, how: str) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise AdapterError(
            AdapterReason.undecodable,
            f"{loc}: {how} {codec}, but byte {exc.start} (0x{raw[exc.start]:02x}) is invalid "
            "there; the mail's charset label is wrong or the body is corrupted",
            loc=loc,
        ) from None


# ------------------------------------------------------------------ headers


def _msgids(value: str) -> list[str]:
    return _MSGID.findall(value)


def _arrival(msg: Message) -> datetime:
    received = msg.get_all("Received") or []
    candidates = [str(received[0]).rpartition(";")[2]] if received else []
    candidates.append(str(msg.get("Date") or ""))
    for value in candidates:
        if not value.strip():
            continue
        try:
            at = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    if msg.get("Date"):
        raise AdapterError(
            AdapterReason.invalid_value,
            f"Date header {str(msg.get('Date'))[:60]!r} is not an RFC 5322 date "
            "(e.g. 'Wed, 1 May 2024 09:30:00 +0800')",
            loc="Date",
        )
    raise AdapterError(
        AdapterReason.missing_field,
        "the mail has neither a Date nor a Received header; its arrival time is unknown",
        loc="Date",
    )


def _mailbox(msg: Message) -> str | None:
    for name in ("Delivered-To", "To"):
        for _, addr in getaddresses([header_text(msg, name)]):
            addr = addr.strip().lower()
            if "@" in addr and len(addr) <= 64:
                return addr
    return None


def _check_nesting(raw: bytes) -> None:
    """Reject mails whose MIME tree could be deep enough to exhaust the stack, before
    the (recursive) parser sees them."""
    for containers, _ in enumerate(_CONTAINER_TYPE.finditer(raw.lower()), start=1):
        if containers > MAX_MIME_CONTAINERS:
            raise AdapterError(
                AdapterReason.unsupported,
                f"the mail has more than {MAX_MIME_CONTAINERS} multipart/message parts; MIME "
                "nested or repeated that much is not a customer mail this adapter reads",
                loc="message",
            )


def _parse_tree(raw: bytes) -> tuple[Message, tuple[int, Message] | None]:
    """Parse and check the MIME tree; returns the message and its body part, if any."""
    _check_nesting(raw)
    try:
        msg = email.message_from_bytes(raw)
        _check_structure(msg)
        return msg, _body_part(msg)
    except RecursionError:
        # Last line of defence: _check_nesting counts headers the parser reads, so this
        # needs a Content-Type spelled in a way the count misses, or a caller that has
        # used most of the stack already.
        raise AdapterError(
            AdapterReason.unsupported,
            "the mail's MIME parts are nested too deeply to read",
            loc="message",
        ) from None


def parse_email(data: bytes, *, source: str = "email") -> list[dict[str, Any]]:
    """One RFC 5322 message -> ``[received]`` (new thread) or ``[message]`` (reply)."""
    source = check_source(source)
    check_size(data, MAX_BYTES, "e-mail")
    raw = bytes(data)
    msg, found = _parse_tree(raw)

    sender = parseaddr(header_text(msg, "From"))[1].strip().lower()
    if "@" not in sender:
        raise AdapterError(
            AdapterReason.missing_field,
            "the mail has no usable From address, so the customer is unknown "
            "(is this an RFC 5322 message?)",
            loc="From",
        )
    at = _arrival(msg)

    subject = header_text(msg, "Subject")
    body = _part_text(*found) if found else ""
    if not body and not subject:
        raise AdapterError(
            AdapterReason.no_body,
            "the mail has no text: no text/plain or text/html body (or it is empty) and no subject",
            loc="body",
        )
    text = clip_text(f"{subject}\n\n{body}" if subject and body else subject or body)

    own = _msgids(header_text(msg, "Message-ID"))
    parents = _msgids(header_text(msg, "References")) or _msgids(header_text(msg, "In-Reply-To"))
    own_key = own[0] if own else "sha256:" + hashlib.sha256(raw).hexdigest()
    root = parents[0] if parents else own_key
    return finish(
        [
            event(
                event_id=make_event_id(FORMAT, source, own_key),
                contact_id=make_contact_id("email", root),
                channel="email",
                event_type="message" if parents else "received",
                occurred_at=at,
                source=source,
                customer_id=pseudonym("mail", sender),
                queue=_mailbox(msg),
                text=text,
            )
        ]
    )
