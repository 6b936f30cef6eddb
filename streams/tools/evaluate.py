"""Measure a rules file (and optionally a sentiment scorer) against labelled contacts.

Rules are tuned by people, and every tuning risks fixing one sentence while
breaking ten unseen ones. The labelled set therefore carries a `split`: "dev"
rows may be looked at while editing rules, "holdout" rows may not; the report
shows both, and a large gap between them means the rules memorise sentences
instead of generalising (PDCA "check" step of DOMAIN.md's closed loop).

Metrics, per tag field (department, business_type, support_system,
bearer_network, urgency when labelled) and per split:
- per class precision / recall / F1 / support, with 0 where undefined (a class
  never predicted has precision 0, as scikit-learn's zero_division=0);
- macro averages over every class seen in the gold labels or the predictions
  (an invented class that is never right drags precision down, as it should);
- accuracy (= micro precision = micro recall for single-label data).
Sentiment is scored as 3 classes (positive / neutral / negative), from one of:
- `contact_sentiment=True`: the label the prepared contact carries
  (`analysis.sentiment_class`, set by the real enrichment with the model's own
  calibrated thresholds; no text counts as neutral), i.e. what production
  emits; this is what `vocflow eval` uses;
- `sentiment_fn(text) -> score in [-1, 1]` with thresholds: positive if
  score > pos_threshold, negative if < neg_threshold (any other scorer).
The report adds the sentiment confusion matrix and neutral recall, because a
scorer that calls every inquiry negative can still look fine on accuracy.

With a department model (`model`, stages/deptmodel.py) the department is
decided as the voc stage decides it (rules pin escalations, the model the
rest, triage below its threshold -> the default department, counted as
abstained); every item's prediction, its source (rule id or model version) and
the model's probability are kept for `--json` (`report_json`).

Texts reach `tag` through a caller-provided `prepare(text, channel)`, so this
module does not depend on the text-analysis stages; `default_prepare`
(`tagging.bare_contact`) builds a bare EnrichedContact (no keywords, sentiment
0, unknown customer).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vocflow.schemas.derived.enriched import EnrichedContact, Tags
from vocflow.streams.core.configfile import read_jsonl
from vocflow.streams.stages.deptcorpus import channel_of
from vocflow.streams.stages.deptmodel import DeptModel, features
from vocflow.streams.stages.rules import RuleSet
from vocflow.streams.stages.tagging import ModelVote, tag
from vocflow.streams.stages.tagging import bare_contact as default_prepare

TAG_LABEL_FIELDS: tuple[str, ...] = (
    "department",
    "business_type",
    "support_system",
    "bearer_network",
    "urgency",
)
SENTIMENT_CLASSES = ("positive", "neutral", "negative")
SPLITS_ORDER = ("all", "dev", "holdout")

Prepare = Callable[[str, str], EnrichedContact]
PrepareTokens = Callable[[str, str], tuple[EnrichedContact, Sequence[str]]]

SentimentFn = Callable[[str], float]


# --------------------------------------------------------------------- input


@dataclass(frozen=True)
class LabelledContact:
    line: int
    id: str
    text: str
    channel: str
    split: str
    labels: dict[str, str]  # field -> gold value (urgency may be absent)
    sentiment: str | None


def load_labelled(path: str | Path) -> list[LabelledContact]:
    """Read the JSONL set; a malformed line is an error naming file and line,
    because silently skipping rows would inflate or deflate every figure."""
    rows: list[LabelledContact] = []
    p = Path(path)
    for lineno, obj in read_jsonl(p):
        missing = [k for k in ("text", "channel", "department") if not obj.get(k)]
        if missing:
            raise ValueError(f"{p}:{lineno}: missing {', '.join(missing)}")
        try:
            channel = channel_of(str(obj["channel"]))
        except ValueError as exc:
            raise ValueError(f"{p}:{lineno}: {exc}") from None
        sentiment = obj.get("sentiment")
        if sentiment is not None and sentiment not in SENTIMENT_CLASSES:
            raise ValueError(f"{p}:{lineno}: sentiment must be one of {SENTIMENT_CLASSES}")
        labels = {f: str(obj[f]) for f in TAG_LABEL_FIELDS if obj.get(f) is not None}
        rows.append(
            LabelledContact(
                line=lineno,
                id=str(obj.get("id", f"line-{lineno}")),
                text=str(obj["text"]),
                channel=channel,
                split=str(obj.get("split", "dev")),
                labels=labels,
                sentiment=sentiment,
            )
        )
    return rows


# ------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class ClassScore:
    precision: float
    recall: float
    f1: float
    support: int  # gold count
    predicted: int


@dataclass(frozen=True)
class FieldScore:
    field: str
    n: int
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: dict[str, ClassScore]
    confusion: dict[tuple[str, str], int]  # (gold, predicted) -> count, errors only


def score(field_name: str, gold: Sequence[str], pred: Sequence[str]) -> FieldScore:
    """Precision/recall/F1 per class and macro, accuracy; see module docstring."""
    if len(gold) != len(pred):
        raise ValueError("gold and predicted lengths differ")
    n = len(gold)
    classes = sorted(set(gold) | set(pred))
    gold_count = Counter(gold)
    pred_count = Counter(pred)
    correct = Counter(g for g, p in zip(gold, pred, strict=True) if g == p)
    per_class: dict[str, ClassScore] = {}
    for c in classes:
        tp = correct[c]
        precision = tp / pred_count[c] if pred_count[c] else 0.0
        recall = tp / gold_count[c] if gold_count[c] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = ClassScore(precision, recall, f1, gold_count[c], pred_count[c])
    k = len(classes)
    confusion = Counter((g, p) for g, p in zip(gold, pred, strict=True) if g != p)
    return FieldScore(
        field=field_name,
        n=n,
        accuracy=sum(correct.values()) / n if n else 0.0,
        macro_precision=sum(s.precision for s in per_class.values()) / k if k else 0.0,
        macro_recall=sum(s.recall for s in per_class.values()) / k if k else 0.0,
        macro_f1=sum(s.f1 for s in per_class.values()) / k if k else 0.0,
        per_class=per_class,
        confusion=dict(confusion),
    )


def sentiment_class(
    score_value: float, pos_threshold: float = 0.1, neg_threshold: float = -0.1
) -> str:
    """Map a score in [-1, 1] to positive / neutral / negative."""
    if score_value > pos_threshold:
        return "positive"
    if score_value < neg_threshold:
        return "negative"
    return "neutral"


@dataclass(frozen=True)
class Miss:
    id: str
    line: int
    split: str
    field: str
    gold: str
    predicted: str
    rule_id: str
    text: str


@dataclass(frozen=True)
class ItemPrediction:
    id: str
    split: str
    gold: str
    predicted: str
    source: str  # the department TagValue's rule_id: a rule id, model:<v>, triage:<v>
    probability: float | None  # the model's best-class probability
    candidates: tuple[tuple[str, float], ...] = ()


@dataclass
class EvalReport:
    path: str
    rules_version: str
    n: int
    splits: dict[str, dict[str, FieldScore]]  # split -> field -> score
    misses: list[Miss] = field(default_factory=list)
    tag_seconds: float = 0.0
    pos_threshold: float = 0.1
    neg_threshold: float = -0.1
    model_version: str | None = None
    items: list[ItemPrediction] = field(default_factory=list)
    abstained: dict[str, float] = field(default_factory=dict)  # split -> share
    default_department: str = "unassigned"
    sentiment_source: str = "score"  # "score" (thresholds) or "contact" (its label)

    @property
    def contacts_per_second(self) -> float:
        return self.n / self.tag_seconds if self.tag_seconds > 0 else 0.0


def _rule_of(tags: Tags, field_name: str) -> str:
    if field_name == "urgency":
        return tags.urgency_rule_id
    return getattr(tags, field_name).rule_id


def _value_of(tags: Tags, field_name: str) -> str:
    if field_name == "urgency":
        return tags.urgency.value
    return getattr(tags, field_name).value


def evaluate_rows(
    rows: Iterable[LabelledContact],
    rules: RuleSet,
    *,
    prepare: Prepare = default_prepare,
    sentiment_fn: SentimentFn | None = None,
    pos_threshold: float = 0.1,
    neg_threshold: float = -0.1,
    contact_sentiment: bool = False,
    path: str = "<rows>",
    model: DeptModel | None = None,
    prepare_tokens: PrepareTokens | None = None,
) -> EvalReport:
    """Tag every row and score the tags (and sentiment when a scorer is given or
    `contact_sentiment` is set).

    With `model`, `prepare_tokens` gives each text's contact and tokens; the
    timing then covers classification (one batch) and tagging."""
    if sentiment_fn is not None and contact_sentiment:
        raise ValueError("give sentiment_fn or contact_sentiment, not both")
    rows = list(rows)
    votes: list[ModelVote | None] = [None] * len(rows)
    if model is not None:
        if prepare_tokens is None:
            raise ValueError("a department model needs prepare_tokens")
        pairs = [prepare_tokens(r.text, r.channel) for r in rows]
        contacts = [c for c, _ in pairs]
        t0 = time.perf_counter()
        votes = list(model.predict([features(c.event.text or "", t) for c, t in pairs]))
    else:
        contacts = [prepare(r.text, r.channel) for r in rows]
        t0 = time.perf_counter()
    all_tags = [tag(c, rules, v) for c, v in zip(contacts, votes, strict=True)]
    tag_seconds = time.perf_counter() - t0
    items = [
        ItemPrediction(
            id=r.id,
            split=r.split,
            gold=r.labels.get("department", ""),
            predicted=t.department.value,
            source=t.department.rule_id,
            probability=round(v.probability, 6) if v is not None else None,
            candidates=tuple((d, round(p, 6)) for d, p in v.candidates()) if v else (),
        )
        for r, t, v in zip(rows, all_tags, votes, strict=True)
    ]

    split_names = ["all", *sorted({r.split for r in rows}, key=_split_key)]
    splits: dict[str, dict[str, FieldScore]] = {}
    misses: list[Miss] = []
    sentiments: list[str | None] = [None] * len(rows)
    if sentiment_fn is not None:
        sentiments = [
            sentiment_class(sentiment_fn(r.text), pos_threshold, neg_threshold) for r in rows
        ]
    elif contact_sentiment:
        sentiments = [_contact_class(c) for c in contacts]
    for split in split_names:
        idx = [i for i, r in enumerate(rows) if split in ("all", r.split)]
        fields: dict[str, FieldScore] = {}
        for f in TAG_LABEL_FIELDS:
            sel = [i for i in idx if f in rows[i].labels]
            if not sel:
                continue
            gold = [rows[i].labels[f] for i in sel]
            pred = [_value_of(all_tags[i], f) for i in sel]
            fields[f] = score(f, gold, pred)
            if split == "all":
                misses.extend(
                    Miss(
                        rows[i].id,
                        rows[i].line,
                        rows[i].split,
                        f,
                        g,
                        p,
                        _rule_of(all_tags[i], f),
                        rows[i].text,
                    )
                    for i, g, p in zip(sel, gold, pred, strict=True)
                    if g != p
                )
        if sentiment_fn is not None or contact_sentiment:
            sel = [i for i in idx if rows[i].sentiment is not None]
            if sel:
                fields["sentiment"] = score(
                    "sentiment",
                    [rows[i].sentiment or "" for i in sel],
                    [sentiments[i] or "" for i in sel],
                )
        splits[split] = fields
    default = rules.defaults.department
    abstained = {}
    for split in split_names:
        sel = [it for it in items if split in ("all", it.split)]
        abstained[split] = (
            sum(1 for it in sel if it.predicted == default) / len(sel) if sel else 0.0
        )
    return EvalReport(
        path=path,
        rules_version=rules.version,
        n=len(rows),
        splits=splits,
        misses=misses,
        tag_seconds=tag_seconds,
        pos_threshold=pos_threshold,
        neg_threshold=neg_threshold,
        model_version=model.version if model is not None else None,
        items=items,
        abstained=abstained,
        default_department=default,
        sentiment_source="contact" if contact_sentiment else "score",
    )


def _contact_class(contact: EnrichedContact) -> str:
    label = contact.analysis.sentiment_class
    return "neutral" if label is None else label.value


def _split_key(name: str) -> tuple[int, str]:
    return (SPLITS_ORDER.index(name) if name in SPLITS_ORDER else len(SPLITS_ORDER), name)


def evaluate_file(
    path: str | Path,
    rules: RuleSet,
    *,
    prepare: Prepare = default_prepare,
    sentiment_fn: SentimentFn | None = None,
    pos_threshold: float = 0.1,
    neg_threshold: float = -0.1,
    model: DeptModel | None = None,
    prepare_tokens: PrepareTokens | None = None,
    contact_sentiment: bool = False,
) -> EvalReport:
    """`vocflow eval FILE.jsonl`: load the labelled set and evaluate `rules` on it."""
    return evaluate_rows(
        load_labelled(path),
        rules,
        prepare=prepare,
        sentiment_fn=sentiment_fn,
        pos_threshold=pos_threshold,
        neg_threshold=neg_threshold,
        contact_sentiment=contact_sentiment,
        path=str(path),
        model=model,
        prepare_tokens=prepare_tokens,
    )


# ------------------------------------------------------------------- output


def _field_json(s: FieldScore) -> dict[str, object]:
    return {
        "n": s.n,
        "accuracy": round(s.accuracy, 6),
        "macro_precision": round(s.macro_precision, 6),
        "macro_recall": round(s.macro_recall, 6),
        "macro_f1": round(s.macro_f1, 6),
        "per_class": {
            cls: {
                "precision": round(c.precision, 6),
                "recall": round(c.recall, 6),
                "f1": round(c.f1, 6),
                "support": c.support,
                "predicted": c.predicted,
            }
            for cls, c in s.per_class.items()
        },
    }


def report_json(report: EvalReport) -> dict[str, object]:
    """`vocflow eval --json`: per split and field the metrics and per-class
    precision/recall, the abstention (share sent to the default department, i.e.
    triage), and every item's prediction with its source and probability.

    Department macro figures are over the classes seen in gold or predictions,
    so an abstention class (unassigned) counts in the macro like any other; the
    per-class block lets a reader recompute them over the real departments."""
    return {
        "path": report.path,
        "rules_version": report.rules_version,
        "model_version": report.model_version,
        "n": report.n,
        "default_department": report.default_department,
        "contacts_per_second": round(report.contacts_per_second, 1),
        "splits": {
            split: {
                "abstained": round(report.abstained.get(split, 0.0), 6),
                "fields": {name: _field_json(s) for name, s in fields.items()},
            }
            for split, fields in report.splits.items()
        },
        "items": [
            {
                "id": it.id,
                "split": it.split,
                "gold": it.gold,
                "predicted": it.predicted,
                "source": it.source,
                "probability": it.probability,
                "candidates": [{"department": d, "probability": p} for d, p in it.candidates],
            }
            for it in report.items
        ],
    }


def format_sentiment_confusion(report: EvalReport) -> list[str]:
    """3-class sentiment per split: recall per class and the confusion matrix
    (rows gold, columns predicted), in SENTIMENT_CLASSES order."""
    out: list[str] = []
    for split, fields in report.splits.items():
        s = fields.get("sentiment")
        if s is None:
            continue
        recalls = ", ".join(
            f"{c} {s.per_class[c].recall:.3f}" if c in s.per_class else f"{c} -"
            for c in SENTIMENT_CLASSES
        )
        out.append(f"sentiment {split} ({s.n}): accuracy {s.accuracy:.3f}; recall {recalls}")
        header = "gold / predicted"
        out.append(f"  {header:<18}" + "".join(f"{c:>9}" for c in SENTIMENT_CLASSES))
        for g in SENTIMENT_CLASSES:
            support = s.per_class[g].support if g in s.per_class else 0
            wrong = sum(v for (gold, _), v in s.confusion.items() if gold == g)
            cells = [
                support - wrong if p == g else s.confusion.get((g, p), 0) for p in SENTIMENT_CLASSES
            ]
            out.append(f"  {g:<18}" + "".join(f"{c:>9}" for c in cells))
    return out


def format_report(report: EvalReport, *, per_class: bool = True, max_misses: int = 0) -> str:
    """Plain-text report: a summary table per split, then per-class figures for
    the whole set, then (optionally) the first misclassified rows with the rule
    that decided them, which is what an operator needs to fix a rule."""
    out = [
        f"evaluation of rules {report.rules_version} on {report.path}: {report.n} contacts",
        f"tagging: {report.contacts_per_second:,.0f} contacts/s "
        f"({report.tag_seconds * 1000:.1f} ms total)",
        f"department model: {report.model_version or 'none (rules alone)'}; abstained "
        f"(-> {report.default_department}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in report.abstained.items()),
        "",
        f"{'split':<9} {'field':<16} {'n':>5} {'acc':>6} {'P_mac':>6} {'R_mac':>6} {'F1_mac':>6}",
    ]
    for split, fields in report.splits.items():
        for name, s in fields.items():
            out.append(
                f"{split:<9} {name:<16} {s.n:>5} {s.accuracy:>6.3f} {s.macro_precision:>6.3f} "
                f"{s.macro_recall:>6.3f} {s.macro_f1:>6.3f}"
            )
    if "sentiment" in report.splits.get("all", {}):
        if report.sentiment_source == "contact":
            out.append("(sentiment: the enriched contact's 3-class label)")
        else:
            out.append(
                f"(sentiment: positive if score > {report.pos_threshold}, "
                f"negative if < {report.neg_threshold})"
            )
        out.extend(format_sentiment_confusion(report))
    if per_class and "all" in report.splits:
        for name, s in report.splits["all"].items():
            out.append("")
            out.append(f"{name} (all splits): class, precision, recall, F1, gold, predicted")
            for cls, c in s.per_class.items():
                out.append(
                    f"  {cls:<18} {c.precision:>6.3f} {c.recall:>6.3f} {c.f1:>6.3f} "
                    f"{c.support:>5} {c.predicted:>5}"
                )
    if max_misses > 0 and report.misses:
        out.append("")
        out.append(f"misses (first {max_misses} of {len(report.misses)}):")
        for m in report.misses[:max_misses]:
            out.append(
                f"  {m.id} [{m.split}] {m.field}: gold={m.gold} got={m.predicted} "
                f"by {m.rule_id}: {m.text[:60]}"
            )
    return "\n".join(out)
