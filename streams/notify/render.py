"""Alert messages of `vocflow notify`: what a supervisor reads on a phone.

Each message says what (alert + summary), where (department / queue / topic),
how bad (value vs threshold), since when (Beijing time, and for how long) and
the runbook, in Chinese, English or both. Rendering happens at send time (the
outbox keeps the alerts, not the text), so a message delivered after an outage
says how long the alert has lasted *now*. The chat tools' payloads are built
from the resulting :class:`Message` in channels.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from vocflow.streams.notify.channels import Block, Line, Message

Language = Literal["zh", "en", "both"]
LANGUAGES: tuple[str, ...] = get_args(Language)
DEFAULT_TIMEZONE = "Asia/Shanghai"

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
