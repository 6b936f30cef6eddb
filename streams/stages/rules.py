"""The tagging rules file: its model, its loader, and its precompiled form.

Operators (not developers) maintain the rules that classify every contact along
the knowledge map's four dimensions (DOMAIN.md, "Voice of the customer"), so the
file is YAML and every mistake in it must be reported the way an editor would:
file name, line number, reason. That is why the loader composes the YAML node
tree itself (keeping each node's line) instead of calling ``yaml.safe_load`` and
losing the positions before pydantic ever sees the data.

Matching runs on every contact, so everything that can be done once is done at
load time: keywords are lower-cased and de-duplicated across all rules, regular
expressions are compiled, rules are sorted by priority, and channel / queue /
tier lists become frozensets. ``RuleSet`` is immutable and safe to share between
tasks; reloading means building a new one and swapping the reference.

File layout (see streams/data/default_rules.yaml for a full example)::

    version: "2026.11-1"
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from vocflow.schemas.derived.enriched import Tier, Urgency
from vocflow.schemas.source.contact import Channel

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

_Path = tuple[str | int, ...]


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


class RulesFile(_Model):
    version: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int | float) else v)]
    defaults: Defaults = Field(default_factory=Defaults)
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

    def department_sla(self, department: str) -> float | None:
        dep = self.departments.get(department)
        return dep.sla_hours if dep is not None else None


# ------------------------------------------------------------------- YAML -> data


_TERM_KEYS = frozenset({"any", "all", "none", "queue"})


class _Lines:
    """Line numbers (1-based) of every mapping key and sequence item, by data path."""

    def __init__(self) -> None:
        self.by_path: dict[_Path, int] = {}

    def line_for(self, path: Sequence[str | int]) -> int | None:
        """The line of the deepest known prefix of `path`: an unknown-field error
        points at the field, a missing-field error at the mapping that lacks it."""
        p = tuple(path)
        while p:
            if p in self.by_path:
                return self.by_path[p]
            p = p[:-1]
        return self.by_path.get((), None)


def _to_data(
    node: yaml.Node, path: _Path, lines: _Lines, filename: str, raw_scalars: bool = False
) -> Any:
    """Build plain Python data from a composed node, recording line numbers.

    Scalars inside keyword lists stay as written (`12315` is a keyword, not an
    int; `5G` must not become anything else), everything else uses YAML's safe
    scalar resolution.
    """
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                raise RulesError(filename, line, "mapping keys must be plain scalars")
            key = key_node.value
            if key == "<<":
                line = key_node.start_mark.line + 1
                raise RulesError(filename, line, "YAML merge keys ('<<') are not supported")
            if key in out:
                raise RulesError(
                    filename,
                    key_node.start_mark.line + 1,
                    f"duplicate key {key!r} (first at line {lines.by_path[(*path, key)]})",
                )
            lines.by_path[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _to_data(value_node, (*path, key), lines, filename, key in _TERM_KEYS)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines.by_path[(*path, i)] = item.start_mark.line + 1
            items.append(_to_data(item, (*path, i), lines, filename, raw_scalars))
        return items
    assert isinstance(node, yaml.ScalarNode)
    if raw_scalars or (path and path[-1] in _TERM_KEYS):
        return node.value
    return _SCALARS.construct_object(node, deep=True)


_SCALARS = yaml.constructor.SafeConstructor()


def _compose(text: str, filename: str) -> yaml.Node:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(p for p in (exc.context, exc.problem) if p)
        raise RulesError(filename, line, f"YAML syntax error: {reason}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(filename, None, f"YAML error: {exc}") from exc
    if node is None:
        raise RulesError(filename, 1, "the rules file is empty")
    if not isinstance(node, yaml.MappingNode):
        raise RulesError(filename, node.start_mark.line + 1, "the top level must be a mapping")
    return node


def _describe(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_error(
    exc: ValidationError, data: Mapping[str, Any], lines: _Lines, filename: str
) -> RulesError:
    """Turn pydantic's errors into one RulesError at the first error's line,
    naming the rule id (when there is one) so the operator finds it fast."""
    messages = []
    first_line: int | None = None
    seen: set[tuple[str | int, ...]] = set()
    for err in exc.errors(include_url=False):
        # pydantic inserts union member names into loc; keep only real path parts,
        # and report one error per place (a union fails once per member)
        loc = _real_path(tuple(err["loc"]), data)
        if loc in seen:
            continue
        seen.add(loc)
        line = lines.line_for(loc)
        if first_line is None:
            first_line = line
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = f"missing field {loc[-1]!r}"
        rule_id = _rule_id_at(loc, data)
        prefix = f"rule {rule_id!r}: " if rule_id else ""
        messages.append((line, f"{prefix}{_describe(loc)}: {msg}"))
    head = messages[0][1]
    rest = [f"{filename}:{ln}: {m}" if ln else f"{filename}: {m}" for ln, m in messages[1:]]
    reason = head if not rest else head + "\n  " + "\n  ".join(rest)
    return RulesError(filename, first_line, reason)


def _real_path(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """Drop the parts of a pydantic error location that are not keys in the data
    (e.g. 'function-before[...]' or enum literal names inside unions)."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        in_map = isinstance(cur, Mapping) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_map or in_list:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, Mapping) and isinstance(part, str):
            # an unknown or missing key: keep it as the leaf, it names the field
            out.append(part)
            cur = None
        # else: a pydantic-internal path element, skip it
    return tuple(out)


def _rule_id_at(loc: Sequence[str | int], data: Mapping[str, Any]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], Mapping):
            rid = rules[loc[1]].get("id")
            return str(rid) if rid is not None else None
    return None


# ------------------------------------------------------------------- loading


def parse_rules(text: str, filename: str = "<rules>") -> RuleSet:
    """Parse and validate rules text; raise RulesError (file:line: reason) on any problem."""
    root = _compose(text, filename)
    lines = _Lines()
    lines.by_path[()] = root.start_mark.line + 1
    data = _to_data(root, (), lines, filename)
    try:
        spec = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, data, lines, filename) from None
    _check_references(spec, lines, filename)
    return _compile(spec, lines, filename)


def load_rules(path: str | Path) -> RuleSet:
    """Load a rules file from disk (UTF-8); errors name the file as given."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(str(path), None, f"cannot read rules file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RulesError(str(path), None, f"rules file is not UTF-8: {exc}") from exc
    return parse_rules(text, str(path))


def _check_references(spec: RulesFile, lines: _Lines, filename: str) -> None:
    """Cross-field checks pydantic cannot express: unique ids, known departments."""
    dep_ids: dict[str, int] = {}
    for i, dep in enumerate(spec.departments):
        if dep.id in dep_ids:
            raise RulesError(
                filename,
                lines.line_for(("departments", i, "id")),
                f"duplicate department id {dep.id!r} (first at line "
                f"{lines.line_for(('departments', dep_ids[dep.id], 'id'))})",
            )
        dep_ids[dep.id] = i
    if spec.defaults.department not in dep_ids:
        raise RulesError(
            filename,
            lines.line_for(("defaults", "department")),
            f"defaults.department {spec.defaults.department!r} is not a declared department "
            f"(declared: {', '.join(sorted(dep_ids))})",
        )
    seen: dict[str, int] = {}
    for i, rule in enumerate(spec.rules):
        if rule.id in seen:
            raise RulesError(
                filename,
                lines.line_for(("rules", i, "id")),
                f"duplicate rule id {rule.id!r} (first at line "
                f"{lines.line_for(('rules', seen[rule.id], 'id'))})",
            )
        seen[rule.id] = i
        dep = rule.set.department
        if dep is not None and dep not in dep_ids:
            raise RulesError(
                filename,
                lines.line_for(("rules", i, "set", "department")),
                f"rule {rule.id!r}: unknown department {dep!r} "
                f"(declared: {', '.join(sorted(dep_ids))})",
            )
        if rule.set.urgency is not None and rule.set.raise_urgency is not None:
            raise RulesError(
                filename,
                lines.line_for(("rules", i, "set", "raise_urgency")),
                f"rule {rule.id!r}: set either 'urgency' or 'raise_urgency', not both",
            )


def _compile(spec: RulesFile, lines: _Lines, filename: str) -> RuleSet:
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
                line=lines.line_for(("rules", order)),
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
        filename=filename,
        defaults=spec.defaults,
        departments={d.id: d for d in spec.departments},
        rules=tuple(compiled),
        terms=terms,
        uses_keywords=uses_keywords,
        term_buckets={c: tuple(b) for c, b in buckets.items()},
        spec=spec,
    )
