"""Chat tools of `vocflow notify`: message model, per-tool payloads, signatures, answers.

Everything here is a pure function of a rendered :class:`Message`, a receiver
and the current time, so that every payload can be unit-tested byte for byte
(tests/unit/notify/test_notify_channels.py). The message itself is rendered in
:mod:`vocflow.streams.notify.render`; the network, the outbox and the retries
live in :mod:`vocflow.streams.notify.service` and :mod:`vocflow.streams.notify.outbox`.

Why each tool is handled the way it is:

* **WeCom (企业微信) group robot** -- ``msgtype: markdown``. The key is part of
  the URL; the robot has no request signing. It answers HTTP 200 even when it
  refuses a message, so success is ``errcode == 0`` in the JSON body. Markdown
  content is limited to 4096 bytes.
* **DingTalk (钉钉) robot** -- ``msgtype: markdown``. With "加签" enabled the
  URL carries ``timestamp`` (ms) and ``sign`` = urlencode(base64(HMAC-SHA256(
  key=secret, msg="{timestamp}\\n{secret}"))); DingTalk refuses a timestamp
  more than an hour old, which is why signing happens per attempt, never at
  enqueue time. Success is ``errcode == 0`` (130101 = sent too fast: retried).
* **Feishu (飞书) custom bot** -- an interactive card (coloured header plus a
  markdown element). With signature verification on, the body carries
  ``timestamp`` (s) and ``sign`` = base64(HMAC-SHA256(key="{timestamp}\\n{secret}",
  msg=b"")). Success is ``code == 0`` (older bots: ``StatusCode == 0``).
* **Slack incoming webhook** -- ``{"text": ...}`` in Slack's mrkdwn; success
  is HTTP 200.
* **Generic webhook** -- JSON with the rendered title/text and the raw alerts,
  optionally signed exactly like requests to `vocflow ingest`
  (``X-Vocflow-Signature: sha256=hex(HMAC(secret, ts + "." + body))``), so one
  verification routine serves both directions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RECEIVER_TYPES = ("wecom", "dingtalk", "feishu", "slack", "webhook")
"""Receiver ``type`` values accepted in the notify file."""

SIGNING_TYPES = frozenset({"dingtalk", "feishu", "webhook"})
"""Types whose ``secret`` signs the request (the others carry their key in the URL)."""

MAX_TEXT = {"wecom": 4000, "dingtalk": 18000, "feishu": 28000, "slack": 38000, "webhook": 200_000}
"""Size budget of the rendered text per type, in UTF-8 bytes, below each tool's hard limit
(WeCom markdown 4096 B, DingTalk 20000 B, Feishu card 30 KB, Slack 40k chars)."""

SIGNATURE_HEADER = "X-Vocflow-Signature"
TIMESTAMP_HEADER = "X-Vocflow-Timestamp"


@dataclass(frozen=True)
class Line:
    """One ``label: text`` line of an alert; with ``url`` the text is a link to it."""

    label: str
    text: str
    url: str | None = None


@dataclass(frozen=True)
class Block:
    """The lines describing one alert; ``heading`` is set when a message holds several."""

    lines: tuple[Line, ...]
    heading: str | None = None


@dataclass(frozen=True)
class Message:
    """A notification rendered in the reader's language, not yet in any tool's markup.

    ``colour`` is ``red`` (critical firing), ``orange`` (other firing) or
    ``green`` (all resolved). ``more`` is the sentence shown when blocks had to
    be cut to fit a tool's size limit; it contains ``{n}`` for the number cut.
    ``alerts`` are the Alertmanager alerts behind the message, for the
    generic webhook.
    """

    title: str
    status: str
    severity: str
    colour: str
    blocks: tuple[Block, ...]
    separator: str = "："
    more: str = "…另有 {n} 条未显示"
    more_url: str | None = None
    alerts: tuple[Mapping[str, Any], ...] = field(default=())


@dataclass(frozen=True)
class Request:
    """An HTTP POST ready to send: where, what, which headers."""

    url: str
    body: bytes
    headers: Mapping[str, str]


# ---------------------------------------------------------------- signatures


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` parameter, already URL-encoded (as DingTalk's own sample does)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode("ascii"))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's ``sign``: the key is "timestamp\\nsecret", the message is empty."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def webhook_sign(secret: str, timestamp_s: int, body: bytes) -> str:
    """Same scheme as `vocflow ingest`: ``sha256=`` + hex HMAC(secret, ts + "." + body)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_s}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# ------------------------------------------------------------------- markup


def _fit(head: str, parts: Sequence[str], joiner: str, limit: int, footer: str) -> str:
    """``head`` + as many ``parts`` as fit in ``limit`` bytes, then ``footer`` naming the rest.

    Whole alerts are dropped rather than cut mid-line: a half line could lose
    the threshold or the time, which is worse than "3 more, see Alertmanager".
    """
    text = head
    for i, part in enumerate(parts):
        candidate = text + joiner + part if text else part
        rest = len(parts) - i - 1
        reserve = len(footer.encode()) + 32 if rest else 0
        if len(candidate.encode("utf-8")) + reserve > limit:
            return (text + joiner if text else "") + footer.replace("{n}", str(len(parts) - i))
        text = candidate
    return text


def _more(message: Message, link: str) -> str:
    text = message.more
    if message.more_url:
        text += " " + link.format(url=message.more_url, text="Alertmanager")
    return text


def markdown(message: Message, flavour: str, *, with_title: bool = True) -> str:
    """Markdown for WeCom, DingTalk and Feishu (bold labels, ``[text](url)`` links).

    DingTalk collapses single newlines, so its lines are separated by blank
    lines; WeCom gets coloured titles (``<font color="warning|info">``).
    """
    nl = "\n\n" if flavour == "dingtalk" else "\n"
    head = ""
    if with_title:
        title = message.title
        if flavour == "wecom":
            tone = "info" if message.colour == "green" else "warning"
            title = f'<font color="{tone}">{title}</font>'
        head = f"### {title}"
    parts = []
    for block in message.blocks:
        lines = [f"**{block.heading}**"] if block.heading else []
        for line in block.lines:
            value = f"[{line.text}]({line.url})" if line.url else line.text
            lines.append(f"**{line.label}**{message.separator}{value}")
        parts.append(nl.join(lines))
    footer = _more(message, "[{text}]({url})")
    return _fit(head, parts, nl * (2 if flavour != "dingtalk" else 1), MAX_TEXT[flavour], footer)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(message: Message) -> str:
    """Slack mrkdwn: ``*bold*`` and ``<url|text>`` links, with &, < and > escaped."""
    parts = []
    for block in message.blocks:
        lines = [f"*{_slack_escape(block.heading)}*"] if block.heading else []
        for line in block.lines:
            text = _slack_escape(line.text)
            value = f"<{line.url}|{text}>" if line.url else text
            lines.append(f"*{_slack_escape(line.label)}*{message.separator}{value}")
        parts.append("\n".join(lines))
    footer = _more(message, "<{url}|{text}>")
    return _fit(f"*{_slack_escape(message.title)}*", parts, "\n\n", MAX_TEXT["slack"], footer)


def plain_text(message: Message) -> str:
    """Unformatted text (generic webhook, logs of a dry run): ``label: text (url)``."""
    parts = []
    for block in message.blocks:
        lines = [block.heading] if block.heading else []
        for line in block.lines:
            value = f"{line.text} {line.url}" if line.url else line.text
            lines.append(f"{line.label}{message.separator}{value}")
        parts.append("\n".join(lines))
    footer = _more(message, "{url}")
    return _fit(message.title, parts, "\n\n", MAX_TEXT["webhook"], footer)


# ----------------------------------------------------------------- payloads


def _dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _with_query(url: str, extra: Mapping[str, str]) -> str:
    """``url`` with ``extra`` query parameters appended (values already encoded)."""
    joiner = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + joiner + "&".join(f"{k}={v}" for k, v in extra.items())


_JSON = {"Content-Type": "application/json; charset=utf-8"}
_FEISHU_TEMPLATE = {"red": "red", "orange": "orange", "green": "green"}


def payload(kind: str, message: Message, *, receiver: str = "") -> dict[str, Any]:
    """The JSON body for a receiver ``kind``, before any signature is added."""
    if kind == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": markdown(message, "wecom")}}
    if kind == "dingtalk":
        return {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": markdown(message, "dingtalk")},
        }
    if kind == "feishu":
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "title": {"tag": "plain_text", "content": message.title},
                    "template": _FEISHU_TEMPLATE.get(message.colour, "blue"),
                },
                "elements": [
                    {"tag": "markdown", "content": markdown(message, "feishu", with_title=False)}
                ],
            },
        }
    if kind == "slack":
        return {"text": slack_text(message)}
    if kind == "webhook":
        return {
            "version": "vocflow.notify/1",
            "receiver": receiver,
            "status": message.status,
            "severity": message.severity,
            "title": message.title,
            "text": plain_text(message),
            "alerts": [dict(a) for a in message.alerts],
        }
    raise ValueError(f"unknown receiver type {kind!r}")


def build_request(
    kind: str, url: str, message: Message, *, secret: str | None, now: float, receiver: str = ""
) -> Request:
    """The POST for one delivery attempt at time ``now`` (signatures are time-bound)."""
    body = payload(kind, message, receiver=receiver)
    headers: dict[str, str] = dict(_JSON)
    if kind == "dingtalk" and secret:
        ts_ms = int(now * 1000)
        url = _with_query(url, {"timestamp": str(ts_ms), "sign": dingtalk_sign(secret, ts_ms)})
    elif kind == "feishu" and secret:
        ts = int(now)
        body = {"timestamp": str(ts), "sign": feishu_sign(secret, ts), **body}
    raw = _dumps(body)
    if kind == "webhook" and secret:
        ts = int(now)
        headers[TIMESTAMP_HEADER] = str(ts)
        headers[SIGNATURE_HEADER] = webhook_sign(secret, ts, raw)
    return Request(url=url, body=raw, headers=headers)


def check_answer(kind: str, status: int, body: bytes) -> str | None:
    """``None`` when the tool accepted the message, else a short reason (no secrets in it).

    WeCom, DingTalk and Feishu report refusals inside an HTTP 200, so the body
    decides; for Slack and generic webhooks any 2xx is success.
    """
    if not 200 <= status < 300:
        return f"HTTP {status}: {_snippet(body)}"
    if kind in ("slack", "webhook"):
        return None
    try:
        answer = json.loads(body or b"null")
    except ValueError:
        return f"HTTP {status} with a non-JSON answer: {_snippet(body)}"
    if not isinstance(answer, dict):
        return f"HTTP {status} with an unexpected answer: {_snippet(body)}"
    if kind in ("wecom", "dingtalk"):
        code, msg = answer.get("errcode"), answer.get("errmsg")
    else:
        code = answer.get("code", answer.get("StatusCode"))
        msg = answer.get("msg", answer.get("StatusMessage"))
    if code == 0:
        return None
    return f"{kind} refused the message: code {code}: {str(msg)[:200]}"


def _snippet(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").replace("\n", " ").strip() or "(empty body)"
