"""Names and addresses: what the text marks as one is masked; look-alikes stay."""

from __future__ import annotations

import pytest

from vocflow.streams.privacy.pii import mask_pii


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我住在北京市朝阳区建国路88号，宽带断了", "我住在北京市朝阳区[ADDRESS]，宽带断了"),
        ("寄到上海市浦东新区张江路100弄5号1201室", "寄到上海市浦东新区[ADDRESS]"),
        ("中山北路3号阳光小区2栋3单元501室没信号", "[ADDRESS]没信号"),
        ("阳光花园3栋2单元501室的网络有问题", "[ADDRESS]的网络有问题"),
        ("5号楼1单元302停电了", "[ADDRESS]停电了"),
        ("新城小区5-2-301一直断网", "[ADDRESS]一直断网"),
        ("我家在幸福村3组15号", "我家在[ADDRESS]"),
        ("地址：人民大道１２８号", "地址：[ADDRESS]"),
    ],
)
def test_addresses(text: str, expected: str) -> None:
    masked, counts = mask_pii(text)
    assert masked == expected
    assert counts["address"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我叫张伟想问一下账单", "我叫[NAME]想问一下账单"),
        ("我叫李明，宽带报修", "我叫[NAME]，宽带报修"),
        ("姓名：李娜", "姓名：[NAME]"),
        ("联系人是王芳，谢谢", "联系人是[NAME]，谢谢"),
        ("持卡人欧阳娜娜本人来电", "持卡人[NAME]本人来电"),
        ("您好张先生，请问", "您好[NAME]先生，请问"),
        ("王建国先生您好", "[NAME]先生您好"),
        ("请问是刘女士吗", "请问是[NAME]女士吗"),
        ("我是张小明，来投诉", "我是[NAME]，来投诉"),
        (
            "Hi, my name is Ann Lee and my bill is wrong",
            "Hi, my name is [NAME] and my bill is wrong",
        ),
        ("Thanks Mr. Smith", "Thanks Mr. [NAME]"),
    ],
)
def test_names(text: str, expected: str) -> None:
    masked, counts = mask_pii(text)
    assert masked == expected
    assert counts["name"] == 1


@pytest.mark.parametrize(
    "text",
    [
        "路由器坏了，重启也没用",
        "下个月3号扣费了两次",
        "我知道3号发的账单",
        "你们弄1号那个活动",
        "整个小区都断网了",
        "阳光花园小区断网",
        "杭州市西湖区没信号",
        "买了3栋房子",
        "住在5楼，信号差",
        "谢谢先生",
        "我和先生都用你们的卡",
        "这位女士说的",
        "我是高级会员，",
        "我是车主。",
        "我是党员。",
        "客户余额不足",
        "用户名是什么",
        "我叫不出名字",
        "我叫师傅来修",
        "my name is not important",
        "3号线地铁上没信号",
    ],
)
def test_look_alikes_stay(text: str) -> None:
    assert mask_pii(text)[0] == text
