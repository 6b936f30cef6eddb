"""Building blocks shared by every event schema.

All events are strict about what they accept (unknown fields are rejected, so a
producer's typo fails loudly instead of silently dropping data) and carry a
`schema_version` so consumers can evolve with the producers.
"""

from __future__ import annotations

from typing import Annotated

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
