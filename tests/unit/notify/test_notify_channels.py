"""Exact payloads, signatures and answer checks of every chat tool `vocflow notify` talks to.

Signature values were computed independently with ``openssl dgst -sha256
-hmac`` (see each test), so these tests do not just repeat the implementation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from vocflow.streams.notify.channels import (
    MAX_TEXT,
    Block,
    Line,
    Message,
    build_request,
    check_answer,
    dingtalk_sign,
    feishu_sign,
    markdown,
    webhook_sign,
)
from vocflow.streams.notify.render import render

SECRET = "SEC0123456789abcdef"
NOW = 1731307500.0  # 2024-11-11 06:45:00 UTC = 14:45 Beijing time

ALERT: dict[str, Any] = {
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
        "value": "62.5%",
        "threshold": "80%",
        "runbook_url": "https://wiki.example/runbooks/sl",
    },
    "startsAt": "2024-11-11T06:30:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "fingerprint": "0f1e2d3c4b5a6978",
    "generatorURL": "",
}

ZH_BODY = (
    "**告警**：ServiceLevelBelowTarget — 队列 voice.billing 服务水平低于目标\n"
    "**位置**：部门 计费账务(billing) · 队列 voice.billing\n"
    "**程度**：当前值 62.5%，阈值 80%\n"
    "**开始**：2024-11-11 14:30:00 北京时间，已持续 15 分钟\n"
    "**处理手册**：[https://wiki.example/runbooks/sl](https://wiki.example/runbooks/sl)"
)
ZH_TITLE = "【严重告警】计费账务(billing) · ServiceLevelBelowTarget"


def message(language: str = "zh") -> Message:
    return render([ALERT], language=language, now=NOW)


def body(kind: str, *, secret: str | None = None, language: str = "zh") -> tuple[str, Any]:
    req = build_request(
        kind, URLS[kind], message(language), secret=secret, now=NOW, receiver="billing-oncall"
    )
    return req.url, json.loads(req.body)


URLS = {
    "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K1",
    "dingtalk": "https://oapi.dingtalk.com/robot/send?access_token=T1",
    "feishu": "https://open.feishu.cn/open-apis/bot/v2/hook/H1",
    "slack": "https://hooks.slack.com/services/S1",
    "webhook": "https://itsm.example/api/alerts",
}


# ------------------------------------------------------------------ signatures


def test_dingtalk_signature_matches_openssl() -> None:
    # printf '1731307500000\nSEC0123456789abcdef' | openssl dgst -sha256 \
    #   -hmac SEC0123456789abcdef -binary | base64  -> 8J32iMIh/Fxd2gSJ1H2WKT76V/YV4niATB/rVAyUXd4=
    assert dingtalk_sign(SECRET, 1731307500000) == (
        "8J32iMIh%2FFxd2gSJ1H2WKT76V%2FYV4niATB%2FrVAyUXd4%3D"
    )


def test_feishu_signature_matches_openssl() -> None:
    # printf '' | openssl dgst -sha256 -hmac "$(printf '1731307500\nSEC0123456789abcdef')" \
    #   -binary | base64
    assert feishu_sign(SECRET, 1731307500) == "wsm4f6i7i2i0MUN6g02E8VlEDxnVM9TqfUTPGUMnggQ="


def test_webhook_signature_is_the_ingest_scheme() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1731307500.{}", hashlib.sha256).hexdigest()
    assert webhook_sign(SECRET, 1731307500, b"{}") == "sha256=" + expected


# -------------------------------------------------------------------- payloads


def test_wecom_markdown_payload() -> None:
    url, payload = body("wecom")
    assert url == URLS["wecom"]
    assert payload == {
        "msgtype": "markdown",
        "markdown": {"content": f'### <font color="warning">{ZH_TITLE}</font>\n\n{ZH_BODY}'},
    }


def test_dingtalk_signed_markdown_payload() -> None:
    url, payload = body("dingtalk", secret=SECRET)
    assert url == (
        URLS["dingtalk"] + "&timestamp=1731307500000"
        "&sign=8J32iMIh%2FFxd2gSJ1H2WKT76V%2FYV4niATB%2FrVAyUXd4%3D"
    )
    assert payload == {
        "msgtype": "markdown",
        "markdown": {
            "title": ZH_TITLE,
            # DingTalk collapses single newlines: every line is its own paragraph.
            "text": f"### {ZH_TITLE}\n\n" + ZH_BODY.replace("\n", "\n\n"),
        },
    }


def test_dingtalk_without_secret_leaves_url_alone() -> None:
    url, _ = body("dingtalk")
    assert url == URLS["dingtalk"]


def test_feishu_signed_card_payload() -> None:
    url, payload = body("feishu", secret=SECRET)
    assert url == URLS["feishu"]
    assert payload == {
        "timestamp": "1731307500",
        "sign": "wsm4f6i7i2i0MUN6g02E8VlEDxnVM9TqfUTPGUMnggQ=",
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": ZH_TITLE}, "template": "red"},
            "elements": [{"tag": "markdown", "content": ZH_BODY}],
        },
    }


def test_feishu_without_secret_has_no_sign_fields() -> None:
    _, payload = body("feishu")
    assert "sign" not in payload and "timestamp" not in payload


def test_slack_mrkdwn_payload_in_english() -> None:
    url, payload = body("slack", language="en")
    assert url == URLS["slack"]
    assert payload == {
        "text": "*[CRITICAL] billing · ServiceLevelBelowTarget*\n\n"
        "*Alert*: ServiceLevelBelowTarget — 队列 voice.billing 服务水平低于目标\n"
        "*Where*: department billing · queue voice.billing\n"
        "*How bad*: value 62.5%, threshold 80%\n"
        "*Since*: 2024-11-11 14:30:00 (Beijing time), for 15 min\n"
        "*Runbook*: <https://wiki.example/runbooks/sl|https://wiki.example/runbooks/sl>"
    }


def test_generic_webhook_payload_and_signature_headers() -> None:
    req = build_request(
        "webhook", URLS["webhook"], message(), secret=SECRET, now=NOW, receiver="ticketing"
    )
    payload = json.loads(req.body)
    assert payload == {
        "version": "vocflow.notify/1",
        "receiver": "ticketing",
        "status": "firing",
        "severity": "critical",
        "title": ZH_TITLE,
        "text": ZH_TITLE
        + "\n\n"
        + ZH_BODY.replace("**", "").replace(
            "[https://wiki.example/runbooks/sl](https://wiki.example/runbooks/sl)",
            "https://wiki.example/runbooks/sl https://wiki.example/runbooks/sl",
        ),
        "alerts": [ALERT],
    }
    assert req.headers["X-Vocflow-Timestamp"] == "1731307500"
    assert req.headers["X-Vocflow-Signature"] == webhook_sign(SECRET, 1731307500, req.body)
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"


def test_slack_escapes_control_characters() -> None:
    msg = Message("t<1>", "firing", "warning", "orange", (Block((Line("a&b", "<x>"),)),))
    url, payload = "u", json.loads(build_request("slack", "u", msg, secret=None, now=NOW).body)
    assert payload["text"] == "*t&lt;1&gt;*\n\n*a&amp;b*：&lt;x&gt;" and url == "u"


def test_long_group_is_cut_to_whole_alerts_within_wecom_limit() -> None:
    alerts = [
        {**ALERT, "labels": {**ALERT["labels"], "queue": f"voice.q{i:03d}"}, "fingerprint": str(i)}
        for i in range(60)
    ]
    msg = render(alerts, now=NOW, external_url="http://am.example:9093")
    text = markdown(msg, "wecom")
    assert len(text.encode("utf-8")) <= MAX_TEXT["wecom"] < 4096
    shown = text.count("**告警**：")
    assert 0 < shown < 60
    assert text.endswith(f"…另有 {60 - shown} 条未显示，见 [Alertmanager](http://am.example:9093)")
    assert "（共 60 条）" in text.splitlines()[0]


# --------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("kind", "status", "answer", "ok"),
    [
        ("wecom", 200, b'{"errcode":0,"errmsg":"ok"}', True),
        ("wecom", 200, b'{"errcode":93000,"errmsg":"invalid webhook url"}', False),
        ("dingtalk", 200, b'{"errcode":0,"errmsg":"ok"}', True),
        ("dingtalk", 200, b'{"errcode":130101,"errmsg":"send too fast"}', False),
        ("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}', False),
        ("feishu", 200, b'{"code":0,"msg":"success","data":{}}', True),
        ("feishu", 200, b'{"StatusCode":0,"StatusMessage":"success"}', True),
        (
            "feishu",
            200,
            b'{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}',
            False,
        ),
        ("slack", 200, b"ok", True),
        ("slack", 404, b"no_service", False),
        ("webhook", 204, b"", True),
        ("webhook", 500, b"boom", False),
        ("wecom", 502, b"<html>bad gateway</html>", False),
        ("wecom", 200, b"not json", False),
    ],
)
def test_answers(kind: str, status: int, answer: bytes, ok: bool) -> None:
    reason = check_answer(kind, status, answer)
    assert (reason is None) is ok, reason
    if not ok:
        assert reason and len(reason) < 300
