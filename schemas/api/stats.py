"""The `/api/stats` document: records in and out of each stage, dead letters, and
the rows ClickHouse holds (in the process that owns it)."""

from __future__ import annotations

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from vocflow.schemas.common import ApiModel, absent_if_none


class StageStats(ApiModel):
    """Counts of one stage since this worker started (the `vocflow_stage_events_*` and
    `vocflow_dlq_events` counters)."""

    in_: int = Field(alias="in", description="Records the stage took.")
    out: dict[str, int] = Field(description="Output topic -> records written to it.")
    dlq: int = Field(description="Records dead-lettered, every reason.")


class PipelineStats(ApiModel):
    """`GET /api/stats`. `clickhouse` or `clickhouse_error` only in the process that
    owns ClickHouse; absent (never null) elsewhere."""

    stages: dict[str, StageStats]
    dlq_by_reason: dict[str, int] = Field(description="'<stage>/<reason>' -> dead letters.")
    clickhouse: dict[str, int] | SkipJsonSchema[None] = absent_if_none("Table -> rows (FINAL).")
    clickhouse_error: str | SkipJsonSchema[None] = absent_if_none(
        "First line of the error when the row counts failed."
    )
