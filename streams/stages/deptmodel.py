"""The learned department classifier's runtime: features, weights file, batch prediction.

Why a model beside the rules: keyword rules route by the product word they see
(宽带, 话费), so a complaint about an installer, a how-to question that names
the network or a pre-sales question about a plan land in the wrong department
on text nobody here wrote. A linear model over character and word n-grams,
trained on texts written independently of the rules, generalises better; the
rules keep the decisions they pin (escalations, `tagging.tag`).

Why no scikit-learn here: the model is *trained* with scikit-learn
(`tools/train_dept.py`: TF-IDF over these features, multinomial logistic
regression), but the worker only needs ``softmax(W · x + b)``. Importing
scikit-learn and scipy would cost the worker ~60 MB and a second of start-up,
so the weights are exported to a small text file and predicted with numpy over
a whole batch. A unit test checks that the probabilities equal scikit-learn's
``predict_proba`` (to 1e-6).

Features (`features`): from the jieba tokens enrich already computed (no second
segmentation): ``w:token`` and ``b:token|token`` (bigrams, not across
punctuation); from the masked, lower-cased text with digits folded to 0:
character 1-3-grams ``c:...`` (robust to segmentation and typos). Weighting as
scikit-learn's ``TfidfVectorizer(binary=True, norm="l2")``: a known feature
counts its idf, the row is divided by its L2 norm over known features.

File format (UTF-8 text, tab-separated; ``#`` lines are comments)::

    version    dept-2026.12-1
    classes    billing  complaints  network  sales_retention  tech_support
    threshold  0.55          # below: triage with the two best candidates
    bias       b1 ... bk
    f  <feature>  <idf>  w1 ... wk
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Final

import numpy as np

from vocflow.streams.stages.tagging import ModelVote

DATA_DIR: Final = Path(str(resources.files("vocflow.streams") / "data"))
DEFAULT_MODEL_PATH: Final = DATA_DIR / "dept_model.txt"

_DIGIT_RE: Final = re.compile(r"\d")
_SPACE_RE: Final = re.compile(r"\s+")
# Tokens that end a word run: punctuation, symbols, emoji (anything not a word character).
_PUNCT_RE: Final = re.compile(r"^[\W_]+$")


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and line."""


def _norm_text(text: str) -> str:
    return _DIGIT_RE.sub("0", _SPACE_RE.sub(" ", text.lower())).strip()


def features(text: str, tokens: Sequence[str]) -> set[str]:
    """Distinct features of one (masked) text and its jieba tokens; see the module doc."""
    feats: set[str] = set()
    add = feats.add
    prev = ""
    for raw in tokens:
        if not raw or raw.isspace():
            continue
        if _PUNCT_RE.match(raw):
            prev = ""
            continue
        tok = _DIGIT_RE.sub("0", raw.lower())
        add("w:" + tok)
        if prev:
            add(f"b:{prev}|{tok}")
        prev = tok
    s = _norm_text(text)
    n = len(s)
    for i in range(n):
        add("c:" + s[i])
        if i + 1 < n:
            add("c:" + s[i : i + 2])
            if i + 2 < n:
                add("c:" + s[i : i + 3])
    return feats


class DeptModel:
    """Weights of one trained model version (immutable; share between tasks)."""

    def __init__(
        self,
        version: str,
        classes: Sequence[str],
        threshold: float,
        bias: np.ndarray,
        vocab: dict[str, int],
        idf: np.ndarray,
        weights: np.ndarray,
        meta: dict[str, str] | None = None,
    ) -> None:
        self.version = version
        self.classes = tuple(classes)
        self.threshold = threshold
        self.bias = bias
        self.vocab = vocab
        self.idf = idf
        self.idf_sq = idf * idf
        # idf folded into the weights: z = (sum_f idf_f * w_f) / norm + b
        self.weighted = weights * idf[:, None]
        self.meta = meta or {}

    @property
    def n_features(self) -> int:
        return len(self.vocab)

    def decision(self, batch: Sequence[Iterable[str]]) -> np.ndarray:
        """Logits (n, k) for a batch of feature sets, in one pass of numpy."""
        n = len(batch)
        vocab = self.vocab
        rows: list[int] = []
        cols: list[int] = []
        for r, feats in enumerate(batch):
            for f in feats:
                j = vocab.get(f)
                if j is not None:
                    cols.append(j)
                    rows.append(r)
        k = len(self.classes)
        z = np.empty((n, k), dtype=np.float64)
        if not cols:
            z[:] = self.bias
            return z
        r_arr = np.asarray(rows, dtype=np.intp)
        c_arr = np.asarray(cols, dtype=np.intp)
        norms = np.sqrt(np.bincount(r_arr, weights=self.idf_sq[c_arr], minlength=n))
        norms[norms == 0.0] = 1.0
        w = self.weighted[c_arr]
        for j in range(k):
            z[:, j] = np.bincount(r_arr, weights=w[:, j], minlength=n)
        z /= norms[:, None]
        z += self.bias
        return z

    def predict_proba(self, batch: Sequence[Iterable[str]]) -> np.ndarray:
        """Class probabilities (n, k), columns in `classes` order (softmax of the logits)."""
        z = self.decision(batch)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def predict(self, batch: Sequence[Iterable[str]]) -> list[ModelVote]:
        """Ranked votes for a batch (what the voc stage calls once per batch)."""
        probs = self.predict_proba(batch)
        order = np.argsort(-probs, axis=1, kind="stable")
        classes, version, threshold = self.classes, self.version, self.threshold
        return [
            ModelVote(version, tuple((classes[j], float(p[j])) for j in o), threshold)
            for p, o in zip(probs, order, strict=True)
        ]

    def predict_texts(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[ModelVote]:
        """(masked text, tokens) pairs -> votes."""
        return self.predict([features(text, tokens) for text, tokens in items])


# --------------------------------------------------------------------- file I/O


def _floats(parts: Sequence[str], where: str) -> list[float]:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ModelFileError(f"{where}: not a number in {list(parts)!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ModelFileError(f"{where}: weights must be finite")
    return values


def parse_model(text: str, filename: str = "<model>") -> DeptModel:
    """Parse a weights file; raise ModelFileError (file:line: reason) on any problem."""
    header: dict[str, list[str]] = {}
    meta: dict[str, str] = {}
    vocab: dict[str, int] = {}
    idf: list[float] = []
    rows: list[list[float]] = []
    k = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        where = f"{filename}:{lineno}"
        if parts[0] == "f":
            if not k:
                raise ModelFileError(f"{where}: feature line before the 'classes' line")
            if len(parts) != 3 + k:
                raise ModelFileError(f"{where}: expected feature, idf and {k} weights")
            if parts[1] in vocab:
                raise ModelFileError(f"{where}: duplicate feature {parts[1]!r}")
            values = _floats(parts[2:], where)
            vocab[parts[1]] = len(idf)
            idf.append(values[0])
            rows.append(values[1:])
        elif parts[0] == "meta" and len(parts) == 3:
            meta[parts[1]] = parts[2]
        else:
            header[parts[0]] = parts[1:]
            if parts[0] == "classes":
                k = len(parts) - 1
    for key in ("version", "classes", "threshold", "bias"):
        if key not in header:
            raise ModelFileError(f"{filename}: no '{key}' line")
    if k < 2:
        raise ModelFileError(f"{filename}: a model needs at least two classes")
    bias = _floats(header["bias"], f"{filename}: bias")
    if len(bias) != k:
        raise ModelFileError(f"{filename}: {len(bias)} bias values for {k} classes")
    (threshold,) = _floats(header["threshold"][:1], f"{filename}: threshold")
    if not 0.0 <= threshold <= 1.0:
        raise ModelFileError(f"{filename}: threshold {threshold} is not in [0, 1]")
    if not vocab:
        raise ModelFileError(f"{filename}: no feature lines")
    return DeptModel(
        version=header["version"][0],
        classes=header["classes"],
        threshold=threshold,
        bias=np.asarray(bias, dtype=np.float64),
        vocab=vocab,
        idf=np.asarray(idf, dtype=np.float64),
        weights=np.asarray(rows, dtype=np.float64).reshape(len(rows), k),
        meta=meta,
    )


def load_model(path: str | Path) -> DeptModel:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{p}: cannot read the model file: {exc}") from None
    return parse_model(text, str(p))


def format_model(
    version: str,
    classes: Sequence[str],
    threshold: float,
    bias: Sequence[float],
    vocab: Sequence[str],
    idf: Sequence[float],
    weights: np.ndarray,
    meta: dict[str, str] | None = None,
    comments: Sequence[str] = (),
) -> str:
    """The weights file text (`tools/train_dept.py` writes it).

    Weights keep 9 significant digits: probabilities stay within 1e-8 of the
    full-precision model, and the file is half the size of exact reprs."""
    out = [f"# {c}" for c in comments]
    out.append(f"version\t{version}")
    out.append("classes\t" + "\t".join(classes))
    out.append(f"threshold\t{threshold!r}")
    out.append("bias\t" + "\t".join(_g9(b) for b in bias))
    for key, value in (meta or {}).items():
        out.append(f"meta\t{key}\t{value}")
    for j, f in enumerate(vocab):
        ws = "\t".join(_g9(w) for w in weights[j])
        out.append(f"f\t{f}\t{_g9(idf[j])}\t{ws}")
    return "\n".join(out) + "\n"


def _g9(value: float) -> str:
    return format(float(value), ".9g")


_lock = threading.Lock()
_default: DeptModel | None = None


def default_model() -> DeptModel:
    """The shipped model (loaded once; the worker swaps in pushed versions)."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = load_model(DEFAULT_MODEL_PATH)
    return _default
