"""A read-only word -> number table in a few MB, for the text stages' big word lists.

Why: jieba's IDF (270,000 words) and the sentiment lexicon (44,000) were Python
dicts of str -> float, ~40 MB of a worker's memory for lookups of the few
thousand words contact texts use.
Here a table keeps its entries in `BUCKETS` strings, ``"\\nword\\tvalue"`` per
entry, each word in the string its hash picks (not by first character: words
sharing a prefix made one string hold most of them, a lookup scanned
megabytes), and finds a word with ``str.rfind`` (the last entry of a word wins,
as a dict built line by line keeps the last value); the value is parsed with
``float`` from the file's own text, so it is the same float the dict held.
Recent answers are kept in a small cache (cleared when full: bounded memory, and
the words of contact texts repeat), so a lookup costs about a dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

CACHE_MAX: Final = 16_384
BUCKETS: Final = 8192  # ~35 entries each for jieba's IDF, ~1 KB to scan


class WordTable(Mapping[str, float]):
    """word -> float, built once from (word, value text) pairs; `overrides` win."""

    __slots__ = ("_buckets", "_cache", "_empty", "_len", "_overrides")

    def __init__(
        self, entries: Iterable[tuple[str, str]], overrides: Mapping[str, float] | None = None
    ) -> None:
        lines: list[list[str]] = [[] for _ in range(BUCKETS)]
        for word, value in entries:
            if "\n" in word or "\t" in word:
                raise ValueError(f"a word with a tab or a line break: {word!r}")
            float(value)  # a bad number fails here, not at its first lookup
            lines[hash(word) % BUCKETS].append(f"\n{word}\t{value}")
        self._buckets = ["".join(bucket) for bucket in lines]
        self._empty = not any(self._buckets)
        self._overrides = dict(overrides or {})
        self._cache: dict[str, float | None] = {}
        self._len: int | None = None  # counted when first asked (nothing in the worker asks)

    def _find(self, word: str) -> float | None:
        if word in self._overrides:
            return self._overrides[word]
        if "\n" in word or "\t" in word:
            return None
        bucket = self._buckets[hash(word) % BUCKETS]
        at = bucket.rfind(f"\n{word}\t")
        if at < 0:
            return None
        start = at + len(word) + 2
        end = bucket.find("\n", start)
        return float(bucket[start : end if end >= 0 else len(bucket)])

    def get(self, word: str, default: float | None = None) -> float | None:  # type: ignore[override]
        cache = self._cache
        try:
            value = cache[word]
        except KeyError:
            value = self._find(word)
            if len(cache) >= CACHE_MAX:
                cache.clear()
            cache[word] = value
        return default if value is None else value

    def __getitem__(self, word: str) -> float:
        value = self.get(word)
        if value is None:
            raise KeyError(word)
        return value

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word) is not None

    def _words(self) -> Iterator[str]:
        seen: set[str] = set()
        for word in self._overrides:
            seen.add(word)
            yield word
        for bucket in self._buckets:
            for line in bucket[1:].split("\n") if bucket else ():
                word = line.rpartition("\t")[0]
                if word not in seen:
                    seen.add(word)
                    yield word

    def __iter__(self) -> Iterator[str]:
        return self._words()

    def __bool__(self) -> bool:
        return not self._empty or bool(self._overrides)

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(1 for _ in self._words())
        return self._len
