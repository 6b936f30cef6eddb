"""`vocflow train`: fit the department model on the shipped corpus plus collected labels.

Why this shape:
- The corpus (streams/data/corpus/*.jsonl) was written for vocflow by
  independent writers who had not seen the rules, so the model learns how
  customers write, not what the rules look for. Corrections departments send
  back ("not ours -> X", `Resolution.outcome = reassigned`) are added as labels
  (`--labels`, exported by `vocflow labels export` from the label store).
- Splits are fixed by a hash of the id (`split_of`), so they never move when
  the corpus grows or the run is repeated: ``dev`` chooses the regularisation
  and the confidence threshold, ``holdout`` only scores (the before/after
  figures printed here, and the gate a pushed model must pass in the worker,
  `worker/views.ModelHolder`). Collected labels only ever train.
- Deterministic: sorted vocabulary, lbfgs, no random state; the version is a
  hash of the training data and parameters, so the same inputs give the same
  file byte for byte.

scikit-learn is imported here only (extra `train`); the worker predicts from
the exported weights file (stages/deptmodel.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vocflow.streams.stages.deptcorpus import (
    DEPARTMENTS,
    LabelledText,
    Prepared,
    decide,
    prepare,
    split_of,
)
from vocflow.streams.stages.deptmodel import DeptModel, format_model, parse_model
from vocflow.streams.stages.rules import RuleSet
from vocflow.streams.tools.evaluate import FieldScore, score

C_GRID = (1.0, 10.0, 100.0, 300.0, 1000.0)
THRESHOLD_GRID = tuple(round(0.20 + 0.05 * i, 2) for i in range(14))  # 0.20 .. 0.85
MAX_DEV_ABSTENTION = 0.04  # the goal allows 5 % on new text; keep a margin
MIN_DF = 2


# ---------------------------------------------------------------------- fitting


def fit(feats: Sequence[set[str]], labels: Sequence[str], c: float) -> tuple[Any, Any]:
    """TF-IDF (binary, l2) + multinomial logistic regression; returns (vectorizer, model)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(
        analyzer=_identity, binary=True, min_df=MIN_DF, norm="l2", lowercase=False
    )
    x = vec.fit_transform([sorted(f) for f in feats])
    clf = LogisticRegression(C=c, max_iter=5000, tol=1e-6)
    clf.fit(x, list(labels))
    return vec, clf


def _identity(doc: list[str]) -> list[str]:
    return doc


def sklearn_proba(vec: Any, clf: Any, feats: Sequence[set[str]]) -> np.ndarray:
    """scikit-learn's own probabilities (the reference the runtime must equal)."""
    return np.asarray(clf.predict_proba(vec.transform([sorted(f) for f in feats])))


def export(vec: Any, clf: Any, version: str, threshold: float, meta: dict[str, str]) -> DeptModel:
    """The runtime model of a fitted pair (its text is `format_model` of the same values)."""
    return parse_model(export_text(vec, clf, version, threshold, meta), version)


def export_text(vec: Any, clf: Any, version: str, threshold: float, meta: dict[str, str]) -> str:
    vocab = vec.get_feature_names_out()
    weights = np.asarray(clf.coef_, dtype=np.float64).T  # (features, classes)
    return format_model(
        version=version,
        classes=[str(c) for c in clf.classes_],
        threshold=threshold,
        bias=[float(b) for b in clf.intercept_],
        vocab=[str(v) for v in vocab],
        idf=[float(v) for v in vec.idf_],
        weights=weights,
        meta=meta,
        comments=[
            "vocflow department model (stages/deptmodel.py); written by `vocflow train`",
            "features: jieba words/bigrams + char 1-3-grams; tf-idf (binary, l2); "
            "multinomial logistic regression (scikit-learn)",
        ],
    )


# ------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class SplitFigures:
    split: str
    n: int
    department: FieldScore
    abstained: float  # share sent to the default department (unassigned / triage)

    def line(self, label: str) -> str:
        d = self.department
        return (
            f"{label:<26} {self.split:<8} n={self.n:<5} acc {d.accuracy:.3f}  "
            f"P_mac {_macro(d, 'precision'):.3f}  R_mac {_macro(d, 'recall'):.3f}  "
            f"abstained {self.abstained:.3f}"
        )


def _macro(s: FieldScore, what: str) -> float:
    """Macro over the real departments (the abstention class is reported on its own)."""
    vals = [getattr(c, what) for k, c in s.per_class.items() if k in DEPARTMENTS]
    return sum(vals) / len(vals) if vals else 0.0


def figures(
    split: str, p: Prepared, rules: RuleSet, model: DeptModel | None, threshold: float | None = None
) -> SplitFigures:
    deps, _, _ = decide(p, rules, model, threshold)
    gold = [r.department for r in p.rows]
    abst = sum(1 for x in deps if x not in DEPARTMENTS)
    return SplitFigures(split, len(gold), score("department", gold, deps), abst / max(1, len(gold)))


def choose_threshold(p: Prepared, rules: RuleSet, model: DeptModel) -> float:
    """Largest threshold whose dev abstention stays within MAX_DEV_ABSTENTION."""
    best = THRESHOLD_GRID[0]
    for t in THRESHOLD_GRID:
        if figures("dev", p, rules, model, t).abstained <= MAX_DEV_ABSTENTION:
            best = t
    return best


def _log_loss(proba: np.ndarray, classes: Sequence[str], gold: Sequence[str]) -> float:
    col = {c: j for j, c in enumerate(classes)}
    return float(-np.mean([np.log(max(proba[i, col[g]], 1e-15)) for i, g in enumerate(gold)]))


# ---------------------------------------------------------------------- train


@dataclass
class TrainReport:
    version: str
    c: float
    threshold: float
    n_train: int
    n_corrections: int
    n_dev: int
    n_holdout: int
    n_features: int
    sources: dict[str, int]
    dev_log_loss: dict[float, float]
    lines: list[str] = field(default_factory=list)
    before: SplitFigures | None = None
    after: SplitFigures | None = None
    text: str = ""

    @property
    def improved(self) -> bool:
        """Not worse than the model in force on the holdout (the push gate's test)."""
        if self.before is None or self.after is None:
            return True
        return not is_worse(self.after.department, self.before.department)


def is_worse(new: FieldScore, old: FieldScore) -> bool:
    """The gate (`deptcorpus.gate_score`): lower holdout macro F1 over the departments."""
    return _macro(new, "f1") < _macro(old, "f1") - 1e-12


def train(
    rules: RuleSet,
    corpus: Sequence[LabelledText],
    corrections: Sequence[LabelledText] = (),
    current: DeptModel | None = None,
) -> TrainReport:
    """Fit, choose C and the threshold on dev, score before/after on holdout.

    Corrections train only; dev and holdout come from the shipped corpus alone,
    so the before/after figures stay comparable from run to run."""
    rows = list(corpus) + list(corrections)
    prep = prepare(rows)
    n_corpus = len(corpus)
    tr = [i for i in range(len(rows)) if i >= n_corpus or split_of(rows[i].id) == "train"]
    dv = [i for i in range(n_corpus) if split_of(rows[i].id) == "dev"]
    ho = [i for i in range(n_corpus) if split_of(rows[i].id) == "holdout"]
    ptr, pdv, pho = prep.subset(tr), prep.subset(dv), prep.subset(ho)
    y = [r.department for r in ptr.rows]
    losses: dict[float, float] = {}
    for c in C_GRID:
        vec, clf = fit(ptr.feats, y, c)
        proba = sklearn_proba(vec, clf, pdv.feats)
        losses[c] = _log_loss(proba, list(clf.classes_), [r.department for r in pdv.rows])
    best_c = min(C_GRID, key=lambda c: (losses[c], c))
    vec, clf = fit(ptr.feats, y, best_c)
    digest = hashlib.sha256()
    for r in ptr.rows:
        digest.update(f"{r.id}\t{r.department}\t{r.text}\n".encode())
    digest.update(f"C={best_c};min_df={MIN_DF}".encode())
    version = f"dept-{len(ptr.rows)}-{digest.hexdigest()[:10]}"
    draft = export(vec, clf, version, 0.5, {})
    threshold = choose_threshold(pdv, rules, draft)
    sources = dict(sorted(Counter(r.source for r in ptr.rows).items()))
    meta = {
        "C": repr(best_c),
        "min_df": str(MIN_DF),
        "train_rows": str(len(ptr.rows)),
        "corrections": str(len(corrections)),
        "sources": ",".join(f"{k}={v}" for k, v in sources.items()),
    }
    text = export_text(vec, clf, version, threshold, meta)
    model = parse_model(text, version)
    report = TrainReport(
        version=version,
        c=best_c,
        threshold=threshold,
        n_train=len(ptr.rows),
        n_corrections=len(corrections),
        n_dev=len(pdv.rows),
        n_holdout=len(pho.rows),
        n_features=model.n_features,
        sources=sources,
        dev_log_loss=losses,
        text=text,
    )
    report.lines.append(figures("dev", pdv, rules, None).line("rules alone"))
    report.lines.append(figures("dev", pdv, rules, model).line(f"rules + {version}"))
    no_pins = dataclasses.replace(rules, model_pin_priority=10**9)
    report.lines.append(figures("dev", pdv, no_pins, model).line("model alone (no pins)"))
    report.before = figures("holdout", pho, rules, current)
    report.after = figures("holdout", pho, rules, model)
    report.lines.append(
        report.before.line("before: " + (current.version if current else "rules alone"))
    )
    report.lines.append(report.after.line(f"after: {version}"))
    return report


def format_train_report(r: TrainReport) -> str:
    out = [
        f"department model {r.version}: {r.n_train} training texts "
        f"({r.n_corrections} collected corrections), {r.n_features} features",
        "sources: " + ", ".join(f"{k} {v}" for k, v in r.sources.items()),
        "dev log-loss by C: " + ", ".join(f"{c:g}: {v:.4f}" for c, v in r.dev_log_loss.items()),
        f"chosen on dev: C={r.c:g}, threshold {r.threshold:.2f} "
        f"(largest with dev abstention <= {MAX_DEV_ABSTENTION:.0%})",
        "",
        *r.lines,
        "",
        "holdout per department (after): class, precision, recall, gold, predicted",
    ]
    if r.after is not None:
        for cls, c in r.after.department.per_class.items():
            out.append(
                f"  {cls:<18} {c.precision:>6.3f} {c.recall:>6.3f} {c.support:>5} {c.predicted:>5}"
            )
    out.append(
        "verdict: "
        + ("not worse than the model in force" if r.improved else "WORSE than the model in force")
    )
    return "\n".join(out)
