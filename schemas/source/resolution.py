"""What a department system reports back when it has handled a routed item (closed loop)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from vocflow.schemas.common import SCHEMA_VERSION, Identifier, ShortName, StrictModel, Timestamp


class Outcome(StrEnum):
    resolved = "resolved"
    rejected = "rejected"  # not this department's item: re-route
    workaround = "workaround"
    no_fault_found = "no_fault_found"


class Resolution(StrictModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    contact_id: Identifier = Field(description="The routed contact; Kafka key.")
    department: ShortName
    outcome: Outcome = Outcome.resolved
    resolved_at: Timestamp
    note: str | None = Field(default=None, max_length=4000)
    source: ShortName = "unknown"
