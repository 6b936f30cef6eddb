"""Building blocks shared by every event schema and API document.

All events are strict about what they accept (unknown fields are rejected, so a
producer's typo fails loudly instead of silently dropping data) and carry a
`schema_version` so consumers can evolve with the producers. API documents
(`ApiModel`) are what the worker answers: their JSON is fixed by the endpoint
(no version field), and readers ignore what they do not know.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1

# Ids come from many systems (CTI, CRM, chat platforms): allow their usual
# alphabets but no whitespace or control characters, which break keys and logs.
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$"),
]
ShortName = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Seconds = Annotated[float, Field(ge=0, le=7 * 24 * 3600)]
Timestamp = AwareDatetime


class StrictModel(BaseModel):
    """Base for published schemas: reject unknown fields, keep values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class ApiModel(BaseModel):
    """Base for the HTTP API documents (`schemas/api/`): immutable (one document is
    shared by every request and screen); unknown fields are ignored, so a client
    reads a newer server's document; fields serialize under their aliases."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        serialize_by_alias=True,
        validate_by_alias=True,
        validate_by_name=True,
    )


def _is_none(value: object) -> bool:
    return value is None


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent is not null


def absent_if_none(description: str | None = None) -> Any:
    """A field that is left out of the JSON (never null) while it is None; declare
    its type as ``T | SkipJsonSchema[None]`` so the JSON Schema says the same."""
    return Field(
        default=None, exclude_if=_is_none, description=description, json_schema_extra=_no_default
    )
