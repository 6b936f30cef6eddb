"""What a department system reports back when it has handled a routed item (closed loop)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from vocflow.schemas.common import SCHEMA_VERSION, Identifier, ShortName, StrictModel, Timestamp


class Outcome(StrEnum):
    resolved = "resolved"
    rejected = "rejected"  # not this department's item: re-route
    workaround = "workaround"
    no_fault_found = "no_fault_found"
    # not ours, and we know whose: the correction is a training label for the
    # department model and counts in the misroute-rate KPI
    reassigned = "reassigned"


class Resolution(StrictModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    contact_id: Identifier = Field(description="The routed contact; Kafka key.")
    department: ShortName
    outcome: Outcome = Outcome.resolved
    resolved_at: Timestamp
    note: str | None = Field(default=None, max_length=4000)
    source: ShortName = "unknown"
    reassigned_to: ShortName | None = Field(
        default=None,
        description="With outcome 'reassigned': the department that should own the item.",
    )

    @model_validator(mode="after")
    def _reassigned_has_target(self) -> Resolution:
        if self.outcome == Outcome.reassigned:
            if not self.reassigned_to:
                raise ValueError("outcome 'reassigned' needs reassigned_to (the right department)")
            if self.reassigned_to == self.department:
                raise ValueError("reassigned_to must differ from department")
        elif self.reassigned_to is not None:
            raise ValueError("reassigned_to is only allowed with outcome 'reassigned'")
        return self
