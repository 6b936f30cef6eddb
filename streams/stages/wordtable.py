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
`HashedIndex` is for the other case, a model's features: many words looked up
together, most of them unknown to the model.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Final

import numpy as np

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


class HashedIndex:
    """The row of each of a model's words, found for many words at once, in ~12
    bytes a word: the words' `hash` values sorted in one numpy array, with the row
    each came from (the caller keeps its values in an array, in its own order).

    Why: the sentiment model's 110,000 feature weights were a dict, ~15 MB of a
    worker's memory (a str, a float and a dict slot each), for texts that use ~150
    features each. Those are looked up together, one `searchsorted`, at the cost
    of the dict lookups they replace (a `WordTable` miss costs ~1 us, and most
    features miss). The words are hashed as they are read, never held together.
    A word is known by its 64-bit hash (salted per process), not compared: a word
    the model does not know whose hash equals a known word's (odds ~1e-14 a
    lookup against 110,000 words) takes that word's row, and of two words of the
    model with the same hash (odds ~1e-9 a process) the later one is kept, as for
    a word listed twice (a dict built line by line keeps the last value).
    """

    __slots__ = ("_hashes", "_rows")

    def __init__(self, words: Iterable[str]) -> None:
        hashes = np.fromiter(map(hash, words), np.int64)
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        last = np.ones(hashes.size, dtype=bool)  # the last row of each hash
        last[:-1] = hashes[1:] != hashes[:-1]
        self._hashes = hashes[last]
        self._rows = order[last].astype(np.int32)

    def __len__(self) -> int:
        return int(self._hashes.size)

    def rows(self, words: Collection[str]) -> np.ndarray:
        """The rows of those of `words` the index knows (int32, in `words`' order)."""
        at = self.positions(words)
        return at[at >= 0]

    def positions(self, words: Collection[str]) -> np.ndarray:
        """The row of each of `words`, -1 for a word the index does not know (int32)."""
        n = self._hashes.size
        if not n or not words:
            return np.full(len(words), -1, np.int32)
        wanted = np.fromiter(map(hash, words), np.int64, len(words))
        at = np.searchsorted(self._hashes, wanted)
        np.minimum(at, n - 1, out=at)
        return np.where(self._hashes[at] == wanted, self._rows[at], np.int32(-1))
