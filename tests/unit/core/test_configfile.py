"""The shared config-file loader: lines kept, pydantic errors as file:line: key: reason,
${VAR} references resolved and never shown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from vocflow.streams.core import configfile
from vocflow.streams.core.configfile import ConfigFileError, Document


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    size: int = 0


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="what the file is for")
    mode: Literal["fast", "safe"] = "safe"
    items: list[Item] = Field(default_factory=list)
    limits: dict[str, float] = Field(default_factory=dict)
    port: int | str = 80
    token: str | None = None

    @field_validator("token")
    @classmethod
    def _long(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 8:
            raise ValueError(f"{value!r} is shorter than 8 characters")
        return value


def parse(text: str, **kw: object) -> Document:
    return configfile.parse(text, "f.yaml", **kw)  # type: ignore[arg-type]


def problems(doc: Document, model: object = Spec, **kw: object) -> list[str]:
    assert doc.validate(model, **kw) is None  # type: ignore[arg-type]
    with pytest.raises(ConfigFileError) as info:
        doc.check()
    return str(info.value).splitlines()


# ---------------------------------------------------------------- parsing


def test_every_key_and_item_keeps_its_line() -> None:
    doc = parse("# head\ntitle: t\nitems:\n  - name: a\n  - name: b\n    size: 2\n")
    assert doc.data == {"title": "t", "items": [{"name": "a"}, {"name": "b", "size": 2}]}
    assert doc.lines[("title",)] == 2
    assert doc.lines[("items", 1)] == 5
    assert doc.lines[("items", 1, "size")] == 6
    # unknown and missing keys point at the deepest place that exists
    assert doc.line_for(("items", 1, "colour")) == 5
    assert doc.line_for(("nothing", "here")) == 2  # the root mapping starts on line 2
    assert not doc.empty


def test_scalars_are_typed_except_below_keep_strings_keys() -> None:
    text = "a: 12315\nb: no\nc: 5G\nwords: [12315, no, 5G, ~, 1.0]\none: 007\n"
    doc = parse(text, keep_strings=("words", "one"))
    assert doc.data == {
        "a": 12315,
        "b": False,
        "c": "5G",
        "words": ["12315", "no", "5G", "~", "1.0"],
        "one": "007",
    }
    assert parse("1: x\ntrue: y\n").data == {"1": "x", "true": "y"}  # keys: always as written


def test_an_empty_file_is_an_empty_mapping() -> None:
    for text in ("", "# only a comment\n"):
        doc = parse(text)
        assert doc.empty and doc.data == {}


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(ConfigFileError) as info:
        parse("title: t\nitems: [1,\n")
    assert str(info.value) == (
        "f.yaml:3: invalid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node)"
    )
    assert info.value.problems[0].line == 3


def test_the_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigFileError, match=r"^f.yaml:2: the top level must be a map of x$"):
        parse("\n- a\n", expect="a map of x")


def test_duplicate_merge_and_complex_keys_are_problems_reported_with_the_rest() -> None:
    text = "base: &b {size: 1}\ntitle: t\ntitle: u\n<<: *b\n? [a, b]\n: 1\nmode: slow\n"
    doc = parse(text)
    assert problems(doc, Spec) == [
        "f.yaml:1: base: unknown key (expected title, mode, items, limits, port, token)",
        "f.yaml:3: duplicate key 'title' (first at line 2)",
        "f.yaml:4: YAML merge keys ('<<') are not supported",
        "f.yaml:5: mapping keys must be plain scalars",
        "f.yaml:7: mode: Input should be 'fast' or 'safe'",
    ]
    assert doc.data["title"] == "t"  # the first one is kept


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"absent.yaml: cannot read rules file: No such"):
        configfile.load(tmp_path / "absent.yaml", what="rules file")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigFileError, match=r"latin.yaml: config file is not UTF-8 text"):
        configfile.load(latin)


def test_load_names_the_file_as_given(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("title: t\nport: 8080\n", encoding="utf-8")
    doc = configfile.load(path)
    assert doc.filename == str(path)
    assert doc.validate(Spec) == Spec(title="t", port=8080)


# ------------------------------------------------------------- validation


def test_pydantic_errors_become_file_line_key_reason_in_file_order() -> None:
    text = (
        "mode: fast\n"
        "items:\n"
        "  - name: a\n"
        "    size: big\n"
        "  - size: 3\n"
        "  - nmae: c\n"
        "limits: {cpu: lots}\n"
        "titel: t\n"
    )
    assert problems(parse(text)) == [
        "f.yaml:1: title: missing (what the file is for)",
        "f.yaml:4: items[0].size: Input should be a valid integer, unable to parse string as "
        "an integer",
        "f.yaml:5: items[1].name: missing",
        "f.yaml:6: items[2].name: missing",
        "f.yaml:6: items[2].nmae: unknown key (did you mean 'name'?)",
        "f.yaml:7: limits.cpu: Input should be a valid number, unable to parse string as a number",
        "f.yaml:8: titel: unknown key (did you mean 'title'?)",
    ]


def test_type_errors_say_what_was_expected_and_unions_report_once() -> None:
    text = "title: t\nitems: {name: a}\nport: [1]\n"
    assert problems(parse(text)) == [
        "f.yaml:2: items: must be a list",
        "f.yaml:3: port: Input should be a valid integer",  # int | str: one error, not two
    ]
    assert problems(parse("title: t\nitems: [x]\n")) == ["f.yaml:2: items[0]: must be a mapping"]


def test_key_errors_of_mappings_point_at_the_key() -> None:
    def letters(key: str) -> str:
        if not key.isalpha():
            raise ValueError("a name is letters only")
        return key

    Names = dict[Annotated[str, AfterValidator(letters)], int]
    assert problems(parse("ok: 1\n'no 2': 2\n"), Names) == [
        "f.yaml:2: no 2: a name is letters only"
    ]


def test_where_names_places_the_files_own_way() -> None:
    def where(loc: configfile.Loc, data: object) -> str:
        return f"item {loc[1]}: {configfile.path_text(loc[2:])}" if len(loc) > 2 else "?"

    doc = parse("title: t\nitems:\n  - {name: a, size: x}\n", where=where)
    assert problems(doc) == [
        "f.yaml:3: item 0: size: Input should be a valid integer, unable to parse string as an "
        "integer"
    ]


def test_problems_added_by_the_caller_join_the_rest() -> None:
    doc = parse("title: t\nitems:\n  - {name: a}\n  - {name: a}\n")
    spec = doc.validate(Spec)
    assert spec is not None
    doc.add(("items", 1, "name"), "duplicate name 'a' (first at line 3)")
    doc.add(("items",), "too few items", show_where=False)
    with pytest.raises(ConfigFileError) as info:
        doc.check()
    assert str(info.value).splitlines() == [
        "f.yaml:2: too few items",
        "f.yaml:4: items[1].name: duplicate name 'a' (first at line 3)",
    ]
    parse("title: t\n").check()  # nothing to report: no error


def test_explain_serves_data_that_is_not_a_document() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        Spec.model_validate({"title": "t", "tokn": "x", "items": [{"name": "a", "size": "?"}]})
    found = configfile.explain(info.value, {"tokn": "x", "items": [{"size": "?"}]}, Spec)
    assert found == [
        (
            ("items", 0, "size"),
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (("tokn",), "unknown key (did you mean 'token'?)"),
    ]
    assert configfile.path_text(("rules", 3, "when", "any", 0)) == "rules[3].when.any[0]"


# ----------------------------------------------------------------- secrets


ENV = {"TOKEN": "s3cr3t-value-123", "SHORT": "abc12", "HOST": "example.org"}


def test_variable_references_are_replaced_inside_strings() -> None:
    doc = parse("title: ${HOST}/x/${HOST}\ntoken: ${TOKEN}\nport: ${HOST}\n", environ=ENV)
    assert doc.data == {
        "title": "example.org/x/example.org",
        "token": "s3cr3t-value-123",
        "port": "example.org",
    }
    assert doc.validate(Spec) is not None
    # without an environment references stay as written; below keep_strings keys they resolve
    assert parse("title: ${HOST}\n").data == {"title": "${HOST}"}
    assert parse("token: ${TOKEN}\n", environ=ENV, keep_strings=("token",)).data == {
        "token": "s3cr3t-value-123"
    }
    # not a reference: left as written
    assert parse("title: $HOST ${1X} ${\n", environ=ENV).data == {"title": "$HOST ${1X} ${"}


def test_an_unset_variable_is_named_once_at_its_place() -> None:
    doc = parse("title: t\ntoken: ${NOT_SET}\n", environ={})
    # the empty value would also be "too short": only the real cause is reported
    assert problems(doc) == ["f.yaml:2: token: environment variable NOT_SET is not set"]


def test_no_message_shows_a_value_from_the_environment() -> None:
    doc = parse("title: t\ntoken: ${SHORT}\nmode: ${TOKEN}\n", environ=ENV)
    found = problems(doc)
    assert found == [
        "f.yaml:2: token: '***' is shorter than 8 characters",
        "f.yaml:3: mode: Input should be 'fast' or 'safe'",
    ]
    assert not any(value in line for value in ENV.values() for line in found)
