"""Operator-edited YAML files: read keeping each key's line, validated by pydantic,
every problem reported as ``file:line: key: reason``.

The settings file (streams/core/settings.py), the tagging rules
(streams/stages/rules.py), the ingest sources file (streams/sources/ingest.py)
and the notify routing file (streams/notify/config.py) all load through here,
so they follow the same rules:

* **Positions are kept.** The YAML node tree is walked here instead of calling
  ``yaml.safe_load``, so that every mapping key and list item keeps its line
  and a pydantic error can point into the file.
* **Keys are strings, as written.** Values get YAML's safe scalar types, except
  below the keys named in ``keep_strings``, whose scalars stay exactly as
  written (a keyword ``12315`` or ``no`` is text, not a number or a boolean).
* **Nothing is resolved silently.** A duplicated key, a merge key (``<<``) or a
  non-scalar key is a problem, not "the last one wins".
* **One secret syntax.** Where the caller passes an environment (the files that
  hold secrets), ``${VAR}`` inside any string value is replaced by the variable's
  value. An unset variable is a problem naming the variable; no message ever
  shows a value that came from the environment.
* **Every problem at once, in file order**, so that one run of a check lists
  everything to fix.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import types
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

Loc = tuple[str | int, ...]
"""Where a value is in the data: mapping keys and list indexes from the top."""

Where = Callable[[Loc, Any], str]
"""How a file names a place in messages, from its location and the whole data."""

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""``${VAR}``: a reference to an environment variable inside a string value."""

_MIN_HIDDEN = 4
"""Environment values shorter than this are not masked in messages (they would
mangle ordinary words, and are too short to be a secret worth hiding)."""


def path_text(loc: Iterable[str | int]) -> str:
    """``rules[0].when.any``: keys joined by dots, list indexes in brackets."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _default_where(loc: Loc, data: Any) -> str:
    return path_text(loc)


@dataclass(frozen=True)
class Problem:
    """One thing to fix; ``str()`` is ``file:line: message``."""

    filename: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}" if self.line is not None else self.filename
        return f"{where}: {self.message}"


class ConfigFileError(Exception):
    """A file that cannot be used; ``problems`` in file order, one per line of the message."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("a ConfigFileError needs at least one problem")
        self.problems = sorted(problems, key=lambda p: p.line or 0)
        super().__init__("\n".join(str(p) for p in self.problems))


# ------------------------------------------------------------------ reading


def read_text(path: Path, what: str = "config file") -> str:
    """The file's text (UTF-8), or ConfigFileError ``path: cannot read <what>: reason``."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = f"cannot read {what}: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        reason = f"{what} is not UTF-8 text: {exc}"
    raise ConfigFileError([Problem(str(path), None, reason)])


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line of a JSON Lines file.

    A line that is not a JSON object is a ValueError naming file and line: the
    labelled sets and corpora are read with it, and silently skipping a row
    would move every figure computed from them.
    """
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: each line must be a JSON object")
            yield lineno, obj


def load(
    path: Path,
    *,
    what: str = "config file",
    expect: str = "a mapping",
    keep_strings: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
    where: Where = _default_where,
) -> Document:
    """Read and parse a file (see ``parse``); errors name the file as given."""
    text = read_text(path, what)
    return parse(
        text, str(path), expect=expect, keep_strings=keep_strings, environ=environ, where=where
    )


def parse(
    text: str,
    filename: str,
    *,
    expect: str = "a mapping",
    keep_strings: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
    where: Where = _default_where,
) -> Document:
    """Parse YAML text into a Document: plain data plus the line of every key.

    Raises ConfigFileError when there is nothing to validate (a YAML syntax
    error, or a top level that is not a mapping: ``the top level must be
    <expect>``). Problems inside the mapping (duplicate keys, unset variables)
    are collected in the Document and reported with the validation errors.
    ``keep_strings``: keys below which scalars stay strings exactly as written.
    ``environ``: resolve ``${VAR}`` in string values (None: leave them as written).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigFileError([_yaml_problem(filename, exc)]) from None
    if root is None:
        return Document(filename, {}, {(): 1}, empty=True, where=where)
    if not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1
        raise ConfigFileError([Problem(filename, line, f"the top level must be {expect}")])
    doc = Document(filename, None, {(): root.start_mark.line + 1}, empty=False, where=where)
    builder = _Builder(doc, frozenset(keep_strings), environ)
    try:
        doc.data = builder.build(root, (), keep=False)
    except yaml.YAMLError as exc:  # e.g. an unknown tag on a scalar
        raise ConfigFileError([_yaml_problem(filename, exc)]) from None
    return doc


def _yaml_problem(filename: str, exc: yaml.YAMLError) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "unreadable"
        if exc.context and exc.problem:
            reason = f"{exc.problem} ({exc.context})"
        return Problem(filename, mark.line + 1 if mark else None, f"invalid YAML: {reason}")
    return Problem(filename, None, f"invalid YAML: {exc}")


class _Builder:
    """Plain data from a composed node tree, recording each key's line in the Document."""

    def __init__(
        self, doc: Document, keep_strings: frozenset[str], environ: Mapping[str, str] | None
    ) -> None:
        self.doc = doc
        self.keep_strings = keep_strings
        self.environ = environ
        # A constructor of its own: SafeConstructor caches every node it has built.
        self.scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, loc: Loc, keep: bool) -> Any:
        doc = self.doc
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    doc.add_at(line, "mapping keys must be plain scalars")
                    continue
                key = key_node.value
                if key == "<<":
                    doc.add_at(line, "YAML merge keys ('<<') are not supported")
                    continue
                if key in out:
                    first = doc.lines[(*loc, key)]
                    doc.add_at(line, f"duplicate key {key!r} (first at line {first})")
                    continue
                doc.lines[(*loc, key)] = line
                out[key] = self.build(value_node, (*loc, key), keep or key in self.keep_strings)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                doc.lines[(*loc, i)] = item.start_mark.line + 1
                items.append(self.build(item, (*loc, i), keep))
            return items
        assert isinstance(node, yaml.ScalarNode)
        value = node.value if keep else self.scalars.construct_object(node, deep=True)
        if isinstance(value, str) and self.environ is not None:
            value = doc.expand(loc, value, self.environ)
        return value


# ----------------------------------------------------------------- document


class Document:
    """A parsed file: ``data``, the line of every key (``lines``) and the problems so far."""

    def __init__(
        self,
        filename: str,
        data: Any,
        lines: dict[Loc, int],
        *,
        empty: bool,
        where: Where = _default_where,
    ) -> None:
        self.filename = filename
        self.data = data
        self.lines = lines
        self.empty = empty
        """The file holds no YAML document (only comments or nothing); ``data`` is {}."""
        self.problems: list[Problem] = []
        self._where = where
        self._places: list[Loc] = []
        self._hidden: set[str] = set()

    def line_for(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest known prefix of ``loc``: an unknown key's own
        line, and for a missing key the line of the mapping that lacks it."""
        p = tuple(loc)
        while p and p not in self.lines:
            p = p[:-1]
        return self.lines.get(p)

    def add(self, loc: Loc, message: str, *, show_where: bool = True) -> None:
        """Record a problem at ``loc``; shown as ``file:line: <where>: message``."""
        where = self._where(loc, self.data) if show_where else ""
        text = f"{where}: {message}" if where else message
        self.problems.append(Problem(self.filename, self.line_for(loc), self.redact(text)))
        self._places.append(tuple(loc))

    def add_at(self, line: int | None, message: str) -> None:
        """Record a problem that belongs to a line rather than a key (YAML structure)."""
        self.problems.append(Problem(self.filename, line, self.redact(message)))

    def expand(self, loc: Loc, value: str, environ: Mapping[str, str]) -> str:
        """``value`` with each ``${VAR}`` replaced by the environment's value.

        An unset variable is a problem at ``loc`` (and becomes ""). The values
        are remembered so that no message can show them.
        """

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in environ:
                self.add(loc, f"environment variable {name} is not set")
                return ""
            self._hidden.add(environ[name])
            return environ[name]

        return ENV_REF.sub(sub, value)

    def redact(self, text: str) -> str:
        for value in sorted(self._hidden, key=len, reverse=True):
            if len(value) >= _MIN_HIDDEN:
                text = text.replace(value, "***")
        return text

    def validate(self, model: Any, *, context: Mapping[str, Any] | None = None) -> Any | None:
        """``model`` (a pydantic model or any type pydantic validates) from the data.

        On failure the errors become problems and the result is None. An error
        at a place that already has a problem (e.g. an unset variable) is not
        repeated.
        """
        try:
            return _adapter(model).validate_python(self.data, context=context)
        except ValidationError as exc:
            for loc, message in explain(exc, self.data, model):
                if not any(loc[: len(p)] == p for p in self._places):
                    self.add(loc, message)
            return None

    def check(self) -> None:
        """Raise ConfigFileError if any problem was recorded."""
        if self.problems:
            raise ConfigFileError(self.problems)


@functools.lru_cache(maxsize=64)
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


# ------------------------------------------------------ pydantic -> messages


def explain(exc: ValidationError, data: Any, model: Any = None) -> list[tuple[Loc, str]]:
    """Pydantic's errors as (location in the data, reason), one per place.

    Locations keep only real keys and indexes of ``data`` (pydantic adds union
    member and validator names). With ``model`` (the validated type), an
    unknown key gets a hint (did you mean / expected keys) and a missing one
    its field's description.
    """
    out: list[tuple[Loc, str]] = []
    seen: set[Loc] = set()
    for err in exc.errors(include_url=False):
        loc = real_path(tuple(err["loc"]), data)
        if loc in seen:  # a union fails once per member: report the place once
            continue
        seen.add(loc)
        out.append((loc, _message(err, loc, model)))
    return out


def _message(err: Any, loc: Loc, model: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _keys_at(model, loc[:-1]) if model is not None and loc else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1) if loc else []
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
        if known and len(known) <= 12:
            return f"unknown key (expected {', '.join(known)})"
        return "unknown key"
    if kind == "missing":
        info = _field_at(model, loc) if model is not None else None
        hint = info.description if info is not None else None
        return f"missing ({hint})" if hint else "missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a mapping"
    if kind == "list_type":
        return "must be a list"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def real_path(loc: Loc, data: Any) -> Loc:
    """Drop the parts of a pydantic error location that are not keys in the data
    (e.g. 'function-before[...]', union member names, '[key]')."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        in_map = isinstance(cur, Mapping) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_map or in_list:
            out.append(part)
            cur = cur[part]  # type: ignore[index]
        elif isinstance(cur, Mapping) and isinstance(part, str) and part != "[key]":
            # an unknown or missing key: keep it as the leaf, it names the field
            out.append(part)
            cur = None
        # else: a pydantic-internal path element, skip it
    return tuple(out)


def _unwrap(tp: Any) -> Any:
    """The type inside Annotated / Optional; of other unions the first structured member."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            structured = [a for a in members if _is_model(a) or get_origin(a) in (dict, list)]
            tp = (structured or members)[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _step(tp: Any, part: str | int) -> tuple[Any, FieldInfo | None]:
    tp = _unwrap(tp)
    if _is_model(tp):
        info = _fields(tp).get(str(part))
        return (info.annotation, info) if info is not None else (None, None)
    origin, args = get_origin(tp), get_args(tp)
    if origin in (list, tuple, set, frozenset, Sequence) and isinstance(part, int) and args:
        return args[0], None
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1], None
    return None, None


def _field_at(model: Any, loc: Loc) -> FieldInfo | None:
    tp, info = model, None
    for part in loc:
        if tp is None:
            return None
        tp, info = _step(tp, part)
    return info


def _keys_at(model: Any, loc: Loc) -> list[str]:
    tp = model
    for part in loc:
        if tp is None:
            return []
        tp, _ = _step(tp, part)
    tp = _unwrap(tp)
    return list(_fields(tp)) if _is_model(tp) else []
