"""Build ``data/idf.txt``, the contact-center overrides of jieba's general IDF.

Why overrides and not a full IDF: jieba's shipped IDF (270k words, general
corpus) already knows most Chinese words; what it gets wrong for a contact
center is (a) domain terms it lacks or rates as common (光猫, 携号转网, 停机保号
are absent; 流量 and 信号 look common in news) and (b) service boilerplate that is
in every contact (客服, 您好, 麻烦, 处理) and so says nothing about the issue.

Two modes:

* default (no corpus): every domain-dictionary word gets
  ``max(base idf, 75th percentile)``, boilerplate gets the 5th percentile;
* ``--corpus FILE`` (one contact text per line, PII-masked): additionally, for
  words seen in at least ``--min-df`` texts, the IDF fitted on that corpus
  ``log(N / df)`` is rescaled to jieba's range and averaged with the base, so a
  word that is frequent in *contact* texts drops even if it is rare in news.

Usage: ``python -m vocflow.streams.tools.fit_idf [--corpus texts.txt] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

from vocflow.streams.stages.textanalysis import (
    BASE_IDF_PATH,
    DOMAIN_DICT_PATH,
    IDF_OVERRIDES_PATH,
    _read_idf,
    _read_words,
    tokenize,
)

BOILERPLATE = [
    "客服",
    "您好",
    "你好",
    "请问",
    "麻烦",
    "帮忙",
    "处理",
    "问题",
    "情况",
    "客户",
    "用户",
    "工作人员",
    "人工",
    "电话",
    "反映",
    "咨询",
    "一下",
    "现在",
    "已经",
    "还是",
    "就是",
    "然后",
    "这个",
    "那个",
    "什么",
    "怎么",
    "为什么",
    "可以",
    "需要",
    "希望",
    "谢谢",
]


def build_overrides(corpus: list[str] | None = None, min_df: int = 5) -> dict[str, float]:
    """Return word -> IDF overrides (see module docstring for the rules)."""
    base = _read_idf(BASE_IDF_PATH)
    values = sorted(base.values())

    def pct(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    high, low = pct(0.75), pct(0.05)
    out: dict[str, float] = {}
    if corpus:
        n = len(corpus)
        df: Counter[str] = Counter()
        for text in corpus:
            df.update({t.lower() if t.isascii() else t for t in tokenize(text)})
        max_fit = math.log(n)
        for word, d in df.items():
            if d >= min_df and len(word) >= 2:
                fitted = math.log(n / d) / max_fit * values[-1] if max_fit > 0 else high
                out[word] = round((fitted + base.get(word, high)) / 2, 4)
    for word in _read_words(DOMAIN_DICT_PATH):
        key = word.lower() if word.isascii() else word
        out[key] = round(max(base.get(key, 0.0), out.get(key, 0.0), high), 4)
    for word in BOILERPLATE:
        out[word] = round(low, 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, help="one contact text per line (PII-masked)")
    ap.add_argument("--min-df", type=int, default=5)
    ap.add_argument("--out", type=Path, default=IDF_OVERRIDES_PATH)
    args = ap.parse_args(argv)
    corpus = None
    if args.corpus:
        corpus = [ln.strip() for ln in args.corpus.read_text("utf-8").splitlines() if ln.strip()]
    overrides = build_overrides(corpus, args.min_df)
    with args.out.open("w", encoding="utf-8") as f:
        f.write("# word idf: contact-center overrides of jieba's idf.txt (fit_idf.py)\n")
        for word in sorted(overrides):
            f.write(f"{word} {overrides[word]}\n")
    print(f"wrote {len(overrides)} overrides to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
