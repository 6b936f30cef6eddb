"""RFC 5322 e-mail (Chinese charsets, MIME) -> received/message events."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.unit.sources.adapters.conftest import expected_event_id, hmac_hex, load, validated
from vocflow.streams.sources.adapters import AdapterError, AdapterReason, mail, parse_email
from vocflow.streams.sources.adapters.common import make_contact_id
from vocflow.streams.sources.adapters.mail import MAX_MIME_CONTAINERS, html_to_text, strip_quoted


def test_gbk_base64_new_complaint() -> None:
    [ev] = validated(parse_email(load("email/gbk_base64.eml")))
    assert ev["event_type"] == "received"
    assert ev["channel"] == "email"
    # Arrival at our MX (top Received header), not the sender's Date header.
    assert ev["occurred_at"] == "2024-05-06T09:32:18+08:00"
    assert ev["queue"] == "kefu@kefu.example.cn"
    assert ev["customer_id"] == "mail-" + hmac_hex("wang_hz88@example.net")  # lower-cased
    msgid = "5f2c1a7e.3b9d.18f4b2c6a1e.Coremail.wang_hz88@example.net"
    assert ev["contact_id"] == make_contact_id("email", msgid)
    assert ev["event_id"] == expected_event_id("email", "email", msgid)
    assert ev["text"] == (
        "投诉：宽带故障一周未修复，要求减免费用\n\n"
        "客服您好：\n\n"
        "我家宽带（账号在杭州市西湖区文三路）从4月29日开始就频繁掉线，晚上基本上网页都打不开，\n"
        "已经报修两次了，师傅上门看了说是线路问题，但是到现在一个多星期了还是没修好。\n"
        "我每个月交129元的融合套餐费，这期间根本用不了，要求减免这段时间的费用，并尽快修复。\n"
        "如果这周还解决不了，我会向工信部投诉。\n\n"
        "王先生"  # "发自我的iPhone" cut
    )
    assert b"example.net" not in orjson.dumps(ev)  # no sender address anywhere


def test_gb2312_label_with_gbk_bytes_quoted_printable_reply() -> None:
    [ev] = validated(parse_email(load("email/gb2312_qp_reply.eml")))
    assert ev["event_type"] == "message"  # a reply in an existing thread
    # The thread root is the first References id: the customer's original mail.
    assert ev["contact_id"] == make_contact_id("email", "20240426093307.A1B2C3@example.org")
    assert ev["occurred_at"] == "2024-05-06T10:15:07+08:00"
    assert ev["customer_id"] == "mail-" + hmac_hex("zhe.wang@example.org")
    # 喆 and 镕 are GBK-only: they decode because GB2312 is read as GB18030.
    assert ev["text"] == (
        "回复：关于王喆账单异常扣费（镕）的咨询\n\n"
        "您好，\n\n"
        "我是王喆，上次来信反映的话费问题还没有处理。4月账单里又出现了一笔“视频彩铃”包月费10元，\n"
        "我从来没有订购过，请核实后退费并取消该业务。附件是账单截图。\n\n"
        "谢谢！\n"
        "王喆"  # the Outlook 发件人/发送时间 quote block is cut
    )


def test_utf8_alternative_prefers_plain_and_strips_quotes() -> None:
    [ev] = validated(parse_email(load("email/utf8_alternative.eml")))
    assert ev["event_type"] == "message"
    assert ev["contact_id"] == make_contact_id("email", "20240505182001.5521@kefu.example.cn")
    assert ev["occurred_at"] == "2024-05-06T02:41:33Z"  # keeps the Received header's offset
    assert ev["customer_id"] == "mail-" + hmac_hex("li.na.2020@example.com")
    assert ev["text"] == (
        "Re: 套餐变更\n\n"
        "你好，我想把现在的58元套餐改成99元的5G畅享套餐，请问下个月1号能生效吗？\n"
        "另外原来的副卡要不要重新办理？"
    )


def test_html_only_is_stripped_to_text() -> None:
    [ev] = validated(parse_email(load("email/html_only.eml")))
    assert ev["event_type"] == "received"
    assert ev["occurred_at"] == "2024-05-06T03:05:09Z"  # Date with -0000 is UTC
    assert ev["queue"] == "kefu@kefu.example.cn"  # Delivered-To wins over To
    assert ev["text"] == (
        "APP无法登录\n\n"
        "客服你好：\n\n"
        "APP登录一直提示“验证码错误”，换了手机也一样 & 收不到短信。\n\n"
        "麻烦尽快处理，谢谢。\n"
        "赵女士"
    )


def test_same_mail_same_ids() -> None:
    data = load("email/gbk_base64.eml")
    assert parse_email(data) == parse_email(data)
    assert parse_email(data)[0]["event_id"] != parse_email(data, source="mx2")[0]["event_id"]


@pytest.mark.parametrize(
    ("fixture", "reason", "loc", "message"),
    [
        (
            "email/broken_bad_charset.eml",
            AdapterReason.bad_charset,
            "message body",
            "message body declares charset 'x-mac-chinesesimp', which is not a known character set",
        ),
        (
            "email/broken_undecodable.eml",
            AdapterReason.undecodable,
            "message body",
            "message body: declared charset 'utf-8' decoded as utf-8, but byte 0 (0xbf) is invalid",
        ),
        (
            "email/broken_truncated.eml",
            AdapterReason.truncated_mime,
            "message",
            "message (multipart/mixed) is truncated: its closing MIME boundary is missing",
        ),
        (
            "email/broken_no_body.eml",
            AdapterReason.no_body,
            "body",
            "the mail has no text: no text/plain or text/html body",
        ),
        (
            "email/broken_bad_base64.eml",
            AdapterReason.bad_transfer_encoding,
            "message body",
            "message body: its base64 content is damaged",
        ),
        (
            "email/broken_no_from.eml",
            AdapterReason.missing_field,
            "From",
            "the mail has no usable From address",
        ),
    ],
)
def test_broken_mails(fixture: str, reason: AdapterReason, loc: str, message: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_email(load(fixture))
    assert err.value.reason is reason
    assert err.value.loc == loc
    assert err.value.message.startswith(message)


def _mail(headers: str, body: bytes = b"\xe4\xbd\xa0\xe5\xa5\xbd") -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n" + body + b"\r\n"


def test_subject_only_mail_is_kept() -> None:
    subject = base64.b64encode("宽带坏了".encode("gbk")).decode()
    [ev] = parse_email(
        _mail(
            f"From: a@example.com\nDate: Mon, 6 May 2024 11:00:00 +0800\n"
            f"Subject: =?gb2312?B?{subject}?=\n",
            b"",
        )
    )
    assert ev["text"] == "宽带坏了"


def test_no_charset_falls_back_from_utf8_to_gb18030() -> None:
    headers = (
        "From: a@example.com\nDate: Mon, 6 May 2024 11:00:00 +0800\nContent-Type: text/plain\n"
    )
    assert parse_email(_mail(headers))[0]["text"] == "你好"
    assert parse_email(_mail(headers, "你好".encode("gbk")))[0]["text"] == "你好"


def test_missing_message_id_uses_the_raw_bytes() -> None:
    data = _mail("From: a@example.com\nDate: Mon, 6 May 2024 11:00:00 +0800\n")
    [ev] = parse_email(data)
    assert ev["event_type"] == "received"
    assert ev["occurred_at"] == "2024-05-06T11:00:00+08:00"
    assert parse_email(data) == [ev]
    assert parse_email(data + b"x")[0]["event_id"] != ev["event_id"]


@pytest.mark.parametrize(
    ("headers", "reason", "loc"),
    [
        ("From: a@example.com\n", AdapterReason.missing_field, "Date"),
        ("From: a@example.com\nDate: yesterday\n", AdapterReason.invalid_value, "Date"),
        (
            "From: a@example.com\nDate: Mon, 6 May 2024 11:00:00 +0800\n"
            "Content-Transfer-Encoding: x-gzip64\n",
            AdapterReason.bad_transfer_encoding,
            "message body",
        ),
        (
            "From: a@example.com\nDate: Mon, 6 May 2024 11:00:00 +0800\n"
            "Content-Type: multipart/mixed\n",
            AdapterReason.bad_format,
            "message",
        ),
    ],
)
def test_header_errors(headers: str, reason: AdapterReason, loc: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_email(_mail(headers))
    assert err.value.reason is reason
    assert err.value.loc == loc


def test_oversized_mail() -> None:
    with pytest.raises(AdapterError) as err:
        parse_email(b"x" * 25_000_001)
    assert err.value.reason is AdapterReason.oversized


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("请尽快处理\n\n-----Original Message-----\nFrom: x\n旧内容", "请尽快处理"),
        ("好的\n------------------ 原始邮件 ------------------\n发件人: x", "好的"),
        ("收到\nOn Mon, May 6, 2024 at 9:00 AM 客服 <k@example.cn> wrote:\n> 旧", "收到"),
        ("谢谢\n> 引用一行\n还有问题", "谢谢\n还有问题"),
        ("正文\n-- \n张三\n电话", "正文"),
        ("From: 我自己写的一行\n不是引用", "From: 我自己写的一行\n不是引用"),
    ],
)
def test_strip_quoted(text: str, kept: str) -> None:
    assert strip_quoted(text) == kept


def test_html_to_text_drops_scripts_and_quotes() -> None:
    html = "<p>一</p><script>x()</script><blockquote>旧</blockquote><div>二&amp;三<br>四</div>"
    assert strip_quoted(html_to_text(html)) == "一\n\n二&三\n四"


def test_regressions_found_by_the_mutation_fuzz() -> None:
    # A NUL inside the charset name made codecs.lookup raise ValueError.
    nul = _mail(
        "From: a@example.com\nDate: Mon, 6 May 2024 11:00:00 +0800\n"
        'Content-Type: text/plain; charset="\x00gbk"\n'
    )
    with pytest.raises(AdapterError) as err:
        parse_email(nul)
    assert err.value.reason is AdapterReason.bad_charset
    # Raw 8-bit bytes in a header turned its value into a Header object.
    eight_bit = (
        b"From: a@example.com\r\nDate: Mon, 6 May 2024 11:00:00 +0800\r\n"
        b"Content-Transfer-Encoding: base\xe464\r\n\r\nhi\r\n"
    )
    with pytest.raises(AdapterError) as err:
        parse_email(eight_bit)
    assert err.value.reason is AdapterReason.bad_transfer_encoding


def _nested_multiparts(depth: int, newline: bytes = b"\r\n") -> bytes:
    """A mail whose text part sits inside ``depth`` nested multipart/mixed parts."""
    head = b"From: a@b.cn\r\nDate: Mon, 6 May 2024 09:31:52 +0800\r\nSubject: s\r\n"
    opens = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    closes = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    data = head + opens + b"Content-Type: text/plain\r\n\r\nhello\r\n" + closes
    return data.replace(b"\r\n", newline)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n", b"\r"])
def test_deeply_nested_mime_is_unsupported_not_a_recursion_error(newline: bytes) -> None:
    # Found by the fuzz suite: 979 nested multiparts (~56 kB) overflowed the stack in the
    # stdlib parser. Lone-CR line ends, which the parser also splits on, count too.
    with pytest.raises(AdapterError) as err:
        parse_email(_nested_multiparts(1000, newline))
    assert err.value.reason is AdapterReason.unsupported
    assert err.value.loc == "message"
    assert f"more than {MAX_MIME_CONTAINERS} multipart/message parts" in err.value.message


def test_nested_message_rfc822_parts_count_too() -> None:
    head = b"From: a@b.cn\r\nDate: Mon, 6 May 2024 09:31:52 +0800\r\n"
    data = head + b"content-type:\r\n MESSAGE/rfc822\r\n\r\n" * 1000 + b"hello\r\n"
    with pytest.raises(AdapterError) as err:
        parse_email(data)
    assert err.value.reason is AdapterReason.unsupported


def test_mime_nesting_up_to_the_limit_is_read() -> None:
    [ev] = parse_email(_nested_multiparts(MAX_MIME_CONTAINERS))
    assert ev["text"] == "s\n\nhello"


def test_recursion_error_while_parsing_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last line of defence, with the header count out of the way.
    monkeypatch.setattr(mail, "MAX_MIME_CONTAINERS", 10_000)
    with pytest.raises(AdapterError) as err:
        parse_email(_nested_multiparts(1500))
    assert err.value.reason is AdapterReason.unsupported
    assert "nested too deeply to read" in err.value.message
