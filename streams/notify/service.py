"""`vocflow notify`: Alertmanager webhooks -> the on-call supervisors' chat groups.

Alertmanager decides *whether* and *when* to notify (grouping, inhibition,
silences, repeats; deploy/alertmanager/alertmanager.yml). This service decides
*where* and *how*: it routes each alert by its labels (department, severity)
to WeCom, DingTalk, Feishu, Slack or generic webhook receivers, and renders it
so that a supervisor reading a phone can act on it: what (alert + summary),
where (department / queue / topic), how bad (value vs threshold), since when
(Beijing time), and the runbook. Operator guide: docs/alerting.md.

Design choices, and why:

* **200 means durable.** Each notification is written to a SQLite outbox
  (WAL, ``synchronous=FULL``) before Alertmanager gets its 200. If the write
  fails Alertmanager gets a 500 and retries. A sender task per receiver then
  delivers in order with exponential backoff and jitter, so a chat tool's
  outage or a restart of this process loses nothing: pending rows resume.
  Delivery to the chat tool is therefore at-least-once (a crash between its
  answer and our commit repeats one message), like Alertmanager's own.
* **Alertmanager's duplicates are dropped.** Alertmanager is at-least-once
  too (HA peers, retried webhooks, a group re-sent when a new alert joins
  it). An alert is queued for a receiver only if the same receiver + group +
  fingerprint + status + startsAt was not queued within ``dedup_window``.
  The window must be shorter than the shortest ``repeat_interval`` in
  alertmanager.yml, so that Alertmanager's deliberate reminders still get
  through (they are marked as reminders); tests check the two files agree.
* **Rendered at send time.** The outbox keeps the alerts, not the text, so a
  message delivered after an outage says how long the alert has lasted *now*,
  and signatures (DingTalk, Feishu) are fresh on every attempt.
* **No secrets in logs or metrics.** Receivers are named by their ``name``;
  URLs (which hold WeCom keys and DingTalk tokens) and secrets are masked in
  every error text. Secrets can come from ``${ENV_VAR}`` references so the
  routing file itself can be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import random
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
import yaml
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vocflow.streams.core.settings import Settings
from vocflow.streams.notify.channels import (
    RECEIVER_TYPES,
    SIGNING_TYPES,
    Block,
    Line,
    Message,
    build_request,
    check_answer,
)

log = logging.getLogger("vocflow.notify")

LANGUAGES = ("zh", "en", "both")
DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_BODY_BYTES = 8 * 1024 * 1024
KEEP_DONE_S = 7 * 24 * 3600
"""Sent / given-up rows and dedup keys are kept this long (audit, reminder detection)."""

DEPARTMENT_NAMES: dict[str, str] = {
    "billing": "计费账务",
    "network": "网络运维",
    "tech_support": "技术支持",
    "sales_retention": "营销与挽留",
    "complaints": "投诉处理",
    "ops": "平台运维",
}
"""Display names of the default departments (docs/voc.md); the notify file may add more."""

WHERE_LABELS = ("department", "queue", "channel", "topic", "city", "instance")
"""Labels that say *where*, in the order they are shown."""

_SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


# ===================================================================== config


class NotifyConfigError(Exception):
    """The notify file is wrong; each line of the message is ``file:line: what: why``."""


@dataclass(frozen=True)
class Receiver:
    """A chat group (or webhook) to deliver to. ``url`` and ``secret`` are never logged."""

    name: str
    type: str
    url: str
    secret: str | None = field(default=None, repr=False)
    language: str | None = None

    def __repr__(self) -> str:  # the URL holds the WeCom key / DingTalk token
        return f"Receiver(name={self.name!r}, type={self.type!r})"

    def redact(self, text: str) -> str:
        """``text`` with the URL, its query values and the secret replaced by ``***``."""
        hidden = [self.url, self.secret or ""]
        hidden += [v for _, v in urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query)]
        for value in sorted((h for h in hidden if len(h) >= 4), key=len, reverse=True):
            text = text.replace(value, "***")
            text = text.replace(urllib.parse.quote(value, safe=""), "***")
        return text


@dataclass(frozen=True)
class Route:
    """Alerts whose labels match every ``match`` entry go to ``receivers``.

    A value matches when it is one of the listed ones; an empty ``match`` is a
    catch-all. Like Alertmanager, the first matching route wins unless it
    says ``continue: true``.
    """

    match: Mapping[str, frozenset[str]]
    receivers: tuple[str, ...]
    continue_: bool = False
    line: int = 0

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key, "") in values for key, values in self.match.items())


@dataclass(frozen=True)
class Delivery:
    """Retry policy of the sender loops (seconds)."""

    timeout_s: float = 10.0
    initial_backoff_s: float = 2.0
    max_backoff_s: float = 300.0
    give_up_after_s: float | None = 24 * 3600.0

    def backoff(self, attempts: int, rng: Callable[[], float] = random.random) -> float:
        """Delay before the next attempt after ``attempts`` failures: exponential, capped,
        with "equal jitter" (half fixed, half random) so that receivers recovering from
        one outage are not hit by every sender in the same second."""
        growth = 2.0 ** max(attempts - 1, 0)
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * growth)
        return float(ceiling / 2 + rng() * ceiling / 2)


@dataclass(frozen=True)
class NotifyConfig:
    """A validated notify file (docs/alerting.md, deploy/alertmanager/notify.yaml)."""

    receivers: Mapping[str, Receiver]
    routes: tuple[Route, ...]
    language: str = "zh"
    timezone: str = DEFAULT_TIMEZONE
    dedup_window_s: float = 25 * 60.0
    delivery: Delivery = field(default_factory=Delivery)
    departments: Mapping[str, str] = field(default_factory=lambda: dict(DEPARTMENT_NAMES))
    webhook_token: str | None = field(default=None, repr=False)
    source: str = "<config>"

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def route(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """Receiver names for an alert with ``labels`` (never empty: a catch-all is required)."""
        out: list[str] = []
        for route in self.routes:
            if route.matches(labels):
                out.extend(r for r in route.receivers if r not in out)
                if not route.continue_:
                    break
        return tuple(out)


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"500ms"``, ``"10s"``, ``"5m"``, ``"24h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 5m or 24h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"'{value}' is not a duration such as 10s, 5m or 24h")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be zero or positive")
    return seconds


def _key_lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Record the 1-based line of every key / list item, so errors can point into the file."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value if isinstance(key, yaml.ScalarNode) else str(key))
            out[sub] = key.start_mark.line + 1
            _key_lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _key_lines(item, (*path, i), out)


class _Problems:
    """Collects every problem of a file, so one run of `--check` lists them all."""

    def __init__(self, source: str, lines: Mapping[tuple[Any, ...], int]) -> None:
        self.source, self.lines = source, lines
        self.items: list[str] = []

    def add(self, path: tuple[Any, ...], message: str) -> None:
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe, 1)
        where = ".".join(str(p) for p in path)
        self.items.append(f"{self.source}:{line}: {where + ': ' if where else ''}{message}")


def _expand(
    value: str, environ: Mapping[str, str], problems: _Problems, path: tuple[Any, ...]
) -> str:
    """Replace ``${VAR}`` with the environment's value; never echo a value in errors."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in environ:
            problems.add(path, f"environment variable {m.group(1)} is not set")
            return ""
        return environ[m.group(1)]

    return _ENV_REF.sub(sub, value)


def _str_list(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    return None


def _receiver(
    name: object, spec: object, environ: Mapping[str, str], problems: _Problems
) -> Receiver | None:
    path: tuple[Any, ...] = ("receivers", name)
    if not isinstance(name, str) or not _NAME.match(name):
        problems.add(path, "a receiver name is letters, digits, '.', '_' or '-' (max 64)")
        return None
    if not isinstance(spec, dict):
        problems.add(path, "must be a mapping with type and url")
        return None
    unknown = set(spec) - {"type", "url", "secret", "language"}
    for key in sorted(unknown):
        problems.add((*path, key), "unknown key (expected type, url, secret, language)")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in RECEIVER_TYPES:
        problems.add((*path, "type"), f"must be one of {', '.join(RECEIVER_TYPES)}, not {kind!r}")
        return None
    raw_url = spec.get("url")
    if not isinstance(raw_url, str) or not raw_url.strip():
        problems.add((*path, "url"), "missing (the robot's webhook address)")
        return None
    before = len(problems.items)
    url = _expand(raw_url.strip(), environ, problems, (*path, "url"))
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    if len(problems.items) > before:
        pass  # a missing variable: the shape checks below would only repeat it
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add((*path, "url"), "must be an http:// or https:// address")
    elif kind == "wecom" and not query.get("key"):
        problems.add((*path, "url"), "a WeCom robot address ends in ?key=<robot key>")
    elif kind == "dingtalk" and not query.get("access_token"):
        problems.add((*path, "url"), "a DingTalk robot address ends in ?access_token=<token>")
    secret = spec.get("secret")
    if secret is not None:
        if kind not in SIGNING_TYPES:
            problems.add(
                (*path, "secret"),
                f"{kind} does not sign requests; its key belongs in the url",
            )
        elif not isinstance(secret, str) or not secret:
            problems.add((*path, "secret"), "must be a non-empty string (or ${ENV_VAR})")
        else:
            secret = _expand(secret, environ, problems, (*path, "secret"))
    language = spec.get("language")
    if language is not None and language not in LANGUAGES:
        problems.add((*path, "language"), f"must be one of {', '.join(LANGUAGES)}")
    return Receiver(name, kind, url, secret or None, language)


def _route(index: int, spec: object, receivers: Mapping[str, Any], problems: _Problems) -> Route:
    path: tuple[Any, ...] = ("routes", index)
    line = problems.lines.get(path, 0)
    if not isinstance(spec, dict):
        problems.add(path, "must be a mapping with match (optional) and receivers")
        return Route({}, (), line=line)
    for key in sorted(set(spec) - {"match", "receivers", "continue"}):
        problems.add((*path, key), "unknown key (expected match, receivers, continue)")
    match: dict[str, frozenset[str]] = {}
    raw_match = spec.get("match") or {}
    if not isinstance(raw_match, dict):
        problems.add((*path, "match"), "must be a mapping label: value (or a list of values)")
        raw_match = {}
    for label, value in raw_match.items():
        values = _str_list(value)
        if not isinstance(label, str) or not _LABEL.match(label):
            problems.add((*path, "match", label), "not a Prometheus label name")
        elif values is None:
            problems.add((*path, "match", label), "must be a value or a non-empty list of values")
        else:
            match[label] = frozenset(values)
    names = _str_list(spec.get("receivers"))
    if names is None:
        problems.add((*path, "receivers"), "must list at least one receiver name")
        names = []
    for name in names:
        if name not in receivers:
            known = ", ".join(sorted(receivers)) or "none defined"
            problems.add((*path, "receivers"), f"unknown receiver '{name}' (known: {known})")
    cont = spec.get("continue", False)
    if not isinstance(cont, bool):
        problems.add((*path, "continue"), "must be true or false")
        cont = False
    return Route(match, tuple(names), cont, line)


def parse_notify_config(
    text: str, source: str = "<config>", environ: Mapping[str, str] | None = None
) -> NotifyConfig:
    """Validate a notify file's text; raise NotifyConfigError listing every problem."""
    import os

    environ = os.environ if environ is None else environ
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise NotifyConfigError(
            f"{source}{where}: invalid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    problems = _Problems(source, lines)
    if not isinstance(data, dict):
        raise NotifyConfigError(f"{source}:1: must be a mapping with receivers and routes")
    known = {
        "language", "timezone", "dedup_window", "delivery", "departments", "webhook_token",
        "receivers", "routes",
    }  # fmt: skip
    for key in sorted(set(data) - known, key=str):
        problems.add((key,), f"unknown key (expected one of {', '.join(sorted(known))})")

    language = data.get("language", "zh")
    if language not in LANGUAGES:
        problems.add(("language",), f"must be one of {', '.join(LANGUAGES)}, not {language!r}")
    timezone = data.get("timezone", DEFAULT_TIMEZONE)
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        problems.add(("timezone",), f"unknown time zone {timezone!r} (e.g. Asia/Shanghai)")

    def duration(path: tuple[Any, ...], value: object, default: float) -> float:
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            problems.add(path, str(exc))
            return default

    dedup = duration(("dedup_window",), data.get("dedup_window"), 25 * 60.0)
    raw_delivery = data.get("delivery") or {}
    if not isinstance(raw_delivery, dict):
        problems.add(("delivery",), "must be a mapping")
        raw_delivery = {}
    delivery_keys = {"timeout", "initial_backoff", "max_backoff", "give_up_after"}
    for key in sorted(set(raw_delivery) - delivery_keys, key=str):
        expected = ", ".join(sorted(delivery_keys))
        problems.add(("delivery", key), f"unknown key (expected {expected})")
    d = Delivery()
    give_up_raw = raw_delivery.get("give_up_after")
    give_up: float | None
    if give_up_raw in ("never", 0):
        give_up = None
    else:
        give_up = duration(("delivery", "give_up_after"), give_up_raw, d.give_up_after_s or 0)
    delivery = Delivery(
        timeout_s=duration(("delivery", "timeout"), raw_delivery.get("timeout"), d.timeout_s),
        initial_backoff_s=duration(
            ("delivery", "initial_backoff"),
            raw_delivery.get("initial_backoff"),
            d.initial_backoff_s,
        ),
        max_backoff_s=duration(
            ("delivery", "max_backoff"), raw_delivery.get("max_backoff"), d.max_backoff_s
        ),
        give_up_after_s=give_up,
    )
    if delivery.timeout_s <= 0:
        problems.add(("delivery", "timeout"), "must be greater than 0")
    if delivery.initial_backoff_s <= 0:
        problems.add(("delivery", "initial_backoff"), "must be greater than 0")
    if delivery.max_backoff_s < delivery.initial_backoff_s:
        problems.add(("delivery", "max_backoff"), "must not be smaller than initial_backoff")

    departments = dict(DEPARTMENT_NAMES)
    raw_departments = data.get("departments") or {}
    if not isinstance(raw_departments, dict):
        problems.add(("departments",), "must be a mapping department id: display name")
    else:
        for dep, name in raw_departments.items():
            if not isinstance(name, str) or not name.strip():
                problems.add(("departments", dep), "display name must be a non-empty string")
            else:
                departments[str(dep)] = name.strip()

    token = data.get("webhook_token")
    if token is not None:
        if not isinstance(token, str) or not token:
            problems.add(("webhook_token",), "must be a non-empty string (or ${ENV_VAR})")
            token = None
        else:
            token = _expand(token, environ, problems, ("webhook_token",)) or None

    receivers: dict[str, Receiver] = {}
    raw_receivers = data.get("receivers")
    if not isinstance(raw_receivers, dict) or not raw_receivers:
        problems.add(("receivers",), "must be a non-empty mapping of name: {type, url[, secret]}")
        raw_receivers = {}
    for name, spec in raw_receivers.items():
        receiver = _receiver(name, spec, environ, problems)
        if receiver is not None:
            receivers[receiver.name] = receiver

    routes: list[Route] = []
    raw_routes = data.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        problems.add(("routes",), "must be a non-empty list of {match, receivers}")
        raw_routes = []
    catch_all_at: int | None = None
    for i, spec in enumerate(raw_routes):
        route = _route(i, spec, raw_receivers, problems)
        if catch_all_at is not None:
            problems.add(
                ("routes", i),
                f"unreachable: route {catch_all_at} above matches every alert (and has no "
                "continue: true)",
            )
        if not route.match and not route.continue_ and catch_all_at is None:
            catch_all_at = i
        routes.append(route)
    if raw_routes and catch_all_at is None:
        problems.add(
            ("routes",),
            "no catch-all route (one without match): an alert matching no route would be lost",
        )
    if problems.items:
        raise NotifyConfigError(
            f"invalid notify file ({len(problems.items)} problem(s)):\n  "
            + "\n  ".join(problems.items)
        )
    return NotifyConfig(
        receivers=receivers,
        routes=tuple(routes),
        language=language,
        timezone=str(timezone),
        dedup_window_s=dedup,
        delivery=delivery,
        departments=departments,
        webhook_token=token,
        source=source,
    )


def load_notify_config(path: Path, environ: Mapping[str, str] | None = None) -> NotifyConfig:
    """Read and validate a notify file (see parse_notify_config)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotifyConfigError(f"{path}: cannot read notify file: {exc.strerror}") from None
    return parse_notify_config(text, str(path), environ)


# ================================================================== rendering

_T: dict[str, tuple[str, str]] = {
    "firing": ("告警", "FIRING"),
    "resolved": ("已恢复", "RESOLVED"),
    "critical": ("严重", "CRITICAL"),
    "warning": ("警告", "WARNING"),
    "info": ("提示", "INFO"),
    "what": ("告警", "Alert"),
    "where": ("位置", "Where"),
    "how_bad": ("程度", "How bad"),
    "since": ("开始", "Since"),
    "ended": ("恢复", "Resolved"),
    "details": ("详情", "Details"),
    "runbook": ("处理手册", "Runbook"),
    "value": ("当前值", "value"),
    "last_value": ("恢复前", "last value"),
    "threshold": ("阈值", "threshold"),
    "reminder": ("（仍未恢复，重复提醒）", " (still firing, reminder)"),
    "for": ("已持续", "for"),
    "lasted": ("持续", "lasted"),
    "more": ("…另有 {n} 条未显示，见", "… {n} more not shown, see"),
    "count": ("（共 {n} 条）", " ({n} alerts)"),
    "mixed": ("（告警 {f} 条，恢复 {r} 条）", " ({f} firing, {r} resolved)"),
    "beijing": ("北京时间", "Beijing time"),
}
_WHERE_NAMES: dict[str, tuple[str, str]] = {
    "department": ("部门", "department"),
    "queue": ("队列", "queue"),
    "channel": ("渠道", "channel"),
    "topic": ("话题", "topic"),
    "city": ("城市", "city"),
    "instance": ("实例", "instance"),
}


class _Lang:
    """Picks the Chinese, English or both texts for a message."""

    def __init__(self, language: str) -> None:
        self.language = language

    def pick(self, zh: str, en: str, joiner: str = " ") -> str:
        if self.language == "zh":
            return zh
        if self.language == "en":
            return en
        return zh if zh == en else f"{zh}{joiner}{en}"

    def t(self, key: str, joiner: str = " ") -> str:
        """A field label or status: bilingual in "both"."""
        return self.pick(*_T[key], joiner=joiner)

    def w(self, key: str) -> str:
        """A word inside a line: Chinese in "both" (bilingual labels, one-language body)."""
        zh, en = _T[key] if key in _T else _WHERE_NAMES[key]
        return en if self.language == "en" else zh

    @property
    def sep(self) -> str:
        return ": " if self.language == "en" else "："


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time from Alertmanager; None for missing or Go's zero time (year 1)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        # Older Pythons reject 9 fractional digits; keep microseconds.
        m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", value)
        if not m:
            return None
        try:
            parsed = datetime.fromisoformat(m.group(1) + (m.group(2) or "")[:7] + m.group(3))
        except ValueError:
            return None
    if parsed.year <= 1:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_duration(seconds: float, lang: _Lang) -> str:
    """The two largest units: ``1 小时 5 分钟`` / ``1 h 5 min``; supervisors need scale, not
    seconds."""
    total = max(int(seconds), 0)
    units = [(total // 86400, "天", "d"), (total % 86400 // 3600, "小时", "h")]
    units.append((total % 3600 // 60, "分钟", "min"))
    parts = [(n, zh, en) for n, zh, en in units if n][:2]
    english = lang.language == "en"
    if not parts:
        return "under 1 min" if english else "不到 1 分钟"
    return " ".join(f"{n} {en if english else zh}" for n, zh, en in parts)


def _format_time(moment: datetime, tz: tzinfo, lang: _Lang) -> str:
    local = moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    key = getattr(tz, "key", str(tz))
    zone = lang.w("beijing") if key == DEFAULT_TIMEZONE else key
    return f"{local} {zone}" if lang.language != "en" else f"{local} ({zone})"


def _summary(annotations: Mapping[str, str], lang: _Lang) -> str:
    zh = annotations.get("summary_zh") or annotations.get("summary", "")
    en = annotations.get("summary_en") or annotations.get("summary", "")
    return lang.pick(zh, en, " / ").strip(" /")


def _severity(alerts: Sequence[Mapping[str, Any]]) -> str:
    firing = [a for a in alerts if a["status"] == "firing"] or list(alerts)
    severities = [str(a["labels"].get("severity", "")) for a in firing]
    return max(severities, key=lambda s: _SEVERITY_RANK.get(s, 0), default="")


def _status_tag(status: str, severity: str, lang: _Lang) -> str:
    if status == "resolved":
        zh, en = "【已恢复】", "[RESOLVED] "
        both = "【已恢复 RESOLVED】"
    else:
        sev_zh, sev_en = _T.get(severity, (severity, severity.upper()))
        zh = f"【{sev_zh}告警】" if severity else "【告警】"
        en = f"[{sev_en or 'FIRING'}] "
        both = f"【{sev_zh}告警 {sev_en}】" if severity else "【告警 FIRING】"
    return {"zh": zh, "en": en}.get(lang.language, both)


def _department(value: str, names: Mapping[str, str], lang: _Lang) -> str:
    name = names.get(value)
    if not name or lang.language == "en":
        return value
    return f"{name}({value})"


def _where(labels: Mapping[str, str], names: Mapping[str, str], lang: _Lang) -> str:
    parts = []
    for key in WHERE_LABELS:
        value = labels.get(key)
        if value:
            shown = _department(value, names, lang) if key == "department" else value
            parts.append(f"{lang.w(key)} {shown}")
    return " · ".join(parts)


def _how_bad(alert: Mapping[str, Any], lang: _Lang) -> str:
    notes = alert["annotations"]
    value, threshold = notes.get("value"), notes.get("threshold")
    parts = []
    if value:
        parts.append(f"{lang.w('value' if alert['status'] == 'firing' else 'last_value')} {value}")
    if threshold:
        parts.append(f"{lang.w('threshold')} {threshold}")
    return ("，" if lang.language != "en" else ", ").join(parts)


def _alert_lines(
    alert: Mapping[str, Any], *, lang: _Lang, tz: tzinfo, now: float, names: Mapping[str, str]
) -> tuple[Line, ...]:
    labels, notes = alert["labels"], alert["annotations"]
    comma = "，" if lang.language != "en" else ", "
    what = str(labels.get("alertname", "?"))
    summary = _summary(notes, lang)
    if summary:
        what += f" — {summary}"
    if alert.get("repeat") and alert["status"] == "firing":
        what += lang.w("reminder")
    lines = [Line(lang.t("what"), what)]
    where = _where(labels, names, lang)
    if where:
        lines.append(Line(lang.t("where"), where))
    how_bad = _how_bad(alert, lang)
    if how_bad:
        lines.append(Line(lang.t("how_bad"), how_bad))
    starts = parse_time(alert.get("startsAt"))
    ends = parse_time(alert.get("endsAt")) if alert["status"] == "resolved" else None
    if starts:
        since = _format_time(starts, tz, lang)
        if alert["status"] == "firing":
            elapsed = now - starts.timestamp()
            since += f"{comma}{lang.w('for')} {format_duration(elapsed, lang)}"
        lines.append(Line(lang.t("since"), since))
    if ends:
        ended = _format_time(ends, tz, lang)
        if starts:
            lasted = format_duration(ends.timestamp() - starts.timestamp(), lang)
            ended += f"{comma}{lang.w('lasted')} {lasted}"
        lines.append(Line(lang.t("ended"), ended))
    description = notes.get("description")
    if description and description != summary:
        lines.append(Line(lang.t("details"), description))
    runbook = notes.get("runbook_url")
    if runbook:
        lines.append(Line(lang.t("runbook"), runbook, url=runbook))
    return tuple(lines)


def render(
    alerts: Sequence[Mapping[str, Any]],
    *,
    language: str = "zh",
    tz: tzinfo | None = None,
    now: float | None = None,
    departments: Mapping[str, str] = DEPARTMENT_NAMES,
    external_url: str | None = None,
) -> Message:
    """One message for ``alerts`` (firing ones first) in ``language`` (zh, en or both).

    ``now`` makes "已持续 15 分钟" reproducible in tests; the sender passes the
    time of the delivery attempt.
    """
    if not alerts:
        raise ValueError("nothing to render")
    lang = _Lang(language)
    tz = tz or ZoneInfo(DEFAULT_TIMEZONE)
    now = time.time() if now is None else now
    ordered = sorted(alerts, key=lambda a: a["status"] != "firing")
    firing = sum(1 for a in ordered if a["status"] == "firing")
    status = "firing" if firing else "resolved"
    severity = _severity(ordered)
    names_seen = list(dict.fromkeys(str(a["labels"].get("alertname", "?")) for a in ordered))
    subject = names_seen[0] + (f" +{len(names_seen) - 1}" if len(names_seen) > 1 else "")
    deps = {a["labels"].get("department") for a in ordered}
    if len(deps) == 1 and (dep := deps.pop()):
        subject = f"{_department(dep, departments, lang)} · {subject}"
    title = _status_tag(status, severity, lang) + subject
    if firing and firing < len(ordered):
        title += lang.w("mixed").format(f=firing, r=len(ordered) - firing)
    elif len(ordered) > 1:
        title += lang.w("count").format(n=len(ordered))
    blocks = []
    for i, alert in enumerate(ordered, 1):
        heading = None
        if len(ordered) > 1:
            tag = _status_tag(alert["status"], str(alert["labels"].get("severity", "")), lang)
            heading = f"{i}. {tag}{alert['labels'].get('alertname', '?')}"
        lines = _alert_lines(alert, lang=lang, tz=tz, now=now, names=departments)
        blocks.append(Block(lines, heading))
    colour = "green" if not firing else ("red" if severity == "critical" else "orange")
    return Message(
        title=title,
        status=status,
        severity=severity,
        colour=colour,
        blocks=tuple(blocks),
        separator=lang.sep,
        more=lang.w("more"),
        more_url=external_url or None,
        alerts=tuple(ordered),
    )


# ================================================================ alert input


class PayloadError(ValueError):
    """The webhook body is not an Alertmanager notification; answered with 400."""


def parse_webhook(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(notification, alerts) from an Alertmanager v4 webhook body, checked and normalised.

    Only what rendering and de-duplication need is kept; unknown fields are
    ignored so that newer Alertmanagers keep working.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
        raise PayloadError("expected an Alertmanager webhook object with an 'alerts' list")
    alerts = []
    for i, raw in enumerate(data["alerts"]):
        if not isinstance(raw, dict):
            raise PayloadError(f"alerts[{i}] is not an object")
        labels, notes = raw.get("labels") or {}, raw.get("annotations") or {}
        if not isinstance(labels, dict) or not isinstance(notes, dict):
            raise PayloadError(f"alerts[{i}]: labels and annotations must be objects")
        status = raw.get("status", data.get("status"))
        if status not in ("firing", "resolved"):
            raise PayloadError(f"alerts[{i}].status must be firing or resolved, not {status!r}")
        labels = {str(k): str(v) for k, v in labels.items()}
        fingerprint = raw.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            # Alertmanager always sends one; other senders get a stable stand-in.
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()
        alerts.append(
            {
                "status": status,
                "labels": labels,
                "annotations": {str(k): str(v) for k, v in notes.items()},
                "startsAt": str(raw.get("startsAt") or ""),
                "endsAt": str(raw.get("endsAt") or ""),
                "fingerprint": fingerprint[:64],
                "generatorURL": str(raw.get("generatorURL") or ""),
            }
        )
    notification = {
        "groupKey": str(data.get("groupKey") or ""),
        "externalURL": str(data.get("externalURL") or ""),
        "receiver": str(data.get("receiver") or ""),
    }
    return notification, alerts


def dedup_key(receiver: str, group_key: str, alert: Mapping[str, Any]) -> str:
    """Same receiver + group + fingerprint + status + startsAt = the same notification."""
    parts = (receiver, group_key, alert["fingerprint"], alert["status"], alert["startsAt"])
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


# ===================================================================== outbox


@dataclass(frozen=True)
class OutboxRow:
    id: int
    receiver: str
    created_at: float
    next_attempt_at: float
    attempts: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class EnqueueResult:
    queued: int
    duplicates: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    done_at REAL,
    last_error TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_receiver ON outbox (receiver, state, id);
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    queued_at REAL NOT NULL
);
"""


class Outbox:
    """The durable queue of notifications (stdlib sqlite3, one file).

    Rows are ``pending`` until delivered (``sent``) or given up
    (``expired``); finished rows and dedup keys are pruned after
    KEEP_DONE_S. Not thread-safe: the service uses it from one thread.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we answer 200 to Alertmanager.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def enqueue(
        self,
        batches: Mapping[str, Sequence[Mapping[str, Any]]],
        notification: Mapping[str, Any],
        *,
        now: float,
        window_s: float,
    ) -> EnqueueResult:
        """Queue one row per receiver with the alerts not queued for it within ``window_s``.

        An alert seen before but outside the window is queued again marked
        ``repeat`` (Alertmanager's repeat_interval reminder).
        """
        queued = duplicates = 0
        group = str(notification.get("groupKey", ""))
        with self._transaction() as db:
            for receiver, alerts in batches.items():
                fresh = []
                for alert in alerts:
                    key = dedup_key(receiver, group, alert)
                    row = db.execute("SELECT queued_at FROM seen WHERE key = ?", (key,)).fetchone()
                    if row is not None and now - row[0] < window_s:
                        duplicates += 1
                        continue
                    db.execute(
                        "INSERT INTO seen (key, queued_at) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET queued_at = excluded.queued_at",
                        (key, now),
                    )
                    fresh.append({**alert, "repeat": row is not None})
                if not fresh:
                    continue
                payload = {**notification, "alerts": fresh}
                db.execute(
                    "INSERT INTO outbox (receiver, created_at, next_attempt_at, payload) "
                    "VALUES (?, ?, ?, ?)",
                    (receiver, now, now, json.dumps(payload, ensure_ascii=False)),
                )
                queued += 1
        return EnqueueResult(queued, duplicates)

    def head(self, receiver: str) -> OutboxRow | None:
        """The oldest pending row of ``receiver``: delivery keeps Alertmanager's order."""
        row = self.db.execute(
            "SELECT id, receiver, created_at, next_attempt_at, attempts, payload FROM outbox "
            "WHERE receiver = ? AND state = 'pending' ORDER BY id LIMIT 1",
            (receiver,),
        ).fetchone()
        if row is None:
            return None
        return OutboxRow(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))

    def mark_sent(self, row_id: int, now: float) -> None:
        self.db.execute(
            "UPDATE outbox SET state = 'sent', done_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE id = ?",
            (now, row_id),
        )

    def mark_failed(self, row_id: int, next_attempt_at: float, error: str) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
            "WHERE id = ?",
            (next_attempt_at, error[:500], row_id),
        )

    def mark_expired(self, row_id: int, now: float) -> None:
        self.db.execute(
            "UPDATE outbox SET state = 'expired', done_at = ? WHERE id = ?", (now, row_id)
        )

    def pending(self) -> dict[str, tuple[int, float]]:
        """receiver -> (pending rows, created_at of the oldest)."""
        rows = self.db.execute(
            "SELECT receiver, COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending' "
            "GROUP BY receiver"
        ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def rows(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every row (tests and troubleshooting)."""
        sql = "SELECT id, receiver, state, attempts, last_error, payload FROM outbox"
        args: tuple[Any, ...] = ()
        if state:
            sql, args = sql + " WHERE state = ?", (state,)
        return [
            {
                "id": r[0],
                "receiver": r[1],
                "state": r[2],
                "attempts": r[3],
                "last_error": r[4],
                "payload": json.loads(r[5]),
            }
            for r in self.db.execute(sql + " ORDER BY id", args)
        ]

    def prune(self, now: float, keep_s: float = KEEP_DONE_S) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND done_at < ?", (now - keep_s,)
            )
            db.execute("DELETE FROM seen WHERE queued_at < ?", (now - keep_s,))


# ==================================================================== service

_R = TypeVar("_R")


class _PendingCollector(Collector):
    """``vocflow_notify_pending`` and the age of the oldest pending row, per receiver."""

    def __init__(self, service: NotifyService) -> None:
        self.service = service

    def collect(self) -> Iterable[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "vocflow_notify_pending",
            "Notifications in the outbox not yet delivered, by receiver.",
            labels=["receiver"],
        )
        oldest = GaugeMetricFamily(
            "vocflow_notify_oldest_pending_seconds",
            "Age of the oldest undelivered notification, by receiver (0: none).",
            labels=["receiver"],
        )
        now = self.service.clock()
        for name in sorted(set(self.service.config.receivers) | set(self.service.pending)):
            count, first = self.service.pending.get(name, (0, now))
            pending.add_metric([name], count)
            oldest.add_metric([name], max(now - first, 0.0) if count else 0.0)
        yield pending
        yield oldest


class NotifyService:
    """Webhook handler, outbox and one sender task per receiver."""

    def __init__(
        self,
        config: NotifyConfig,
        outbox_path: Path,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.outbox_path = outbox_path
        self.clock = clock
        self.rng = rng
        self.outbox: Outbox | None = None
        self.pending: dict[str, tuple[int, float]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-outbox")
        self._wake = {name: asyncio.Event() for name in config.receivers}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.registry = CollectorRegistry()
        self.alerts_received = Counter(
            "vocflow_notify_alerts_received",
            "Alerts received from Alertmanager, by status.",
            ["status"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "vocflow_notify_duplicates",
            "Alerts dropped as duplicates (same receiver, group, fingerprint, status, startsAt).",
            registry=self.registry,
        )
        self.sent = Counter(
            "vocflow_notify_sent",
            "Notifications delivered, by receiver.",
            ["receiver"],
            registry=self.registry,
        )
        self.failed = Counter(
            "vocflow_notify_failed",
            "Failed delivery attempts (each is retried), by receiver.",
            ["receiver"],
            registry=self.registry,
        )
        self.given_up = Counter(
            "vocflow_notify_given_up",
            "Notifications dropped after delivery.give_up_after, by receiver.",
            ["receiver"],
            registry=self.registry,
        )
        self.delay = Histogram(
            "vocflow_notify_delay_seconds",
            "From Alertmanager's webhook to the chat tool's acceptance, by receiver.",
            ["receiver"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        for name in config.receivers:
            for metric in (self.sent, self.failed, self.given_up):
                metric.labels(name)
        self.registry.register(_PendingCollector(self))

    # ------------------------------------------------------------ lifecycle

    async def _db(self, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _require_outbox(self) -> Outbox:
        if self.outbox is None:
            raise RuntimeError("notify service not started")
        return self.outbox

    async def start(self, app: web.Application | None = None) -> None:
        self.outbox = await self._db(Outbox, self.outbox_path)
        outbox = self.outbox
        await self._db(outbox.prune, self.clock())
        self.pending = await self._db(outbox.pending)
        for name, (count, _) in sorted(self.pending.items()):
            if name in self.config.receivers:
                log.info("notify: resuming %d pending notification(s) for %s", count, name)
            else:
                log.warning(
                    "notify: %d pending notification(s) for receiver '%s', which is not in %s; "
                    "they stay in the outbox until it is configured again",
                    count,
                    name,
                    self.config.source,
                )
        timeout = aiohttp.ClientTimeout(total=self.config.delivery.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._tasks = [
            asyncio.create_task(self._sender(name), name=f"notify-{name}")
            for name in self.config.receivers
        ]

    async def stop(self, app: web.Application | None = None) -> None:
        """Stop the senders; a delivery cut short stays pending and is retried next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.outbox is not None:
            await self._db(self.outbox.close)
            self.outbox = None
        self._executor.shutdown(wait=True)

    async def rows(self, state: str | None = None) -> list[dict[str, Any]]:
        """The outbox's rows (troubleshooting, tests); read on the outbox's own thread."""
        return await self._db(self._require_outbox().rows, state)

    async def _refresh_pending(self) -> None:
        self.pending = await self._db(self._require_outbox().pending)

    # ------------------------------------------------------------- webhook

    def _authorised(self, request: web.Request) -> bool:
        token = self.config.webhook_token
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def alertmanager(self, request: web.Request) -> web.Response:
        """POST /alertmanager[/{department}]: queue durably, then answer 200."""
        if not self._authorised(request):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        target = request.match_info.get("target") or request.query.get("department")
        if target is not None and not _NAME.match(target):
            return web.json_response({"error": f"bad department {target!r}"}, status=400)
        try:
            notification, alerts = parse_webhook(await request.read())
        except PayloadError as exc:
            log.warning("notify: rejected a webhook: %s", exc)
            return web.json_response({"error": str(exc)}, status=400)
        batches: dict[str, list[dict[str, Any]]] = {}
        for alert in alerts:
            self.alerts_received.labels(alert["status"]).inc()
            labels = dict(alert["labels"])
            if target:
                # Alertmanager's route already chose whose on-call is paged.
                labels["department"] = target
            for receiver in self.config.route(labels):
                batches.setdefault(receiver, []).append(alert)
        try:
            result = await self._db(
                self._require_outbox().enqueue,
                batches,
                notification,
                now=self.clock(),
                window_s=self.config.dedup_window_s,
            )
            await self._refresh_pending()
        except sqlite3.Error as exc:
            log.error("notify: cannot write the outbox %s: %s", self.outbox_path, exc)
            return web.json_response({"error": "outbox unavailable, retry"}, status=500)
        self.duplicates.inc(result.duplicates)
        for receiver in batches:
            self._wake[receiver].set()
        return web.json_response({"queued": result.queued, "duplicates": result.duplicates})

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self._refresh_pending()
        except (sqlite3.Error, RuntimeError) as exc:
            body = {"status": "outbox unavailable", "error": str(exc)}
            return web.json_response(body, status=503)
        pending = {name: count for name, (count, _) in self.pending.items()}
        return web.json_response({"status": "ok", "pending": pending})

    async def metrics_page(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    # -------------------------------------------------------------- senders

    async def _sleep_or_wake(self, event: asyncio.Event, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    async def _sender(self, name: str) -> None:
        """Deliver ``name``'s rows in order; a failing head row is retried with backoff.

        Head-of-line blocking is deliberate: a "resolved" must not overtake the
        "firing" it resolves.
        """
        receiver = self.config.receivers[name]
        wake = self._wake[name]
        delivery = self.config.delivery
        outbox = self._require_outbox()
        while True:
            try:
                wake.clear()
                row = await self._db(outbox.head, name)
                now = self.clock()
                if row is None:
                    await self._sleep_or_wake(wake, None)
                    continue
                if row.next_attempt_at > now:
                    await self._sleep_or_wake(wake, row.next_attempt_at - now)
                    continue
                give_up = delivery.give_up_after_s
                if give_up is not None and now - row.created_at > give_up and row.attempts:
                    await self._db(outbox.mark_expired, row.id, now)
                    await self._refresh_pending()
                    self.given_up.labels(name).inc()
                    log.error(
                        "notify: gave up on notification %d for %s after %d attempts over %s",
                        row.id,
                        name,
                        row.attempts,
                        format_duration(now - row.created_at, _Lang("en")),
                    )
                    continue
                error = await self._deliver(receiver, row, now)
                done = self.clock()
                if error is None:
                    await self._db(outbox.mark_sent, row.id, done)
                    await self._refresh_pending()
                    self.sent.labels(name).inc()
                    self.delay.labels(name).observe(max(done - row.created_at, 0.0))
                    continue
                wait = delivery.backoff(row.attempts + 1, self.rng)
                await self._db(outbox.mark_failed, row.id, done + wait, error)
                self.failed.labels(name).inc()
                log.warning(
                    "notify: delivery %d to %s (%s) failed, attempt %d, retry in %.1fs: %s",
                    row.id,
                    name,
                    receiver.type,
                    row.attempts + 1,
                    wait,
                    error,
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the loop alive: an outbox hiccup must not stop delivery
                log.exception("notify: sender for %s failed; retrying in 5s", name)
                await asyncio.sleep(5)

    async def _deliver(self, receiver: Receiver, row: OutboxRow, now: float) -> str | None:
        """One attempt; None on success, else a reason with every secret masked."""
        if self._session is None:
            return "not started"
        payload = row.payload
        try:
            message = render(
                payload["alerts"],
                language=receiver.language or self.config.language,
                tz=self.config.tz,
                now=now,
                departments=self.config.departments,
                external_url=payload.get("externalURL") or None,
            )
            request = build_request(
                receiver.type,
                receiver.url,
                message,
                secret=receiver.secret,
                now=now,
                receiver=receiver.name,
            )
            async with self._session.post(
                request.url, data=request.body, headers=dict(request.headers)
            ) as response:
                body = await response.content.read(64 * 1024)
                error = check_answer(receiver.type, response.status, body)
        except TimeoutError:
            error = f"no answer within {self.config.delivery.timeout_s:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bad row must not kill the sender; it is logged and retried
            error = f"{type(exc).__name__}: {exc}"
        return None if error is None else receiver.redact(error)


SERVICE: web.AppKey[NotifyService] = web.AppKey("notify_service", NotifyService)
"""Where the app keeps its NotifyService, for tests and embedding."""


def default_outbox_path(settings: Settings) -> Path:
    """Where the outbox lives: the setting, else under the data directory."""
    return Path(settings.notify_outbox_file or settings.data_dir / "notify" / "outbox.sqlite3")


def create_app(
    config: NotifyConfig,
    outbox_path: Path,
    *,
    clock: Callable[[], float] = time.time,
    rng: Callable[[], float] = random.random,
) -> web.Application:
    """The notify web app; the outbox and senders start and stop with it."""
    service = NotifyService(config, outbox_path, clock=clock, rng=rng)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SERVICE] = service
    app.router.add_post("/alertmanager", service.alertmanager)
    app.router.add_post("/alertmanager/{target}", service.alertmanager)
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/metrics", service.metrics_page)
    app.on_startup.append(service.start)
    app.on_cleanup.append(service.stop)
    return app


class NotifyStartError(Exception):
    """The server could not start (port taken, outbox unwritable); the message says why."""


def run_notify(settings: Settings, config: NotifyConfig) -> None:
    """Serve until SIGINT/SIGTERM; pending notifications stay in the outbox for next time."""
    outbox = default_outbox_path(settings)
    try:
        Outbox(outbox).close()
    except (OSError, sqlite3.Error) as exc:
        raise NotifyStartError(f"cannot open the outbox {outbox}: {exc}") from None
    app = create_app(config, outbox)
    receivers = ", ".join(f"{r.name} ({r.type})" for r in config.receivers.values())
    print(
        f"vocflow notify: http://{settings.notify_host}:{settings.notify_port}/alertmanager"
        f"[/<department>] -> {receivers}; outbox {outbox}; /healthz, /metrics",
        flush=True,
    )
    try:
        web.run_app(
            app,
            host=settings.notify_host,
            port=settings.notify_port,
            print=None,
            access_log=log if settings.log_level.lower() == "debug" else None,
            shutdown_timeout=5,
        )
    except OSError as exc:
        raise NotifyStartError(
            f"cannot listen on {settings.notify_host}:{settings.notify_port}: {exc.strerror}; "
            "set VOCFLOW_NOTIFY_PORT or --port"
        ) from None
