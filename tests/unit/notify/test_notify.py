"""`vocflow notify`: routing file, rendering, outbox, retries, restart and de-duplication.

Receivers are local aiohttp servers on 127.0.0.1; waits are bounded polls,
never assertions on how long something took.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from vocflow.streams.notify import service as notify_service
from vocflow.streams.notify.channels import plain_text
from vocflow.streams.notify.config import (
    NotifyConfig,
    NotifyConfigError,
    parse_duration,
    parse_notify_config,
)
from vocflow.streams.notify.outbox import Outbox
from vocflow.streams.notify.render import _Lang as Lang
from vocflow.streams.notify.render import format_duration, render
from vocflow.streams.notify.service import SERVICE, NotifyService, create_app
from vocflow.streams.notify.webhook import PayloadError, parse_webhook

pytestmark = pytest.mark.clock

NOW = 1731307500.0  # 2024-11-11 06:45:00 UTC = 14:45 Beijing time

FIRING: dict[str, Any] = {
    "status": "firing",
    "labels": {
        "alertname": "ServiceLevelBelowTarget",
        "department": "billing",
        "queue": "voice.billing",
        "severity": "critical",
        "source": "kpi",
    },
    "annotations": {
        "summary": "队列 voice.billing 服务水平低于目标",
        "summary_en": "Service level of voice.billing below target",
        "value": "62.5%",
        "threshold": "80%",
        "runbook_url": "https://wiki.example/runbooks/sl",
    },
    "startsAt": "2024-11-11T06:30:00.123456789Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "fingerprint": "0f1e2d3c4b5a6978",
    "generatorURL": "http://prometheus:9090/graph",
}
RESOLVED = {**FIRING, "status": "resolved", "endsAt": "2024-11-11T07:50:00Z"}


def webhook(
    *alerts: dict[str, Any], group: str = '{}:{alertname="ServiceLevelBelowTarget"}'
) -> bytes:
    """An Alertmanager v4 webhook body."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return json.dumps(
        {
            "version": "4",
            "groupKey": group,
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "billing-oncall",
            "groupLabels": {"alertname": "ServiceLevelBelowTarget"},
            "commonLabels": dict(alerts[0]["labels"]),
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": list(alerts),
        },
        ensure_ascii=False,
    ).encode()


# ==================================================================== config

GOOD = """\
language: zh
dedup_window: 25m
delivery: {timeout: 2s, initial_backoff: 50ms, max_backoff: 200ms, give_up_after: 1h}
departments: {ops: 平台运维}
receivers:
  billing:
    type: wecom
    url: http://127.0.0.1:9/send?key=${BILLING_KEY}
  network:
    type: dingtalk
    url: http://127.0.0.1:9/robot/send?access_token=t
    secret: ${NETWORK_SECRET}
  vendor:
    type: slack
    url: http://127.0.0.1:9/slack
    language: en
  tickets:
    type: webhook
    url: http://127.0.0.1:9/tickets
routes:
  - match: {severity: critical}
    receivers: [tickets]
    continue: true
  - match: {department: billing}
    receivers: [billing]
  - match: {department: [network, tech_support], severity: [critical, warning]}
    receivers: [network]
  - receivers: [vendor]
"""
ENV = {"BILLING_KEY": "wecom-key-123456", "NETWORK_SECRET": "SECdingtalk"}


def test_good_file_parses() -> None:
    config = parse_notify_config(GOOD, "notify.yaml", ENV)
    assert config.receivers["billing"].url == "http://127.0.0.1:9/send?key=wecom-key-123456"
    assert config.receivers["network"].secret == "SECdingtalk"
    assert config.receivers["vendor"].language == "en"
    assert config.delivery.initial_backoff_s == pytest.approx(0.05)
    assert config.delivery.give_up_after_s == 3600
    assert config.dedup_window_s == 25 * 60
    assert config.departments["ops"] == "平台运维" and config.departments["billing"] == "计费账务"
    assert "wecom-key" not in repr(config.receivers["billing"])


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"department": "billing", "severity": "critical"}, ("tickets", "billing")),
        ({"department": "billing", "severity": "warning"}, ("billing",)),
        ({"department": "network", "severity": "warning"}, ("network",)),
        ({"department": "tech_support", "severity": "critical"}, ("tickets", "network")),
        ({"department": "tech_support", "severity": "info"}, ("vendor",)),
        ({"alertname": "VocflowWorkerDown"}, ("vendor",)),
    ],
)
def test_routing(labels: dict[str, str], receivers: tuple[str, ...]) -> None:
    assert parse_notify_config(GOOD, "n", ENV).route(labels) == receivers


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(NotifyConfigError) as exc:
        parse_notify_config(text, "notify.yaml", ENV if environ is None else environ)
    return str(exc.value).splitlines()[1:]


def test_errors_name_file_line_and_every_problem() -> None:
    bad = """\
language: fr
receivers:
  billing:
    type: wechat
    url: http://x/send?key=k
  network:
    type: wecom
    url: http://x/send?key=k
    secret: s
  vendor:
    type: dingtalk
    url: ftp://x/robot?access_token=t
  tickets:
    type: webhook
    url: http://x/${MISSING_VAR}
delivery: {timeout: soon}
routes:
  - receivers: [nobody]
  - match: {department: billing}
    receivers: [network]
"""
    assert [p.strip() for p in problems(bad)] == [
        "notify.yaml:1: language: Input should be 'zh', 'en' or 'both'",
        "notify.yaml:4: receivers.billing.type: must be one of wecom, dingtalk, feishu, slack, "
        "webhook, not 'wechat'",
        "notify.yaml:9: receivers.network.secret: wecom does not sign requests; its key belongs "
        "in the url",
        "notify.yaml:12: receivers.vendor.url: must be an http:// or https:// address",
        "notify.yaml:15: receivers.tickets.url: environment variable MISSING_VAR is not set",
        "notify.yaml:16: delivery.timeout: 'soon' is not a duration such as 10s, 5m or 24h",
        "notify.yaml:18: routes[0].receivers: unknown receiver 'nobody' (known: billing, "
        "network, tickets, vendor)",
        "notify.yaml:19: routes[1]: unreachable: route 0 above matches every alert (and has no "
        "continue: true)",
    ]


def test_a_catch_all_route_is_required() -> None:
    text = GOOD.replace("  - receivers: [vendor]\n", "")
    assert problems(text) == [
        "  notify.yaml:20: routes: no catch-all route (one without match): an alert matching "
        "no route would be lost"
    ]


def test_robot_addresses_must_carry_their_key() -> None:
    text = GOOD.replace("?key=${BILLING_KEY}", "").replace("?access_token=t", "")
    assert [p.split(": ", 2)[2] for p in problems(text)] == [
        "a WeCom robot address ends in ?key=<robot key>",
        "a DingTalk robot address ends in ?access_token=<token>",
    ]


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(NotifyConfigError, match=r"^notify.yaml:3: invalid YAML"):
        parse_notify_config("receivers:\n  a: {type: wecom\nroutes: [\n", "notify.yaml", {})


def test_durations() -> None:
    assert [parse_duration(v) for v in ("500ms", "10s", "5m", "24h", "1d", 90)] == [
        0.5, 10, 300, 86400, 86400, 90,
    ]  # fmt: skip
    for bad in ("-1s", "5 minutes", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


# ================================================================= rendering


def lines(language: str, *alerts: dict[str, Any], **kw: Any) -> list[str]:
    return plain_text(render(list(alerts), language=language, now=NOW, **kw)).splitlines()


def test_render_firing_zh() -> None:
    assert lines("zh", FIRING) == [
        "【严重告警】计费账务(billing) · ServiceLevelBelowTarget",
        "",
        "告警：ServiceLevelBelowTarget — 队列 voice.billing 服务水平低于目标",
        "位置：部门 计费账务(billing) · 队列 voice.billing",
        "程度：当前值 62.5%，阈值 80%",
        "开始：2024-11-11 14:30:00 北京时间，已持续 14 分钟",
        "处理手册：https://wiki.example/runbooks/sl https://wiki.example/runbooks/sl",
    ]


def test_render_resolved_zh_says_when_and_how_long() -> None:
    assert lines("zh", RESOLVED)[:7] == [
        "【已恢复】计费账务(billing) · ServiceLevelBelowTarget",
        "",
        "告警：ServiceLevelBelowTarget — 队列 voice.billing 服务水平低于目标",
        "位置：部门 计费账务(billing) · 队列 voice.billing",
        "程度：恢复前 62.5%，阈值 80%",
        "开始：2024-11-11 14:30:00 北京时间",
        "恢复：2024-11-11 15:50:00 北京时间，持续 1 小时 19 分钟",
    ]
    assert render([RESOLVED], now=NOW).colour == "green"


def test_render_en_uses_the_english_summary() -> None:
    assert lines("en", RESOLVED)[:7] == [
        "[RESOLVED] billing · ServiceLevelBelowTarget",
        "",
        "Alert: ServiceLevelBelowTarget — Service level of voice.billing below target",
        "Where: department billing · queue voice.billing",
        "How bad: last value 62.5%, threshold 80%",
        "Since: 2024-11-11 14:30:00 (Beijing time)",
        "Resolved: 2024-11-11 15:50:00 (Beijing time), lasted 1 h 19 min",
    ]


def test_render_both_has_bilingual_labels() -> None:
    assert lines("both", FIRING)[:4] == [
        "【严重告警 CRITICAL】计费账务(billing) · ServiceLevelBelowTarget",
        "",
        "告警 Alert：ServiceLevelBelowTarget — 队列 voice.billing 服务水平低于目标 / "
        "Service level of voice.billing below target",
        "位置 Where：部门 计费账务(billing) · 队列 voice.billing",
    ]


def test_render_group_mixed_and_reminder() -> None:
    other = {**FIRING, "labels": {**FIRING["labels"], "queue": "chat.billing"}, "repeat": True}
    text = lines("zh", RESOLVED, other)
    title = "【严重告警】计费账务(billing) · ServiceLevelBelowTarget（告警 1 条，恢复 1 条）"
    assert text[0] == title
    assert text[2] == "1. 【严重告警】ServiceLevelBelowTarget"  # firing first
    assert text[3].endswith("服务水平低于目标（仍未恢复，重复提醒）")
    assert "2. 【已恢复】ServiceLevelBelowTarget" in text


def test_render_without_value_or_labels_omits_those_lines_and_other_zone() -> None:
    bare = {**FIRING, "labels": {"alertname": "VocflowWorkerDown", "severity": "warning"}}
    bare["annotations"] = {"summary": "worker 1 down"}
    text = lines("en", bare, tz=__import__("zoneinfo").ZoneInfo("UTC"))
    assert text == [
        "[WARNING] VocflowWorkerDown",
        "",
        "Alert: VocflowWorkerDown — worker 1 down",
        "Since: 2024-11-11 06:30:00 (UTC), for 14 min",
    ]
    assert render([bare], now=NOW).colour == "orange"


def test_durations_are_human() -> None:
    zh, en = Lang("zh"), Lang("en")
    assert format_duration(30, zh) == "不到 1 分钟"
    assert format_duration(3 * 86400 + 7200 + 60, zh) == "3 天 2 小时"
    assert format_duration(3720, en) == "1 h 2 min"


def test_webhook_parsing_rejects_what_is_not_alertmanager() -> None:
    for body, reason in [
        (b"{", "not JSON"),
        (b"[]", "'alerts' list"),
        (b'{"alerts": [1]}', "alerts[0] is not an object"),
        (b'{"alerts": [{"status": "pending"}]}', "firing or resolved"),
    ]:
        with pytest.raises(PayloadError, match=re.escape(reason)):
            parse_webhook(body)
    _, alerts = parse_webhook(b'{"status": "firing", "alerts": [{"labels": {"a": 1}}]}')
    assert alerts[0]["labels"] == {"a": "1"} and len(alerts[0]["fingerprint"]) == 64


# ==================================================================== outbox


def test_outbox_dedups_within_window_and_marks_later_repeats(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    _, alerts = parse_webhook(webhook(FIRING))
    note = {"groupKey": "g", "externalURL": ""}
    first = box.enqueue({"billing": alerts}, note, now=NOW, window_s=600)
    again = box.enqueue({"billing": alerts}, note, now=NOW + 599, window_s=600)
    other_receiver = box.enqueue({"vendor": alerts}, note, now=NOW + 1, window_s=600)
    resolved = box.enqueue(
        {"billing": parse_webhook(webhook(RESOLVED))[1]}, note, now=NOW + 2, window_s=600
    )
    reminder = box.enqueue({"billing": alerts}, note, now=NOW + 1200, window_s=600)
    results = (first, again, other_receiver, resolved, reminder)
    assert [(r.queued, r.duplicates) for r in results] == [(1, 0), (0, 1), (1, 0), (1, 0), (1, 0)]
    rows = box.rows()
    assert [r["payload"]["alerts"][0]["repeat"] for r in rows] == [False, False, False, True]
    assert box.pending() == {"billing": (3, NOW), "vendor": (1, NOW + 1)}
    box.close()


# =================================================================== service


class Recorder:
    """A local chat tool: records each POST, answers with the next scripted status."""

    def __init__(self, statuses: list[int] | None = None, echo_url: bool = False) -> None:
        self.statuses = list(statuses or [])
        self.echo_url = echo_url
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {"path": request.path, "query": dict(request.query), "json": await request.json()}
        )
        status = self.statuses.pop(0) if self.statuses else 200
        if status != 200:
            text = f"down: {request.url}" if self.echo_url else "down"
            return web.Response(status=status, text=text)
        return web.json_response({"errcode": 0, "errmsg": "ok"})


async def until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``condition`` (bounded); fail naming ``what`` if it never holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def config_for(port: int, **extra: str) -> NotifyConfig:
    text = f"""\
delivery: {{timeout: 2s, initial_backoff: 50ms, max_backoff: 200ms, give_up_after: 1h}}
{extra.get("top", "")}
receivers:
  billing: {{type: wecom, url: "http://127.0.0.1:{port}/send?key=wecom-key-123456"}}
  network: {{type: wecom, url: "http://127.0.0.1:{port}/net?key=net-key-123456"}}
routes:
  - match: {{department: network}}
    receivers: [network]
  - receivers: [billing]
"""
    return parse_notify_config(text, "test.yaml", {})


Scenario = Callable[[TestClient, NotifyService, Recorder], Awaitable[None]]


async def run_with(
    tmp_path: Path,
    scenario: Scenario,
    recorder: Recorder | None = None,
    *,
    clock: Callable[[], float] | None = None,
    **extra: str,
) -> Recorder:
    recorder = recorder or Recorder()
    async with TestServer(recorder.app, host="127.0.0.1") as chat:
        config = config_for(chat.port or 0, **extra)
        kwargs: dict[str, Any] = {"rng": lambda: 0.0}
        if clock is not None:
            kwargs["clock"] = clock
        app = create_app(config, tmp_path / "notify" / "outbox.sqlite3", **kwargs)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await scenario(client, app[SERVICE], recorder)
    return recorder


def metric(service: NotifyService, name: str, receiver: str) -> float:
    value = service.registry.get_sample_value(name, {"receiver": receiver})
    return value or 0.0


def test_retry_after_500_then_delivered(tmp_path: Path) -> None:
    async def scenario(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        response = await client.post("/alertmanager/billing", data=webhook(FIRING))
        assert response.status == 200
        assert await response.json() == {"queued": 1, "duplicates": 0}
        await until(lambda: metric(service, "vocflow_notify_sent_total", "billing") == 1, "send")
        assert metric(service, "vocflow_notify_failed_total", "billing") == 1
        assert metric(service, "vocflow_notify_pending", "billing") == 0
        assert chat.requests[0]["json"] == chat.requests[1]["json"]
        content = chat.requests[1]["json"]["markdown"]["content"]
        assert "【严重告警】计费账务(billing) · ServiceLevelBelowTarget" in content
        assert "**程度**：当前值 62.5%，阈值 80%" in content
        assert chat.requests[1]["query"] == {"key": "wecom-key-123456"}
        rows = await service.rows()
        assert [(r["state"], r["attempts"]) for r in rows] == [("sent", 2)]

    asyncio.run(run_with(tmp_path, scenario, Recorder([500, 200])))


def test_outbox_row_is_committed_before_the_200(tmp_path: Path) -> None:
    async def scenario(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        response = await client.post("/alertmanager", data=webhook(FIRING))
        assert response.status == 200
        # Another connection (another process after a crash) sees it at once.
        db = sqlite3.connect(tmp_path / "notify" / "outbox.sqlite3")
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (1,)
        db.close()

    asyncio.run(run_with(tmp_path, scenario, Recorder([503] * 1000)))


def test_restart_resumes_pending_notifications(tmp_path: Path) -> None:
    async def during_outage(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        assert (await client.post("/alertmanager/network", data=webhook(FIRING))).status == 200
        await until(lambda: metric(service, "vocflow_notify_failed_total", "network") >= 2, "fail")

    async def after_restart(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        assert metric(service, "vocflow_notify_pending", "network") == 1
        await until(lambda: metric(service, "vocflow_notify_sent_total", "network") == 1, "resume")

    down = asyncio.run(run_with(tmp_path, during_outage, Recorder([502] * 1000)))
    assert down.requests and all(r["path"] == "/net" for r in down.requests)
    up = asyncio.run(run_with(tmp_path, after_restart))
    assert len(up.requests) == 1
    assert up.requests[0]["path"] == "/net"
    assert "ServiceLevelBelowTarget" in up.requests[0]["json"]["markdown"]["content"]


def test_alertmanager_duplicates_are_sent_once(tmp_path: Path) -> None:
    async def scenario(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        for _ in range(3):  # e.g. two HA peers and one retried webhook
            assert (await client.post("/alertmanager/billing", data=webhook(FIRING))).status == 200
        answer = await (await client.post("/alertmanager/billing", data=webhook(RESOLVED))).json()
        assert answer == {"queued": 1, "duplicates": 0}
        await until(lambda: metric(service, "vocflow_notify_sent_total", "billing") == 2, "send")
        dupes = service.registry.get_sample_value("vocflow_notify_duplicates_total")
        assert dupes == 2
        assert len(await service.rows()) == 2

    chat = asyncio.run(run_with(tmp_path, scenario))
    titles = [r["json"]["markdown"]["content"].splitlines()[0] for r in chat.requests]
    assert ["已恢复" in t for t in titles] == [False, True]


def test_reminder_after_the_window_is_delivered(tmp_path: Path) -> None:
    now = [NOW]

    async def scenario(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        await client.post("/alertmanager", data=webhook(FIRING))
        now[0] += 31 * 60  # Alertmanager's repeat_interval for critical is 30 m
        answer = await (await client.post("/alertmanager", data=webhook(FIRING))).json()
        assert answer == {"queued": 1, "duplicates": 0}
        await until(lambda: len(chat.requests) == 2, "two messages")

    chat = asyncio.run(run_with(tmp_path, scenario, clock=lambda: now[0]))
    assert "重复提醒" in chat.requests[1]["json"]["markdown"]["content"]
    assert "已持续 45 分钟" in chat.requests[1]["json"]["markdown"]["content"]


def test_path_segment_routes_like_a_department(tmp_path: Path) -> None:
    async def scenario(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        # billing-labelled alert that Alertmanager sent to the network on-call
        await client.post("/alertmanager/network", data=webhook(FIRING))
        await client.post("/alertmanager?department=billing", data=webhook(RESOLVED))
        await until(lambda: len(chat.requests) == 2, "two messages")

    chat = asyncio.run(run_with(tmp_path, scenario))
    assert sorted(r["path"] for r in chat.requests) == ["/net", "/send"]


def test_gives_up_after_the_configured_age(tmp_path: Path) -> None:
    now = [NOW]

    async def scenario(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        await client.post("/alertmanager", data=webhook(FIRING))
        await until(lambda: metric(service, "vocflow_notify_failed_total", "billing") >= 1, "fail")
        now[0] += 2 * 3600
        await until(
            lambda: metric(service, "vocflow_notify_given_up_total", "billing") == 1, "drop"
        )
        assert [r["state"] for r in await service.rows()] == ["expired"]

    asyncio.run(run_with(tmp_path, scenario, Recorder([500] * 1000), clock=lambda: now[0]))


def test_secrets_never_reach_logs_or_the_outbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vocflow")

    async def scenario(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        await client.post("/alertmanager", data=webhook(FIRING))
        await until(lambda: metric(service, "vocflow_notify_failed_total", "billing") >= 1, "fail")
        errors = [r["last_error"] for r in await service.rows()]
        assert errors and "***" in errors[0] and "wecom-key-123456" not in errors[0]
        metrics = await (await client.get("/metrics")).text()
        assert "wecom-key" not in metrics

    asyncio.run(run_with(tmp_path, scenario, Recorder([500] * 1000, echo_url=True)))
    assert "delivery" in caplog.text and "HTTP 500" in caplog.text
    assert "wecom-key-123456" not in caplog.text


def test_bad_requests_and_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_service, "MAX_BODY_BYTES", 2048)

    async def scenario(client: TestClient, service: NotifyService, chat: Recorder) -> None:
        assert (await client.post("/alertmanager", data=b"nope")).status == 401
        headers = {"Authorization": "Bearer tok-123456"}
        bad = await client.post("/alertmanager", data=b"nope", headers=headers)
        assert bad.status == 400 and "not JSON" in (await bad.json())["error"]
        odd = await client.post("/alertmanager/bad%20name", data=webhook(FIRING), headers=headers)
        assert odd.status == 400
        huge = await client.post("/alertmanager", data=b" " * 2049, headers=headers)
        assert (huge.status, await huge.json()) == (413, {"error": "body larger than 2048 bytes"})
        ok = await client.post("/alertmanager", data=webhook(FIRING), headers=headers)
        assert ok.status == 200
        health = await (await client.get("/healthz")).json()
        assert health["status"] == "ok" and set(health["pending"]) <= {"billing"}
        text = await (await client.get("/metrics")).text()
        for name in ("sent_total", "failed_total", "pending", "oldest_pending_seconds"):
            assert f'vocflow_notify_{name}{{receiver="network"}}' in text

    asyncio.run(run_with(tmp_path, scenario, top="webhook_token: tok-123456"))


# ======================================================================== cli


def run_cli(*argv: str, env: dict[str, str] | None = None) -> int:
    from vocflow.streams.cli import main

    codes: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in __import__("os").environ if n.startswith("VOCFLOW_")]:
            mp.delenv(name)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        main(list(argv), exit=codes.append)
    return codes[0]


def test_cli_requires_a_routing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("notify") == 2
    assert "no routing file: give --routes FILE" in capsys.readouterr().err


def test_cli_check_reports_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = tmp_path / "notify.yaml"
    routes.write_text(GOOD.replace("type: slack", "type: teams"), encoding="utf-8")
    assert run_cli("notify", "--routes", str(routes), "--check", env=ENV) == 2
    err = capsys.readouterr().err
    assert f"{routes}:14: receivers.vendor.type: must be one of" in err
    routes.write_text(GOOD, encoding="utf-8")
    assert run_cli("notify", "--routes", str(routes), "--check", env=ENV) == 0
    out = capsys.readouterr().out
    assert "OK: 4 receiver(s)" in out and "wecom-key" not in out


def test_backoff_is_exponential_capped_and_jittered() -> None:
    delivery = parse_notify_config(GOOD, "n", ENV).delivery  # 50ms .. 200ms
    low = [delivery.backoff(n, lambda: 0.0) for n in (1, 2, 3, 4, 10)]
    high = [delivery.backoff(n, lambda: 1.0) for n in (1, 2, 3, 4, 10)]
    assert low == pytest.approx([0.025, 0.05, 0.1, 0.1, 0.1])
    assert high == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.2])
