"""WeChat official-account pushes -> message events; unsafe XML refused."""

from __future__ import annotations

import pytest

from tests.unit.sources.adapters.conftest import expected_event_id, load, validated
from vocflow.streams.sources.adapters import AdapterError, AdapterReason, parse_wechat
from vocflow.streams.sources.adapters.common import make_contact_id

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
ACCOUNT = "gh_3f9a2c1d7e5b"


def test_text_message() -> None:
    [ev] = validated(parse_wechat(load("wechat/text.xml")))
    assert ev["event_type"] == "message"
    assert ev["channel"] == "wechat"
    assert ev["occurred_at"] == "2024-05-06T09:15:00+08:00"
    assert ev["customer_id"] == OPENID
    assert ev["queue"] == ACCOUNT
    assert ev["text"] == (
        "你好，我的手机从早上开始就没有信号，显示无服务，在杭州滨江区，是基站出问题了吗？"
    )
    assert ev["event_id"] == expected_event_id(
        "wechat", "wechat", ACCOUNT, "msgid", "24559612390178563"
    )
    assert ev["contact_id"] == make_contact_id("wechat", ACCOUNT, OPENID, "2024-05-06")


def test_same_customer_same_day_is_one_contact() -> None:
    events = [parse_wechat(load(f"wechat/{name}.xml"))[0] for name in ("text", "image", "voice")]
    assert len({e["contact_id"] for e in events}) == 1
    assert len({e["event_id"] for e in events}) == 3


@pytest.mark.parametrize(
    ("fixture", "text"),
    [
        ("wechat/image.xml", "[图片]"),
        ("wechat/voice.xml", "[语音] 还是没有信号，什么时候能修好"),
        ("wechat/link.xml", "[链接] 5G畅享套餐99元优惠活动 这个活动老用户能参加吗"),
    ],
)
def test_non_text_messages_get_placeholders(fixture: str, text: str) -> None:
    [ev] = validated(parse_wechat(load(fixture)))
    assert ev["text"] == text
    assert ev["event_type"] == "message"


def test_event_pushes_are_ignored() -> None:
    assert parse_wechat(load("wechat/event_subscribe.xml")) == []


def test_without_msgid_ids_come_from_sender_and_time() -> None:
    data = load("wechat/image.xml").replace(b"<MsgId>24559612977381290</MsgId>", b"")
    [ev] = parse_wechat(data)
    assert ev["event_id"] == expected_event_id(
        "wechat", "wechat", ACCOUNT, "from", OPENID, "1714958142", "image"
    )


@pytest.mark.parametrize(
    ("fixture", "reason", "loc"),
    [
        ("wechat/broken_xxe.xml", AdapterReason.unsafe_xml, ""),
        ("wechat/broken_malformed.xml", AdapterReason.bad_xml, ""),
        ("wechat/broken_encrypted.xml", AdapterReason.unsupported, "Encrypt"),
        ("wechat/broken_no_openid.xml", AdapterReason.missing_field, "FromUserName"),
    ],
)
def test_broken_pushes(fixture: str, reason: AdapterReason, loc: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_wechat(load(fixture))
    assert err.value.reason is reason
    assert err.value.loc == loc


@pytest.mark.parametrize(
    "data",
    [
        b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><xml>&lol2;</xml>',
        b"<?xml version='1.0'?>\n<!doctype xml SYSTEM 'http://attacker.example/x.dtd'><xml/>",
        b"<xml><Content><! ENTITY x></Content></xml>",
    ],
)
def test_entity_and_doctype_tricks_are_refused(data: bytes) -> None:
    with pytest.raises(AdapterError) as err:
        parse_wechat(data)
    assert err.value.reason is AdapterReason.unsafe_xml


@pytest.mark.parametrize(
    ("data", "reason", "loc"),
    [
        (b"<note><a>1</a></note>", AdapterReason.bad_xml, "note"),
        (
            b"<xml><MsgType>text</MsgType><Content>hi</Content></xml>",
            AdapterReason.missing_field,
            "ToUserName",
        ),
        (b"<xml><MsgType>hongbao</MsgType></xml>", AdapterReason.unknown_value, "MsgType"),
        (
            load("wechat/text.xml").replace(b"1714958100", b"tomorrow"),
            AdapterReason.invalid_value,
            "CreateTime",
        ),
        (
            load("wechat/text.xml").replace(b"<![CDATA[\xe4\xbd\xa0", b"<![CDATA[\xc4\xe3"),
            AdapterReason.undecodable,
            "",
        ),
        (b"<xml>" + b"x" * 70_000 + b"</xml>", AdapterReason.oversized, ""),
    ],
)
def test_push_errors(data: bytes, reason: AdapterReason, loc: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_wechat(data)
    assert err.value.reason is reason
    assert err.value.loc == loc


def test_declared_encoding_cannot_bypass_the_check() -> None:
    # The text we checked is the text we parse: the declaration is dropped.
    data = load("wechat/text.xml").replace(
        b"<xml>", b'<?xml version="1.0" encoding="UTF-16"?><xml>'
    )
    assert parse_wechat(data)[0]["text"].startswith("你好")
