"""The tagging rules file: its model, its loader, and its precompiled form.

Operators (not developers) maintain the rules that classify every contact along
the knowledge map's four dimensions (DOMAIN.md, "Voice of the customer"), so the
file is YAML and every mistake in it must be reported the way an editor would:
file name, line number, reason. The shared config-file loader
(streams/core/configfile.py) keeps each key's line, so a pydantic error points
into the file; keyword lists keep their scalars exactly as written.

Matching runs on every contact, so everything that can be done once is done at
load time: keywords are lower-cased and de-duplicated across all rules, regular
expressions are compiled, rules are sorted by priority, and channel / queue /
tier lists become frozensets. ``RuleSet`` is immutable and safe to share between
tasks; reloading means building a new one and swapping the reference.

File layout (see streams/data/default_rules.yaml for a full example)::

    version: "2026.11-1"
    model_pin_priority: 900     # department rules at/above it win over the learned model
    defaults: {business_type: other, ..., department: unassigned, urgency: P4, sla_hours: 72}
    departments:
      - {id: billing, name: 计费账务, sla_hours: 24}
    rules:
      - id: billing.refund
        priority: 50            # higher wins; ties: file order
        when:                   # all given conditions must hold
          any: [退款, 退钱]      # substring of the masked, lower-cased text
          all: [...]
          none: [...]
          regex: '退.{0,4}钱'
          search: text          # text | keywords | both (analysis.keywords)
          channel: [phone, chat]
          queue: [vip_line]
          tier: [vip, gold]     # 'unknown' matches contacts without a profile
          sentiment: {min: -1.0, max: -0.6}
          repeat_contact: true
        set:
          business_type: billing
          department: billing
          urgency: P3           # absolute; or raise_urgency: 1 (cumulative)
          sla_hours: 24
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from vocflow.schemas.derived.enriched import Tier, Urgency
from vocflow.schemas.source.contact import Channel
from vocflow.streams.core import configfile
from vocflow.streams.core.configfile import Loc

# Tag dimensions a rule may set with a plain string value.
TAG_FIELDS: tuple[str, ...] = (
    "business_type",
    "support_system",
    "bearer_network",
    "department",
    "category",
)
URGENCY_ORDER: tuple[Urgency, ...] = (Urgency.p1, Urgency.p2, Urgency.p3, Urgency.p4)
UNKNOWN_TIER = "unknown"


class RulesError(ValueError):
    """A rules file that cannot be used; the message reads ``file:line: reason``.

    The pipeline refuses to start (or keeps the previous rules on reload) rather
    than run with a half-understood file, so the message must let an operator
    fix the file without reading code.
    """

    def __init__(self, filename: str, line: int | None, reason: str) -> None:
        self.filename = filename
        self.line = line
        self.reason = reason
        where = f"{filename}:{line}" if line is not None else filename
        super().__init__(f"{where}: {reason}")


# --------------------------------------------------------------------------- model


def _scalar_list(value: Any) -> Any:
    """Accept a single string where a list is expected: `any: 退款` is a common shorthand."""
    if isinstance(value, str):
        return [value]
    return value


def _nonempty_terms(value: list[str]) -> list[str]:
    cleaned = [v.strip().lower() for v in value]
    if any(not v for v in cleaned):
        raise ValueError("empty keyword")
    return cleaned


Terms = Annotated[list[str], BeforeValidator(_scalar_list)]
TagValueStr = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


# A profile's tier, or 'unknown' for contacts whose customer is not (yet) known.
TierCondition = Literal["vip", "gold", "standard", "unknown"]
assert {t.value for t in Tier} | {UNKNOWN_TIER} == set(TierCondition.__args__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SentimentRange(_Model):
    min: float = Field(default=-1.0, ge=-1.0, le=1.0)
    max: float = Field(default=1.0, ge=-1.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> SentimentRange:
        if self.min > self.max:
            raise ValueError(f"sentiment min {self.min} is greater than max {self.max}")
        return self


class When(_Model):
    """Conditions of one rule; all that are given must hold (logical AND)."""

    any: Terms | None = None
    all: Terms | None = None
    none: Terms | None = None
    regex: str | None = None
    search: Literal["text", "keywords", "both"] = "text"
    channel: Annotated[list[Channel], BeforeValidator(_scalar_list)] | None = None
    queue: Annotated[list[str], BeforeValidator(_scalar_list)] | None = None
    tier: Annotated[list[TierCondition], BeforeValidator(_scalar_list)] | None = None
    sentiment: SentimentRange | None = None
    repeat_contact: bool | None = None

    @field_validator("any", "all", "none")
    @classmethod
    def _clean_terms(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("keyword list is empty")
        return _nonempty_terms(value)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"bad regular expression {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _has_condition(self) -> When:
        given = self.model_dump(exclude_none=True, exclude={"search"})
        if not given:
            raise ValueError("rule has no conditions; it would match every contact")
        return self


class SetActions(_Model):
    business_type: TagValueStr | None = None
    support_system: TagValueStr | None = None
    bearer_network: TagValueStr | None = None
    department: TagValueStr | None = None
    category: TagValueStr | None = None
    urgency: Urgency | None = None
    raise_urgency: int | None = Field(default=None, ge=1, le=3)
    sla_hours: float | None = Field(default=None, gt=0, le=24 * 365)

    @model_validator(mode="after")
    def _not_empty(self) -> SetActions:
        if not self.model_dump(exclude_none=True):
            raise ValueError("'set' sets nothing")
        return self


class RuleSpec(_Model):
    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
    priority: int = 0
    description: str | None = None
    when: When
    set: SetActions


class Defaults(_Model):
    business_type: TagValueStr = "other"
    support_system: TagValueStr = "none"
    bearer_network: TagValueStr = "none"
    department: TagValueStr = "unassigned"
    category: TagValueStr = "general"
    urgency: Urgency = Urgency.p4
    sla_hours: float | None = Field(default=None, gt=0, le=24 * 365)


class Department(_Model):
    id: TagValueStr
    name: str | None = None
    sla_hours: float | None = Field(default=None, gt=0, le=24 * 365)


DEFAULT_MODEL_PIN_PRIORITY = 900


class RulesFile(_Model):
    version: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int | float) else v)]
    defaults: Defaults = Field(default_factory=Defaults)
    # A department set by a rule of at least this priority is pinned: the learned
    # department model (stages/deptmodel.py) decides only the others. The default
    # is the escalation band (regulator, compensation, staff conduct -> complaints).
    model_pin_priority: int = DEFAULT_MODEL_PIN_PRIORITY
    departments: list[Department] = Field(min_length=1)
    # `rules:` with nothing under it (a file being started) means no rules
    rules: Annotated[list[RuleSpec], BeforeValidator(lambda v: [] if v is None else v)] = Field(
        default_factory=list
    )


# ----------------------------------------------------------------- compiled form


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule ready for matching; term lists hold indexes into RuleSet.terms."""

    id: str
    priority: int
    order: int
    line: int | None
    any_terms: frozenset[int] | None
    all_terms: frozenset[int] | None
    none_terms: frozenset[int] | None
    search: str
    regex: re.Pattern[str] | None
    channels: frozenset[str] | None
    queues: frozenset[str] | None
    tiers: frozenset[str] | None
    sentiment_min: float | None  # both None, or both set
    sentiment_max: float
    repeat_contact: bool | None
    sets: Mapping[str, str]
    urgency: Urgency | None
    raise_urgency: int
    sla_hours: float | None


@dataclass(frozen=True)
class RuleSet:
    """A loaded, validated, precompiled rules file (immutable, share freely)."""

    version: str
    filename: str
    defaults: Defaults
    departments: Mapping[str, Department]
    rules: tuple[CompiledRule, ...]  # sorted: priority desc, then file order
    terms: tuple[str, ...]  # every distinct lower-cased keyword of every rule
    uses_keywords: bool = False  # some rule searches analysis.keywords
    # terms grouped by first character: a text only needs checking against the
    # terms whose first character it contains (cuts the per-contact scan ~5x)
    term_buckets: Mapping[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    spec: RulesFile | None = field(default=None, compare=False, repr=False)
    model_pin_priority: int = DEFAULT_MODEL_PIN_PRIORITY

    def department_sla(self, department: str) -> float | None:
        dep = self.departments.get(department)
        return dep.sla_hours if dep is not None else None


# ------------------------------------------------------------------- loading


# Keys whose scalars stay as written: `12315` is a keyword, not an int; `5G` and
# `no` must not become anything else.
_TERM_KEYS = frozenset({"any", "all", "none", "queue"})


def _rule_id_at(loc: Loc, data: Any) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules") if isinstance(data, Mapping) else None
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], Mapping):
            rid = rules[loc[1]].get("id")
            return str(rid) if rid is not None else None
    return None


def _where(loc: Loc, data: Any) -> str:
    """``rules[3].when.regex``, after the rule's id when there is one, so the
    operator finds the rule fast."""
    rule_id = _rule_id_at(loc, data)
    prefix = f"rule {rule_id!r}: " if rule_id else ""
    return prefix + configfile.path_text(loc)


def _rules_error(exc: configfile.ConfigFileError) -> RulesError:
    """One RulesError at the first problem's line; further problems on lines of their own."""
    first, rest = exc.problems[0], exc.problems[1:]
    reason = first.message + "".join(f"\n  {p}" for p in rest)
    return RulesError(first.filename, first.line, reason)


def _parse(doc: configfile.Document) -> RuleSet:
    if doc.empty:
        raise RulesError(doc.filename, 1, "the rules file is empty")
    spec = doc.validate(RulesFile)
    if spec is not None:
        _check_references(spec, doc)
    doc.check()
    assert spec is not None  # no problems: validation succeeded
    return _compile(spec, doc)


def parse_rules(text: str, filename: str = "<rules>") -> RuleSet:
    """Parse and validate rules text; raise RulesError (file:line: reason) on any problem."""
    try:
        return _parse(configfile.parse(text, filename, keep_strings=_TERM_KEYS, where=_where))
    except configfile.ConfigFileError as exc:
        raise _rules_error(exc) from None


def load_rules(path: str | Path) -> RuleSet:
    """Load a rules file from disk (UTF-8); errors name the file as given."""
    try:
        doc = configfile.load(Path(path), what="rules file", keep_strings=_TERM_KEYS, where=_where)
        return _parse(doc)
    except configfile.ConfigFileError as exc:
        raise _rules_error(exc) from None


def _check_references(spec: RulesFile, doc: configfile.Document) -> None:
    """Cross-field checks pydantic cannot express: unique ids, known departments."""
    dep_ids: dict[str, int] = {}
    for i, dep in enumerate(spec.departments):
        if dep.id in dep_ids:
            first = doc.line_for(("departments", dep_ids[dep.id], "id"))
            doc.add(
                ("departments", i, "id"),
                f"duplicate department id {dep.id!r} (first at line {first})",
                show_where=False,
            )
            continue
        dep_ids[dep.id] = i
    if spec.defaults.department not in dep_ids:
        doc.add(
            ("defaults", "department"),
            f"defaults.department {spec.defaults.department!r} is not a declared department "
            f"(declared: {', '.join(sorted(dep_ids))})",
            show_where=False,
        )
    seen: dict[str, int] = {}
    for i, rule in enumerate(spec.rules):
        if rule.id in seen:
            first = doc.line_for(("rules", seen[rule.id], "id"))
            doc.add(
                ("rules", i, "id"),
                f"duplicate rule id {rule.id!r} (first at line {first})",
                show_where=False,
            )
        else:
            seen[rule.id] = i
        dep = rule.set.department
        if dep is not None and dep not in dep_ids:
            doc.add(
                ("rules", i, "set", "department"),
                f"rule {rule.id!r}: unknown department {dep!r} "
                f"(declared: {', '.join(sorted(dep_ids))})",
                show_where=False,
            )
        if rule.set.urgency is not None and rule.set.raise_urgency is not None:
            doc.add(
                ("rules", i, "set", "raise_urgency"),
                f"rule {rule.id!r}: set either 'urgency' or 'raise_urgency', not both",
                show_where=False,
            )


def _compile(spec: RulesFile, doc: configfile.Document) -> RuleSet:
    term_index: dict[str, int] = {}

    def idx(terms: list[str] | None) -> frozenset[int] | None:
        if terms is None:
            return None
        return frozenset(term_index.setdefault(t, len(term_index)) for t in terms)

    compiled = []
    uses_keywords = False
    for order, r in enumerate(spec.rules):
        w = r.when
        uses_keywords = uses_keywords or w.search != "text"
        sets = {f: getattr(r.set, f) for f in TAG_FIELDS if getattr(r.set, f) is not None}
        compiled.append(
            CompiledRule(
                id=r.id,
                priority=r.priority,
                order=order,
                line=doc.line_for(("rules", order)),
                any_terms=idx(w.any),
                all_terms=idx(w.all),
                none_terms=idx(w.none),
                search=w.search,
                regex=re.compile(w.regex, re.IGNORECASE) if w.regex is not None else None,
                channels=frozenset(c.value for c in w.channel) if w.channel else None,
                queues=frozenset(q.strip().lower() for q in w.queue) if w.queue else None,
                tiers=frozenset(str(t) for t in w.tier) if w.tier else None,
                sentiment_min=w.sentiment.min if w.sentiment else None,
                sentiment_max=w.sentiment.max if w.sentiment else 1.0,
                repeat_contact=w.repeat_contact,
                sets=sets,
                urgency=r.set.urgency,
                raise_urgency=r.set.raise_urgency or 0,
                sla_hours=r.set.sla_hours,
            )
        )
    compiled.sort(key=lambda c: (-c.priority, c.order))
    terms = tuple(sorted(term_index, key=term_index.__getitem__))
    buckets: dict[str, list[tuple[int, str]]] = {}
    for i, t in enumerate(terms):
        buckets.setdefault(t[0], []).append((i, t))
    return RuleSet(
        version=spec.version,
        filename=doc.filename,
        defaults=spec.defaults,
        departments={d.id: d for d in spec.departments},
        rules=tuple(compiled),
        terms=terms,
        uses_keywords=uses_keywords,
        term_buckets={c: tuple(b) for c, b in buckets.items()},
        spec=spec,
        model_pin_priority=spec.model_pin_priority,
    )
