"""PII masking: every kind, full-width input, separators, checksum negatives."""

from __future__ import annotations

import pytest

from vocflow.streams.privacy.pii import is_valid_id_number, luhn_valid, mask_pii

VALID_ID = "11010519491231002X"  # GB 11643 checksum valid (X check digit)
VALID_ID_DIGIT = "440304199001011233"
VALID_CARD_19 = "6222021234567890128"  # Luhn valid
VALID_CARD_16 = "6228480012345671"


def counts(
    phone: int = 0,
    id_number: int = 0,
    bank_card: int = 0,
    email: int = 0,
    address: int = 0,
    name: int = 0,
) -> dict:
    return {
        "phone": phone,
        "id_number": id_number,
        "bank_card": bank_card,
        "email": email,
        "address": address,
        "name": name,
    }


def test_checksums() -> None:
    assert is_valid_id_number(VALID_ID)
    assert is_valid_id_number(VALID_ID.lower())
    assert is_valid_id_number(VALID_ID_DIGIT)
    assert not is_valid_id_number("110105194912310021")
    assert luhn_valid(VALID_CARD_19) and luhn_valid(VALID_CARD_16)
    assert not luhn_valid("6228480012345672")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的电话13812345678谢谢", "我的电话[PHONE]谢谢"),
        ("电话：138-1234-5678，备用 138 1234 5678", "电话：[PHONE]，备用 [PHONE]"),
        ("打+86 138 1234 5678找我", "打[PHONE]找我"),
        ("号码+8613912345678。", "号码[PHONE]。"),
        ("号码8615012345678", "号码[PHONE]"),
        ("号码138.1234.5678", "号码[PHONE]"),
    ],
)
def test_phone(text: str, expected: str) -> None:
    masked, c = mask_pii(text)
    assert masked == expected
    assert c["phone"] == expected.count("[PHONE]")


def test_fullwidth_digits_and_separators() -> None:
    assert mask_pii("电话１３８－１２３４－５６７８，谢谢") == (
        "电话[PHONE]，谢谢",
        counts(phone=1),
    )
    assert mask_pii("电话１３８\u30001234\u30005678") == ("电话[PHONE]", counts(phone=1))
    assert mask_pii("身份证１１０１０５１９４９１２３１００２Ｘ") == (
        "身份证[ID]",
        counts(id_number=1),
    )
    assert mask_pii("邮箱ｔｅｓｔ＠ｅｘａｍｐｌｅ．ｃｏｍ") == ("邮箱[EMAIL]", counts(email=1))


def test_id_number() -> None:
    assert mask_pii(f"身份证{VALID_ID}请核实") == ("身份证[ID]请核实", counts(id_number=1))
    assert mask_pii(f"证件号 {VALID_ID_DIGIT}") == ("证件号 [ID]", counts(id_number=1))
    assert mask_pii("身份证 110105 19491231 002x") == ("身份证 [ID]", counts(id_number=1))


def test_invalid_id_checksum_not_masked() -> None:
    for text in (
        "身份证110105194912310021",
        "身份证11010519491231002Y",
        "身份证44030419900101123X",
    ):
        assert mask_pii(text) == (text, counts())


def test_bank_card() -> None:
    assert mask_pii(f"卡号{VALID_CARD_19}。") == ("卡号[CARD]。", counts(bank_card=1))
    assert mask_pii("卡号 6228 4800 1234 5671 谢谢") == ("卡号 [CARD] 谢谢", counts(bank_card=1))
    assert mask_pii("卡号6228-4800-1234-5671") == ("卡号[CARD]", counts(bank_card=1))


def test_non_luhn_and_order_numbers_not_masked() -> None:
    for text in (
        "卡号6228480012345672",  # 16 digits, Luhn invalid
        "订单号2023112313812345678",  # 19 digits, contains a phone-like tail
        "订单DD13812345678已发货",  # letters glued to the number
        "金额1381234.5678元",  # decimal amount
        "流水号12345678901234567",  # 17 digits
        "日期2024-01-15，座机0571-88886666",
    ):
        assert mask_pii(text) == (text, counts()), text


def test_email() -> None:
    assert mask_pii("邮箱 zhang.san@qq.com，谢谢") == ("邮箱 [EMAIL]，谢谢", counts(email=1))
    # a phone number as the local part is one e-mail, not a phone
    assert mask_pii("发到13812345678@163.com就行") == ("发到[EMAIL]就行", counts(email=1))
    assert mask_pii("no at sign here") == ("no at sign here", counts())


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # speech-to-text drops or speaks the dots
        ("发到我邮箱li na5819@sina com", "发到我邮箱li [EMAIL]"),
        ("我的邮箱是680733250@126 com谢谢", "我的邮箱是[EMAIL]谢谢"),
        ("邮箱 abc 艾特 163 点 com", "邮箱 [EMAIL]"),
        ("wang dot li at 是 wangli@qq dot com", "wang dot li at 是 [EMAIL]"),
    ],
)
def test_email_as_speech_to_text_writes_it(text: str, masked: str) -> None:
    assert mask_pii(text) == (masked, counts(email=1))


def test_a_mention_is_not_an_email() -> None:
    """Without the dots, only a known top-level domain at the end makes an address."""
    for text in ("@客服小王 你好 com", "@移动客服 com on", "@zhangsan 明天 ok"):
        assert mask_pii(text) == (text, counts())


def test_several_kinds_in_one_text() -> None:
    text = (
        f"我叫张三，手机13812345678，身份证{VALID_ID}，"
        f"卡号{VALID_CARD_16}，邮箱a.b@example.com.cn，另一个手机139 8765 4321。"
    )
    masked, c = mask_pii(text)
    assert masked == (
        "我叫[NAME]，手机[PHONE]，身份证[ID]，卡号[CARD]，邮箱[EMAIL]，另一个手机[PHONE]。"
    )
    assert c == counts(phone=2, id_number=1, bank_card=1, email=1, name=1)


def test_address_and_name_with_numbers_inside() -> None:
    text = "我是王女士，寄到杭州市西湖区文三路478号2幢1单元1301室，电话13812345678"
    assert mask_pii(text) == (
        "我是[NAME]女士，寄到杭州市西湖区[ADDRESS]，电话[PHONE]",
        counts(phone=1, address=1, name=1),
    )


def test_empty_and_plain() -> None:
    assert mask_pii("") == ("", counts())
    assert mask_pii("宽带断网了") == ("宽带断网了", counts())
