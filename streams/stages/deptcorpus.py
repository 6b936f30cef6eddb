"""The department corpus: labelled texts, their fixed splits, and the score a
model version must not lose on the holdout (the hot-reload gate).

Lives in stages (not tools) because the worker runs the gate when a model
version arrives on config.models (`worker/views.ModelHolder`), and the
training tool (`tools/train_dept.py`) uses the same splits and score, so the
figure `vocflow train` prints is the figure the worker checks.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vocflow.schemas.derived.enriched import EnrichedContact
from vocflow.schemas.source.contact import Channel
from vocflow.streams.core.configfile import read_jsonl
from vocflow.streams.stages.deptmodel import DATA_DIR, DeptModel, features
from vocflow.streams.stages.enrich import enrich_text_with_tokens
from vocflow.streams.stages.rules import RuleSet
from vocflow.streams.stages.tagging import ModelVote, tag

CORPUS_DIR = DATA_DIR / "corpus"
DEPARTMENTS = ("billing", "complaints", "network", "sales_retention", "tech_support")

# Channels that labelled corpora use but ContactEvent does not know, mapped to
# the channel an adapter would give them (the text is what is scored).
CHANNEL_ALIASES: dict[str, str] = {
    "social": "weibo",
    "forum": "weibo",
    "app_review": "app",
    "letter": "email",
    "ivr": "phone",
}


def channel_of(name: str) -> str:
    """A corpus channel name as a ContactEvent channel (aliases above)."""
    name = CHANNEL_ALIASES.get(name, name)
    if name not in Channel.__members__:
        raise ValueError(f"unknown channel {name!r}")
    return name


@dataclass(frozen=True)
class LabelledText:
    id: str
    text: str
    channel: str
    department: str
    source: str  # file name, or "correction"


def split_of(item_id: str) -> str:
    """Fixed split by the id's hash: 15 % dev, 15 % holdout, 70 % train."""
    bucket = int(hashlib.md5(item_id.encode("utf-8")).hexdigest(), 16) % 20
    if bucket < 3:
        return "dev"
    if bucket < 6:
        return "holdout"
    return "train"


def load_texts(path: Path, source: str | None = None) -> list[LabelledText]:
    """JSONL lines with id, text, department (+ channel); errors name file and line."""
    rows: list[LabelledText] = []
    for lineno, obj in read_jsonl(path):
        if not obj.get("text") or not obj.get("department"):
            raise ValueError(f"{path}:{lineno}: needs at least text and department")
        if obj["department"] not in DEPARTMENTS:
            raise ValueError(
                f"{path}:{lineno}: department {obj['department']!r} is not one of "
                f"{', '.join(DEPARTMENTS)}"
            )
        try:
            channel = channel_of(str(obj.get("channel") or "chat"))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from None
        rows.append(
            LabelledText(
                id=str(obj.get("id") or f"{path.name}:{lineno}"),
                text=str(obj["text"]),
                channel=channel,
                department=str(obj["department"]),
                source=source or path.name,
            )
        )
    return rows


def shipped_corpus(corpus_dir: Path = CORPUS_DIR) -> list[LabelledText]:
    rows: list[LabelledText] = []
    for path in sorted(corpus_dir.glob("*.jsonl")):
        rows.extend(load_texts(path))
    dup = [i for i, n in Counter(r.id for r in rows).items() if n > 1]
    if dup:
        raise ValueError(f"{corpus_dir}: duplicate ids {dup[:5]}")
    return rows


@dataclass
class Prepared:
    """Masked texts as contacts, and their feature sets, computed once."""

    rows: list[LabelledText]
    contacts: list[EnrichedContact]
    feats: list[set[str]]

    def subset(self, idx: Sequence[int]) -> Prepared:
        return Prepared(
            [self.rows[i] for i in idx],
            [self.contacts[i] for i in idx],
            [self.feats[i] for i in idx],
        )


def prepare(rows: Sequence[LabelledText]) -> Prepared:
    contacts = []
    feats = []
    for r in rows:
        contact, tokens = enrich_text_with_tokens(r.text, r.channel)
        contacts.append(contact)
        feats.append(features(contact.event.text or "", tokens))
    return Prepared(list(rows), contacts, feats)


def decide(
    p: Prepared, rules: RuleSet, model: DeptModel | None, threshold: float | None = None
) -> tuple[list[str], list[str], list[ModelVote | None]]:
    """(departments, decision rule ids, votes): rules + model as the voc stage decides."""
    votes: list[ModelVote | None] = [None] * len(p.rows)
    if model is not None:
        votes = [
            ModelVote(v.version, v.ranked, threshold) if threshold is not None else v
            for v in model.predict(p.feats)
        ]
    deps, srcs = [], []
    for contact, vote in zip(p.contacts, votes, strict=True):
        t = tag(contact, rules, vote)
        deps.append(t.department.value)
        srcs.append(t.department.rule_id)
    return deps, srcs, votes


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Macro F1 over the real departments (an abstention only costs recall)."""
    f1s = []
    for c in DEPARTMENTS:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == p == c)
        n_pred = sum(1 for p in pred if p == c)
        n_gold = sum(1 for g in gold if g == c)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s)


def gate_score(p: Prepared, rules: RuleSet, model: DeptModel | None) -> float:
    """The figure a new model version must not lower: holdout macro F1 of rules + model."""
    deps, _, _ = decide(p, rules, model)
    return macro_f1([r.department for r in p.rows], deps)


def holdout(corpus_dir: Path = CORPUS_DIR) -> list[LabelledText]:
    return [r for r in shipped_corpus(corpus_dir) if split_of(r.id) == "holdout"]
