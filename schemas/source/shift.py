"""Scheduled shift segments (排班) from the WFM system: the denominators of
utilization and schedule adherence (streams/kpi/agents.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vocflow.schemas.common import SCHEMA_VERSION, Identifier, ShortName, StrictModel, Timestamp

WORK = "work"
MAX_SEGMENT = timedelta(hours=24)


class ShiftRecord(StrictModel):
    """One segment of one agent's schedule. On the topic the Kafka key is
    ``agent_id|start`` (see ``streams/sources/shifts.py``), so a corrected segment with
    the same start replaces the old one under compaction."""

    schema_version: Literal[1] = SCHEMA_VERSION
    agent_id: Identifier
    team: ShortName | None = None
    start: Timestamp
    end: Timestamp
    activity: ShortName = Field(
        default=WORK,
        description="'work' (ready or handling expected) or the not-ready reason expected "
        "(break, training, meeting, ...), spelled as the agent events spell it.",
    )
    published_at: Timestamp = Field(
        description="When the segment was published; where two segments of one agent "
        "overlap, the later published one wins."
    )

    @field_validator("start", "end", mode="before")
    @classmethod
    def _local_time(cls, value: Any, info: ValidationInfo) -> Any:
        """WFM exports usually carry wall-clock times without an offset: with a
        ``timezone`` in the validation context they mean that zone's clock.
        Without one (records read back from Kafka) an offset stays mandatory."""
        zone = (info.context or {}).get("timezone")
        if zone is None or not isinstance(value, str):
            return value
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return value  # pydantic reports it
        return moment.replace(tzinfo=ZoneInfo(zone)) if moment.tzinfo is None else moment

    @model_validator(mode="after")
    def _sane_length(self) -> ShiftRecord:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_SEGMENT:
            raise ValueError("a segment longer than 24 hours is not a schedule segment")
        return self
