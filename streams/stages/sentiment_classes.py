"""Three-class contact sentiment (negative / neutral / positive) with a score.

Why this exists: the review-trained scorer of :mod:`.sentiment` has no neutral
class. On 200 contact texts written outside the project it called 168
negative, most of them plain inquiries (a question about a new phone that
cannot get online with an old SIM scored -0.95), because a model fitted on
shopping reviews reads every problem word as a complaint.

What it is: a multinomial logistic model fitted on labelled *contact* texts
(``streams/data/corpus/``, by :mod:`vocflow.streams.tools.sentiment_fit`), over

* the review model's sparse features (tokens, token bigrams, negation-aware
  Han character 1-3-grams, shared with :func:`.sentiment.model_features`, so
  they are computed once per text);
* question and request cues (吗, 怎么, 如何, 请问, 能不能, a question mark ...),
  exclamation marks and a length bucket: what separates an inquiry from a
  complaint about the same subject;
* the review scorer's outputs as dense inputs (its score, lexicon-rule score
  and logit): the public review corpus still carries what 满意 or 垃圾 mean.

Output: ``score = P(positive) - P(negative)`` in [-1, 1] (existing consumers,
such as the urgency raiser at <= -0.6, keep a continuous number) and a
``label`` from two thresholds on that score, calibrated on a dev split the
model never fitted (positive if score > ``pos``, negative if < ``neg``). Label
and score therefore never disagree.

Runtime: a batch of token lists (:func:`classify_tokens`); the weight file is a
small TSV (``feature<TAB>w_negative<TAB>w_neutral<TAB>w_positive``), held as a
`HashedIndex` and a numpy matrix (~1 MB instead of ~6 MB of dict and tuples).
No fitting library is imported here: the worker must stay small and fast.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np

from vocflow.streams.stages.sentiment import review_signals
from vocflow.streams.stages.textanalysis import DATA_DIR, tokenize
from vocflow.streams.stages.wordtable import HashedIndex

__all__ = [
    "LABELS",
    "SentimentLabel",
    "SentimentResult",
    "Thresholds",
    "Weights",
    "class_features",
    "classify",
    "classify_tokens",
    "label_of",
    "load_weights",
]

SentimentLabel = Literal["negative", "neutral", "positive"]
LABELS: Final[tuple[SentimentLabel, SentimentLabel, SentimentLabel]] = (
    "negative",
    "neutral",
    "positive",
)
WEIGHTS_PATH: Final = DATA_DIR / "sentiment_3class.txt"
BIAS: Final = "__bias__"

# Substrings that make a text a question or a request. Sparse features, so the
# fit decides how much each is worth (怎么 is also rhetorical: 怎么这么慢).
QUESTION_CUES: Final = (
    "吗",
    "嘛",
    "怎么",
    "如何",
    "请问",
    "能不能",
    "能否",
    "可不可以",
    "可以吗",
    "是否",
    "多少",
    "哪里",
    "哪个",
    "什么时候",
    "想问",
    "问下",
    "问一下",
    "咨询",
    "麻烦",
    "帮我",
    "有没有",
    "?",
    "？",
)
_EXCLAIM: Final = ("!", "！")
_QUESTION_MARKS: Final = ("?", "？")
_LENGTH_BUCKETS: Final = (6, 15, 40, 100)  # characters; above the last: "long"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Label boundaries on the score: positive if > pos, negative if < neg."""

    pos: float
    neg: float


@dataclass(frozen=True, slots=True)
class SentimentResult:
    score: float  # P(positive) - P(negative), rounded to 4 places
    label: SentimentLabel
    probabilities: tuple[float, float, float]  # in LABELS order


def label_of(score: float, thresholds: Thresholds) -> SentimentLabel:
    """The class of a score: the thresholds are exclusive (== pos is neutral)."""
    if score > thresholds.pos:
        return "positive"
    if score < thresholds.neg:
        return "negative"
    return "neutral"


def class_features(tokens: Sequence[str], text: str | None = None) -> dict[str, float]:
    """Feature name -> value for one text (binary features have value 1.0).

    `text` defaults to the joined tokens (cues are substrings of the text, so a
    cue split across tokens still counts). The fit uses this; prediction uses
    the same two parts (:func:`_feature_parts`) without merging them, so the
    two can never drift apart.
    """
    binary, extras = _feature_parts(tokens, text)
    feats = dict.fromkeys(binary, 1.0)
    feats.update(extras)  # prefixes differ: nothing is overwritten
    return feats


def _feature_parts(tokens: Sequence[str], text: str | None) -> tuple[set[str], dict[str, float]]:
    """(the review model's binary features, everything else with its value)."""
    raw = "".join(tokens) if text is None else text
    sig = review_signals(tokens)
    extras: dict[str, float] = {
        BIAS: 1.0,
        "d:review": sig.score,
        "d:rule": math.tanh(sig.rule / 2.0),
        "d:logit": sig.logit / 4.0,
    }
    if sig.request:
        extras["q:request"] = 1.0
    for cue in QUESTION_CUES:
        if cue in raw:
            extras["q:" + cue] = 1.0
            extras["q:any"] = 1.0
    q = sum(raw.count(m) for m in _QUESTION_MARKS)
    e = sum(raw.count(m) for m in _EXCLAIM)
    if q:
        extras["p:?" if q == 1 else "p:??"] = 1.0
    if e:
        extras["p:!" if e == 1 else "p:!!"] = 1.0
    n = len(raw.strip())
    bucket = next((str(b) for b in _LENGTH_BUCKETS if n <= b), "long")
    extras["len:" + bucket] = 1.0
    return sig.features, extras


def classify(text: str | None, tokens: Sequence[str] | None = None) -> SentimentResult:
    """Score and label one text (see :func:`classify_tokens` for batches)."""
    if tokens is None:
        tokens = tokenize(text) if text else []
    return classify_tokens([tokens], [text])[0]


def classify_tokens(
    batch: Sequence[Sequence[str]],
    texts: Sequence[str | None] | None = None,
    model: Weights | None = None,
) -> list[SentimentResult]:
    """Score and label a batch of token lists (`texts`: their texts, for the cues;
    `model`: other weights than the shipped ones, as the fit uses).

    An empty token list (no text) is neutral with score 0.0, whatever the model.
    The review model's ~150 binary features of a text are found at once and their
    weight rows summed; the ~10 others are weighted by their values.
    """
    model = model or _get_model()
    index, matrix = model.features, model.matrix
    texts = texts if texts is not None else [None] * len(batch)
    out: list[SentimentResult] = []
    for tokens, text in zip(batch, texts, strict=True):
        if not tokens:
            out.append(_EMPTY)
            continue
        binary, extras = _feature_parts(tokens, text)
        z = matrix[index.rows(binary)].sum(axis=0)
        at = index.positions(extras)
        known = at >= 0
        values = np.fromiter(extras.values(), np.float64, len(extras))
        z += values[known] @ matrix[at[known]]
        zn, zu, zp = z.tolist()
        top = max(zn, zu, zp)
        en, eu, ep = math.exp(zn - top), math.exp(zu - top), math.exp(zp - top)
        total = en + eu + ep
        pn, pu, pp = en / total, eu / total, ep / total
        s = round(max(-1.0, min(1.0, pp - pn)), 4) + 0.0  # + 0.0: no -0.0 in JSON
        out.append(SentimentResult(s, label_of(s, model.thresholds), (pn, pu, pp)))
    return out


# ----------------------------------------------------------------- weights

_EMPTY: Final = SentimentResult(0.0, "neutral", (0.0, 1.0, 0.0))


@dataclass(frozen=True, slots=True)
class Weights:
    """Loaded weight file: the row of each feature, its weights in LABELS order
    (that row of `matrix`), and the thresholds."""

    features: HashedIndex
    matrix: np.ndarray  # (features, 3), LABELS order
    thresholds: Thresholds

    def of(self, feature: str) -> tuple[float, float, float] | None:
        """The weights of one feature, None if the file has none."""
        rows = self.features.rows([feature])
        return tuple(self.matrix[rows[0]].tolist()) if rows.size else None  # type: ignore[return-value]


_lock = threading.Lock()
_model: Weights | None = None


def load_weights(path: Path = WEIGHTS_PATH) -> Weights:
    """Read the TSV weight file; a missing or malformed file is a clear error
    (the worker must not start scoring everything neutral in silence). A feature
    listed twice keeps its last line."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: 3-class sentiment weights missing; "
            "run `python -m vocflow.streams.tools.sentiment_fit`"
        )
    values = array("d")
    found: dict[str, float] = {}

    def features(f: Iterator[str]) -> Iterator[str]:
        for lineno, line in enumerate(f, start=1):
            if line.startswith("#") or not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if parts[0] in ("__threshold_pos__", "__threshold_neg__"):
                found[parts[0]] = float(parts[1])
            elif len(parts) == 4:
                values.extend((float(parts[1]), float(parts[2]), float(parts[3])))
                yield parts[0]
            else:
                raise ValueError(f"{path}:{lineno}: expected feature and 3 weights")

    with path.open(encoding="utf-8") as f:
        index = HashedIndex(features(f))
    pos, neg = found.get("__threshold_pos__"), found.get("__threshold_neg__")
    if pos is None or neg is None or not index.rows([BIAS]).size:
        raise ValueError(f"{path}: thresholds or bias missing")
    matrix = np.frombuffer(values, np.float64).reshape(-1, 3)
    return Weights(index, matrix, Thresholds(pos, neg))


def thresholds() -> Thresholds:
    """The calibrated thresholds of the shipped weights."""
    return _get_model().thresholds


def reload() -> None:
    """Forget the loaded weights (after a refit in the same process)."""
    global _model
    with _lock:
        _model = None


def _get_model() -> Weights:
    global _model
    m = _model
    if m is None:
        with _lock:
            if _model is None:
                _model = load_weights()
            m = _model
    return m
