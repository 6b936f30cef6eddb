"""Segment contact texts, detect their language and extract keywords.

Why it is built this way:

* **Private tokenizer.** A module-owned tokenizer with the shipped
  contact-center dictionary ``data/domain_dict.txt`` (jieba userdict format
  ``word freq pos``) keeps domain terms whole (携号转网, 光猫, 停机保号, VoLTE,
  12315) without touching any global tokenizer, which other code in the same
  process may configure differently. It is loaded once, lazily, under a lock.
* **jieba's segmentation, computed by jieba-rs.** The tokenizer is ``rjieba``
  (jieba-rs, the Rust port: same dictionary, same DAG and route), ~20x faster
  than jieba's pure-Python ``cut`` on our texts (segmentation was the largest
  single cost of the voc stage). It is used only because its tokens *equal*
  jieba's: ``tests/unit/stages/test_segmenter.py`` segments every text we have
  with both and fails on any difference. The two break exact ties between
  segmentations differently, and exact ties come from periodic runs (啊啊啊啊啊啊,
  哈哈哈哈哈 after the domain dictionary shifts the total): a text with a unit
  repeated three times in a row is cut by jieba itself (loaded with the rest).
* **Memory.** jieba's own prefix dictionary is a Python dict of ~580,000 str keys
  (~65 MB) for the ~1.7 % of texts it cuts; here jieba's code runs over
  `_CompactFreq`, the same words and frequencies in one string per first
  character (~7 MB), so its output is jieba's by construction (and the diff test
  still compares with jieba itself). rjieba builds a default tokenizer at import
  for its module-level shortcuts, a second copy of its dictionary (~25 MB) that
  vocflow never uses: it is dropped and built again only if something calls them.
* **One segmentation per event.** Keywords are computed from the tokens we
  already have instead of calling ``jieba.analyse`` (which would segment again
  through the *global* tokenizer). Sentiment reuses the same tokens.
* **Keywords by TF-IDF, not TextRank.** Measured on the 47 non-empty contact
  texts of ``sentiment_eval.CONTACT_CHECKS`` (10-30 chars each): jieba's TextRank
  (same tokenizer and stop words, POS-filtered graph, window 5) returned *no*
  keyword for 17 of 47 texts (网速太慢了，根本没法用 -> []) and was 5.6x slower
  because it POS-tags; TF-IDF returned keywords for all 47 and, on the texts
  both handled, the same head terms (宽带/断网/投诉, 话费/乱扣费/工信部).
  Contact texts are too short for TextRank's co-occurrence graph. (No labelled
  keyword gold set exists yet, so this is coverage and speed, not precision.)
* **IDF.** jieba's shipped general-corpus IDF (``jieba/analyse/idf.txt``) is the
  base; ``data/idf.txt`` overrides it for this domain: domain-dictionary terms
  get at least the 75th percentile IDF (they are what a supervisor wants to see)
  and contact boilerplate (客服, 问题, 您好 ...) gets a low one. ``fit_idf.py``
  rebuilds that file, and can fit it from a corpus of real contact texts (one per
  line) once there is one: the PDCA loop in DOMAIN.md.
* **Language** is ``none`` (no letters at all), ``zh``, ``en`` or ``mixed`` from
  the share of Latin words among words (a Han character counts as 1/1.5 word);
  ASCII domain acronyms (5G, VoLTE, APP) and mask tokens ([PHONE]) do not count
  as English, so "5G信号很差" is ``zh``.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Final, Literal

import rjieba

from vocflow.streams.privacy.pii import MASK_TOKENS
from vocflow.streams.stages.wordtable import WordTable


def _import_jieba() -> ModuleType:
    """jieba, without the pkg_resources it imports only to open its own data files
    (it falls back to ``open``): ~10 MB and a deprecation warning in every worker.
    Nothing changes if either is already imported."""
    if "jieba" in sys.modules or "pkg_resources" in sys.modules:
        return importlib.import_module("jieba")
    sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        return importlib.import_module("jieba")
    finally:
        del sys.modules["pkg_resources"]


if TYPE_CHECKING:
    import jieba
else:
    jieba = _import_jieba()

__all__ = [
    "MAX_KEYWORDS",
    "TextAnalysisResult",
    "analyze_text",
    "detect_language",
    "extract_keywords",
    "get_tokenizer",
    "segment",
    "tokenize",
]

Language = Literal["zh", "en", "mixed", "none"]

MAX_KEYWORDS: Final = 8
DATA_DIR: Final = Path(str(resources.files("vocflow.streams") / "data"))
DOMAIN_DICT_PATH: Final = DATA_DIR / "domain_dict.txt"
STOPWORDS_PATH: Final = DATA_DIR / "stopwords.txt"
IDF_OVERRIDES_PATH: Final = DATA_DIR / "idf.txt"
BASE_IDF_PATH: Final = Path(jieba.__file__).parent / "analyse" / "idf.txt"
JIEBA_DICT_PATH: Final = Path(jieba.__file__).parent / "dict.txt"

# Mask tokens from pii.mask_pii stay one token each and never become keywords.
_MASK_RE: Final = re.compile("|".join(re.escape(token) for token in MASK_TOKENS.values()))
_HAN_RE: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*")
_WORDLIKE_RE: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z]")
_ZH_SHARE_MAX_EN: Final = 0.3  # Latin-word share at or below which text is "zh"
_EN_SHARE_MIN: Final = 0.7  # Latin-word share at or above which text is "en"


@dataclass(frozen=True, slots=True)
class TextAnalysisResult:
    """What :func:`analyze_text` found; tokens exclude whitespace."""

    language: Language
    tokens: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Resources:
    tokenizer: rjieba.Jieba
    jieba: jieba.Tokenizer
    domain_words: frozenset[str]
    ascii_domain_words: frozenset[str]
    stopwords: frozenset[str]
    idf: WordTable  # ~4 MB; as a dict of 270,000 words it was ~34 MB
    idf_default: float


_lock = threading.Lock()
_res: _Resources | None = None


def _read_words(path: Path) -> list[str]:
    """First column of each non-empty, non-comment line."""
    words = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                words.append(line.split()[0])
    return words


def _idf_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(word, IDF as written) of each line of an IDF file."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and not parts[0].startswith("#"):
                yield parts[0], parts[1]


def _read_idf(path: Path) -> dict[str, float]:
    return {word: float(value) for word, value in _idf_lines(path)}


def read_userdict(path: Path) -> list[tuple[str, int | None, str | None]]:
    """(word, frequency, part of speech) of each line of a jieba userdict file,
    as ``jieba.Tokenizer.load_userdict`` reads it (frequency and tag optional)."""
    entries: list[tuple[str, int | None, str | None]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            m = _USERDICT_RE.match(line)
            if m is None:  # pragma: no cover - the pattern matches any non-empty line
                raise ValueError(f"{path}:{lineno}: not a userdict line")
            word, freq, tag = m.groups()
            entries.append((word, int(freq) if freq else None, tag.strip() if tag else None))
    return entries


# jieba's own userdict line pattern (jieba/__init__.py re_userdict)
_USERDICT_RE: Final = re.compile(r"^(.+?)( [0-9]+)?( [a-z]+)?$")


def new_tokenizer() -> rjieba.Jieba:
    """A fresh tokenizer with the domain dictionary (jieba-rs, jieba's output)."""
    tk = rjieba.Jieba()
    for word, freq, tag in read_userdict(DOMAIN_DICT_PATH):
        tk.add_word(word, freq, tag)
    return tk


# A unit of up to 8 characters three times in a row: the only way two different
# segmentations can hold the same words (w1 w2 == w2 w1 needs w1, w2 powers of one
# unit), i.e. tie exactly, where jieba and jieba-rs may choose differently. (Other
# words with equal frequencies could tie by coincidence; the diff test is what
# shows that none of our texts does.)
# Only characters jieba segments by its dictionary count (its re_han_default):
# whitespace and punctuation runs (！！！) are split off before the DAG.
_PERIODIC_RE: Final = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&._%\-]{1,8}?)\1\1")


def _jieba() -> jieba.Tokenizer:
    """jieba itself with the domain dictionary, for the texts jieba-rs may cut otherwise.

    Loaded with the other resources, not on first need: building its dictionary
    takes a fraction of a second of CPU, and a worker that did it at the first
    periodic text held the GIL that long in the middle of live traffic (a latency
    spike in every benchmark run).
    """
    return _resources().jieba


class _CompactFreq:
    """jieba's prefix dictionary (``Tokenizer.FREQ``: word -> frequency, and every
    prefix of a word -> 0) in ~7 MB instead of ~65 MB, for jieba's own code.

    The words of jieba's dict.txt are kept in one string per first character,
    ``"\nword freq"`` per line in file order; a prefix is a ``"\n" + prefix`` found
    in it, a word's frequency the last ``"\nword "`` line (a word listed twice
    counts with its last frequency, as in jieba's ``gen_pfdict``). Words added
    later (the domain dictionary, through ``Tokenizer.add_word``) go to a small
    dict that is looked up first. jieba reads FREQ only with ``in``, ``[]`` and
    ``get`` in the paths we call (accurate mode, HMM off)."""

    __slots__ = ("_added", "_buckets")

    def __init__(self, buckets: dict[str, str]) -> None:
        self._buckets = buckets
        self._added: dict[str, int] = {}

    @classmethod
    def read(cls, path: Path) -> tuple[_CompactFreq, int]:
        """(the dictionary of a jieba dict.txt, the sum of its frequencies: jieba's total)."""
        lines: dict[str, list[str]] = {}
        total = 0
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                try:
                    word, freq = line.strip().split(" ")[:2]
                    total += int(freq)
                except ValueError:
                    msg = f"invalid dictionary entry in {path} at line {lineno}"
                    raise ValueError(msg) from None
                lines.setdefault(word[0], []).append(f"\n{word} {freq}")
        return cls({first: "".join(words) for first, words in lines.items()}), total

    def _stored(self, word: str) -> int | None:
        """The dict.txt frequency of `word`: 0 for a prefix of a word only, None if neither."""
        bucket = self._buckets.get(word[:1])
        if bucket is None:
            return None
        at = bucket.rfind(f"\n{word} ")
        if at >= 0:
            start = at + len(word) + 2
            end = bucket.find("\n", start)
            return int(bucket[start : end if end >= 0 else len(bucket)])
        return 0 if bucket.find(f"\n{word}") >= 0 else None

    def get(self, word: str, default: int | None = None) -> int | None:
        added = self._added.get(word)
        if added is not None:
            return added
        stored = self._stored(word)
        return default if stored is None else stored

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word) is not None

    def __getitem__(self, word: str) -> int:
        freq = self.get(word)
        if freq is None:
            raise KeyError(word)
        return freq

    def __setitem__(self, word: str, freq: int) -> None:
        self._added[word] = freq


def _release_rjieba_default() -> None:
    """Drop the default tokenizer rjieba builds at import (its module-level ``cut``,
    ``has_word``, ...: a second copy of the dictionary, ~25 MB) and build it again
    only if one of them is ever called. vocflow has its own (`new_tokenizer`)."""
    default = getattr(rjieba, "_DEFAULT_JIEBA", None)
    if default is None:
        return
    names = [n for n, v in vars(rjieba).items() if getattr(v, "__self__", None) is default]

    def lazy(name: str) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            if getattr(rjieba, "_DEFAULT_JIEBA", None) is None:
                rjieba._DEFAULT_JIEBA = rjieba.Jieba()  # type: ignore[attr-defined]
            return getattr(rjieba._DEFAULT_JIEBA, name)(*args, **kwargs)  # type: ignore[attr-defined]

        return call

    for name in names:
        setattr(rjieba, name, lazy(name))
    rjieba._DEFAULT_JIEBA = None  # type: ignore[attr-defined]


def _load_jieba() -> jieba.Tokenizer:
    """jieba's Tokenizer (its cut, DAG and route code, unchanged) over `_CompactFreq`:
    jieba's dictionary, then the domain dictionary as ``load_userdict`` adds it."""
    ref = jieba.Tokenizer()
    freq, total = _CompactFreq.read(JIEBA_DICT_PATH)
    ref.FREQ, ref.total, ref.initialized = freq, total, True
    ref.load_userdict(str(DOMAIN_DICT_PATH))
    return ref


def segment(text: str) -> list[str]:
    """jieba 0.42.1's accurate-mode cut with HMM off and the domain dictionary,
    whitespace included: by jieba-rs, or by jieba where the two may differ."""
    if _PERIODIC_RE.search(text):
        return list(_jieba().cut(text, HMM=False))
    return _resources().tokenizer.cut(text, False)


def _load() -> _Resources:
    _release_rjieba_default()
    tk = new_tokenizer()
    ref = _load_jieba()
    domain = frozenset(_read_words(DOMAIN_DICT_PATH))
    values = sorted(_read_idf(BASE_IDF_PATH).values())  # for a moment: the median
    default = values[len(values) // 2]
    del values
    overrides = _read_idf(IDF_OVERRIDES_PATH) if IDF_OVERRIDES_PATH.exists() else {}
    idf = WordTable(_idf_lines(BASE_IDF_PATH), overrides)
    return _Resources(
        tokenizer=tk,
        jieba=ref,
        domain_words=domain,
        ascii_domain_words=frozenset(w.lower() for w in domain if w.isascii()),
        stopwords=frozenset(w.lower() for w in _read_words(STOPWORDS_PATH)),
        idf=idf,
        idf_default=default,
    )


def _resources() -> _Resources:
    global _res
    res = _res
    if res is None:
        with _lock:
            if _res is None:
                _res = _load()
            res = _res
    return res


def get_tokenizer() -> rjieba.Jieba:
    """The module's private tokenizer with the domain dictionary loaded."""
    return _resources().tokenizer


def tokenize(text: str) -> list[str]:
    """Accurate-mode jieba tokens with HMM off, whitespace dropped.

    HMM off: ~1.6x faster (FACTS.md) and it does not invent words such as 我想查;
    names it would find (cities, products) belong in the domain dictionary.

    Mask tokens such as ``[PHONE]`` come out as one token.
    """
    if not text:
        return []
    out: list[str] = []
    pos = 0
    for m in _MASK_RE.finditer(text):
        if m.start() > pos:
            out.extend(t for t in segment(text[pos : m.start()]) if not t.isspace())
        out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.extend(t for t in segment(text[pos:]) if not t.isspace())
    return out


def detect_language(text: str) -> Language:
    """Classify text as zh / en / mixed / none by Latin-word share (see module doc)."""
    if not text:
        return "none"
    han = len(_HAN_RE.findall(text))
    ascii_domain = _resources().ascii_domain_words
    latin = sum(
        1
        for w in _LATIN_WORD_RE.findall(_MASK_RE.sub(" ", text))
        if w.lower() not in ascii_domain and not (w.isupper() and len(w) <= 3 and han)
    )
    if han == 0 and latin == 0:
        # No real words: digits/punctuation -> none; only acronyms such as "5G" -> en.
        return "none" if not _LATIN_WORD_RE.search(_MASK_RE.sub(" ", text)) else "en"
    if latin == 0:
        return "zh"
    if han == 0:
        return "en"
    share = latin / (latin + han / 1.5)
    if share <= _ZH_SHARE_MAX_EN:
        return "zh"
    if share >= _EN_SHARE_MIN:
        return "en"
    return "mixed"


def _is_candidate(tok: str, res: _Resources) -> bool:
    if len(tok) < 2 or _MASK_RE.fullmatch(tok):
        return False
    low = tok.lower()
    if low in res.stopwords:
        return False
    return bool(_WORDLIKE_RE.search(tok)) or tok in res.domain_words


def extract_keywords(tokens: list[str] | tuple[str, ...], top_k: int = MAX_KEYWORDS) -> list[str]:
    """Top `top_k` keywords by TF-IDF over `tokens`, best first.

    Ties keep first-occurrence order so the result is deterministic.
    English words are lower-cased so "Refund" and "refund" count together.
    """
    res = _resources()
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if _is_candidate(tok, res):
            key = tok.lower() if tok.isascii() else tok
            counts[key] += 1
            first.setdefault(key, i)
    if not counts:
        return []
    idf, default = res.idf, res.idf_default
    scored = sorted(
        counts,
        key=lambda w: (-counts[w] * idf.get(w, default), first[w]),
    )
    return scored[: max(0, min(top_k, MAX_KEYWORDS))]


def analyze_text(text: str | None) -> TextAnalysisResult:
    """Language, tokens and up to :data:`MAX_KEYWORDS` keywords of one contact text.

    Never raises on empty, English, mixed or odd input; `None` counts as empty.
    Run it on PII-masked text (pii.mask_pii) so tokens never hold personal data.
    """
    if not text or text.isspace():
        return TextAnalysisResult(language="none", tokens=(), keywords=())
    tokens = tokenize(text)
    return TextAnalysisResult(
        language=detect_language(text),
        tokens=tuple(tokens),
        keywords=tuple(extract_keywords(tokens)),
    )


def idf_percentile(q: float) -> float:
    """The `q` quantile (0..1) of the base IDF values; used by fit_idf.py."""
    values = sorted(_read_idf(BASE_IDF_PATH).values())
    return values[min(len(values) - 1, max(0, math.floor(q * len(values))))]
