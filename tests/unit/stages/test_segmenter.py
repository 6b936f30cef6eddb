"""The worker segments with jieba-rs (rjieba) only because its tokens equal jieba's.

This is the diff test the speed-up stands on (streams/stages/textanalysis.py): every
contact text we have (the training corpus, both labelled sets, a simulated day's
texts, and awkward inputs), cut by jieba 0.42.1 and by the worker's tokenizer, both
with the shipped domain dictionary and HMM off. Any difference fails, naming the
text, so a new dictionary word or an upgrade of either library that changes a
single token is caught before it changes a tag, a department or a sentiment.
"""

from __future__ import annotations

from pathlib import Path

import jieba
import orjson
import pytest

from vocflow.streams.privacy.pii import mask_pii
from vocflow.streams.stages.textanalysis import (
    DOMAIN_DICT_PATH,
    _jieba,
    new_tokenizer,
    read_userdict,
    segment,
    tokenize,
)
from vocflow.streams.tools.workload import simulated_events

ROOT = Path(__file__).resolve().parents[3]
LABELLED = [
    *sorted((ROOT / "streams" / "data" / "corpus").glob("*.jsonl")),
    ROOT / "tests" / "data" / "voc_labelled.jsonl",
    ROOT / "tests" / "data" / "voc_independent.jsonl",
]
AWKWARD = [
    "",
    " ",
    "\n\t  \r\n",
    "My broadband has been down since Monday!!!",
    "我的 broadband account 被 suspended 了 please help",
    "ＦＵＬＬＷＩＤＴＨ　全角字符　１２３４５",
    "😡😡😡 网速慢 🐢 #投诉# @客服小王",
    "號碼攜轉後訊號很差，請盡快處理",
    "话费话费话费话费话费话费话费话费话费话费话费话费",
    "啊啊啊啊啊啊啊啊啊啊啊啊啊嗯嗯嗯嗯嗯哦哦哦",
    "急急急急急急 在线等 哈哈哈哈哈哈哈 呵呵呵呵 666666 hhhhhhh ！！！！！？？？",
    "3.14159 1,000,000 2026-12-07T08:00:00+08:00 50% ￥199/月 $5",
    "a-b_c.d:e/f\\g|h~i`j'k\"l",
    "中文English混合mixed文本text123数字",
    "电话[PHONE]，身份证[ID_NUMBER]，卡号[BANK_CARD]，邮箱[EMAIL]，[NAME]住[ADDRESS]",
    "\u200b零宽\u200d字符\ufeff",
    "ㄅㄆㄇ 한국어 日本語のテキスト Ελληνικά кириллица",
]


def _texts() -> list[str]:
    texts: list[str] = []
    for path in LABELLED:
        for line in path.read_bytes().splitlines():
            if line.strip():
                text = orjson.loads(line).get("text")
                if text:
                    texts.append(text)
    for raw, carries_text, _ in simulated_events(20_000, seed=3, malformed_ratio=0.0):
        if carries_text:
            texts.append(orjson.loads(raw.value)["text"])
    texts += AWKWARD
    return texts


@pytest.fixture(scope="module")
def reference() -> jieba.Tokenizer:
    jieba.setLogLevel(30)
    tk = jieba.Tokenizer()
    tk.initialize()
    tk.load_userdict(str(DOMAIN_DICT_PATH))
    return tk


def test_there_are_enough_texts_to_mean_something() -> None:
    texts = _texts()
    assert len(texts) >= 6_000
    assert len({t for t in texts if t}) >= 4_000


def test_every_text_cuts_exactly_as_jieba_cuts_it(reference: jieba.Tokenizer) -> None:
    differ = []
    for text in _texts():
        for version in (text, mask_pii(text)[0]):
            want = list(reference.cut(version, HMM=False))
            got = segment(version)
            if got != want:
                differ.append((version, want, got))
    assert differ == [], f"{len(differ)} texts differ, first: {differ[:3]}"


PERIODIC = ["啊" * 8, "啊" * 11, "啊啊啊啊啊啊啊啊啊啊啊啊啊嗯嗯嗯嗯嗯哦哦哦"]


@pytest.mark.parametrize("text", PERIODIC)
def test_jieba_rs_alone_breaks_ties_otherwise_so_periodic_runs_go_to_jieba(
    reference: jieba.Tokenizer, text: str
) -> None:
    """Why segment() has a jieba path at all (and proof the diff above can fail)."""
    want = list(reference.cut(text, HMM=False))
    assert new_tokenizer().cut(text, False) != want
    assert segment(text) == want


def test_tokenize_is_jieba_without_whitespace_and_with_whole_mask_tokens(
    reference: jieba.Tokenizer,
) -> None:
    text = "您好 我的电话[PHONE]打不通，光猫一直红灯\n麻烦尽快"
    assert tokenize(text) == [
        t
        for part in ("您好 我的电话", "[PHONE]", "打不通，光猫一直红灯\n麻烦尽快")
        for t in (reference.cut(part, HMM=False) if part != "[PHONE]" else [part])
        if not t.isspace()
    ]


def test_the_domain_dictionary_is_read_as_jieba_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "dict.txt"
    path.write_text("携号转网 20000 v\n光猫 3\n停机保号\n\nVoLTE 500 eng\n", encoding="utf-8")
    assert read_userdict(path) == [
        ("携号转网", 20000, "v"),
        ("光猫", 3, None),
        ("停机保号", None, None),
        ("VoLTE", 500, "eng"),
    ]


def test_the_periodic_path_reads_jiebas_dictionary_as_jieba_does(
    reference: jieba.Tokenizer,
) -> None:
    """The compact dictionary under jieba's code (textanalysis._CompactFreq) holds
    jieba's total, words, prefixes (0) and domain words, and nothing else."""
    ours = _jieba()
    assert ours.total == reference.total
    for word in [
        "话费",
        "携号转网",
        "光猫",
        "携号",
        "啊",
        "中华人民共和",
        "中华人民共和国",
        "龘龘龘",
        "x",
    ]:
        assert ours.FREQ.get(word) == reference.FREQ.get(word), word
        assert (word in ours.FREQ) == (word in reference.FREQ), word
