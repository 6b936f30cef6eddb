"""Find personal names and street addresses in Chinese contact texts.

DOMAIN.md (Privacy) lists addresses and names next to the numbers `pii.mask_pii`
finds by checksum. Unlike numbers they have no checksum, so these finders only
mask what the text itself marks as a name or an address, and keep what the
voice-of-customer analysis needs:

* **Addresses**: the part that points at a door is masked (``建国路88号``,
  ``阳光花园3栋2单元501室``, ``5号楼1单元302``, ``张村3组15号``); province, city and
  district (``北京市朝阳区``) stay, because the emerging-issue detector and the
  departments work per city and they identify nobody. A residential compound
  named without a building (``整个小区都断网了``, ``阳光花园小区``) stays as well: it
  is how customers report a local outage. A road needs a house number after it,
  so ``路由器`` or a date (``3号扣费``) are never addresses.
* **Names**: a name is masked where the text introduces one (``我叫张伟``,
  ``姓名：李娜``, ``联系人是王芳``, ``持卡人欧阳娜娜``) or addresses a person with an
  honorific (``张先生`` -> ``[NAME]先生``). The name must start with a common
  surname (one or two characters); its given name is one or two characters, the
  second only if it is not a word that usually follows a name (``我叫张伟想问``
  masks ``张伟``). ``我是`` introduces a name only when a three-character name ends
  the clause (``我是张小明，``; not ``我是高级会员`` nor ``我是车主``). Names written
  without such a cue are not found: a contact text is not a directory, and
  guessing would mask products. English texts: ``my name is Ann Lee``,
  ``Name: Ann Lee``, ``Mr. Lee``.

Spans index the (full-width normalized) text given; `pii.mask_pii` merges them
with the number spans.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["find_addresses", "find_names"]

_HAN: Final = "\u4e00-\u9fff"
_NUM: Final = "0-9一二三四五六七八九十百零〇两"

# ------------------------------------------------------------------ addresses
# What a house number follows: road-like names. Single 道/里 are left out (知道3号,
# 这里3号 are dates far more often than addresses).
_ROAD: Final = "(?:大街|大道|胡同|路|街|巷|弄)"
_COMPOUND: Final = "(?:小区|花园|公寓|大厦|家园|新村|社区|苑|村)"
# The part inside a compound: buildings, units, floors, rooms (3栋2单元501室, 5-2-301).
_DOOR: Final = (
    rf"(?:[{_NUM}]+(?:号楼|号院|栋|幢|座|单元|层|楼|室|号|户|组))*"
    r"(?:[0-9]+(?:-[0-9]+)+|[0-9]{3,4}(?![0-9]))?"
)
_ROAD_NUMBER_RE: Final = re.compile(
    rf"{_ROAD}[{_NUM}]+(?:-[0-9]+)?[号弄巷](?:[{_HAN}]{{1,8}}?{_COMPOUND}(?=[{_NUM}]))?{_DOOR}"
)
# A building with a unit or a room (3号楼2单元, 3栋501), or a compound's door.
_BUILDING_RE: Final = re.compile(
    rf"[{_NUM}]+(?:号楼|栋|幢|座)(?:[{_NUM}]+(?:单元|层|楼))+{_DOOR}"
    rf"|[{_NUM}]+(?:号楼|栋|幢|座)(?:[0-9]{{3,4}}(?![0-9])|[{_NUM}]+[室户])"
)
_COMPOUND_DOOR_RE: Final = re.compile(
    rf"{_COMPOUND}(?:[{_NUM}]+(?:号楼|栋|幢|座|单元|组){_DOOR}|[0-9]+(?:-[0-9]+){{1,3}})"
)
# Left context that ends a road or compound name: admin divisions (kept), function
# words and verbs that introduce an address, punctuation (non-Han anyway).
_NAME_STOP: Final = frozenset("省市区县镇乡在住是到址寄送的了我你他她们和与及或从往去")
_ROAD_NAME_MAX: Final = 8


def _name_start(text: str, end: int) -> int:
    """Start of the road or compound name that ends at `end`."""
    i = end
    while i > 0 and end - i < _ROAD_NAME_MAX:
        ch = text[i - 1]
        if not ("\u4e00" <= ch <= "\u9fff") or ch in _NAME_STOP:
            break
        i -= 1
    return i


def find_addresses(text: str) -> list[tuple[int, int]]:
    """Spans of door-level address parts (see the module docstring)."""
    spans: list[tuple[int, int]] = []
    for m in _ROAD_NUMBER_RE.finditer(text):
        start = _name_start(text, m.start())
        if m.start() - start >= 2:  # a road has a name; 们弄1号 is not one
            spans.append((start, m.end()))
    for m in _COMPOUND_DOOR_RE.finditer(text):
        spans.append((_name_start(text, m.start()), m.end()))
    spans.extend(m.span() for m in _BUILDING_RE.finditer(text))
    return spans


# ---------------------------------------------------------------------- names
_SURNAMES_1: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫严段雷侯龙史陶"
    "黎贺顾毛郝龚邵万钱覃武戴莫孔汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧"
    "耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙"
    "鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫"
    "米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_SURNAMES_2: Final = (
    "欧阳",
    "司马",
    "诸葛",
    "上官",
    "东方",
    "皇甫",
    "慕容",
    "令狐",
    "尉迟",
    "长孙",
    "司徒",
    "夏侯",
    "公孙",
    "端木",
    "宇文",
    "轩辕",
    "西门",
    "南宫",
)
# Characters that end a name when they come where a second given-name character
# would: verbs, particles and pronouns that usually follow a name in a sentence.
_AFTER_NAME: Final = frozenset(
    "想要的是在有打来说问找给跟和与我你他她们啊呀吧呢吗了就也都还再又刚已先后这那请帮"
    "办买用交付充缴查开关换退改报投反咨询号码手机电话身份证卡账户地址住家现今昨去从傅机"
)
_INTRO: Final = (
    r"(?:我叫|我的名字(?:是|叫)|名字(?:是|叫)|姓名(?:是|为)?[:：]?|(?:联系人|收件人|收货人|户主|"
    r"机主|持卡人|开户人|开户名)(?:姓名)?(?:是|为)?[:：]?)\s*"
)
_SURNAME: Final = "(?:" + "|".join(_SURNAMES_2) + f"|[{_SURNAMES_1}])"
_INTRO_RE: Final = re.compile(rf"{_INTRO}({_SURNAME}[{_HAN}]{{1,2}})")
# 我是 + a full three-character name ending the clause; 我是张伟 (two characters) is
# missed on purpose: 我是党员, 我是车主, 我是房东 look the same.
_I_AM_RE: Final = re.compile(rf"我是({_SURNAME}[{_HAN}]{{2}})(?=[，。,.!！?？\s]|$)")
_ROLE_ENDINGS: Final = frozenset("员者人户主家长师生士姐")  # roles, honorifics
_HONORIFIC_RE: Final = re.compile(rf"({_SURNAME}[{_HAN}]{{0,2}}?)(?:先生|女士|小姐)")
# English: "my name is Ann Lee", "Name: Ann Lee", "Mr. Lee" (capitalized words only).
_EN_NAME_RE: Final = re.compile(
    r"(?:\b[Mm]y name is|\b[Nn]ame:|\b(?:Mr|Mrs|Ms|Miss|Dr)\.?)\s+"
    r"([A-Z][a-z]+(?:[ \-][A-Z][a-z]+){0,2})"
)
# Chars before an honorific that say it is not a surname (这位先生, 我和先生).
_NOT_BEFORE_HONORIFIC: Final = frozenset("这那位个名的和与跟")


def _trim_name(name: str) -> str:
    """Cut a candidate (surname + up to two characters) at a non-name character."""
    surname = 2 if name[:2] in _SURNAMES_2 else 1
    given = name[surname:]
    if len(given) == 2 and given[1] in _AFTER_NAME:
        given = given[:1]
    if given and given[0] in _AFTER_NAME:
        return ""
    return name[:surname] + given


def find_names(text: str) -> list[tuple[int, int]]:
    """Spans of personal names introduced or addressed as such (see the module docstring)."""
    spans: list[tuple[int, int]] = []
    for m in _INTRO_RE.finditer(text):
        name = _trim_name(m.group(1))
        if name:
            spans.append((m.start(1), m.start(1) + len(name)))
    for m in _I_AM_RE.finditer(text):
        name = m.group(1)
        if _trim_name(name) == name and name[-1] not in _ROLE_ENDINGS:
            spans.append((m.start(1), m.end(1)))
    for m in _HONORIFIC_RE.finditer(text):
        if m.start() > 0 and text[m.start() - 1] in _NOT_BEFORE_HONORIFIC:
            continue
        if m.group(1)[1:] == m.group(1)[:1]:  # 谢谢先生: thanks, not a surname
            continue
        spans.append((m.start(1), m.end(1)))
    spans.extend(m.span(1) for m in _EN_NAME_RE.finditer(text))
    return spans
