"""Documents the worker's HTTP API answers (`/api/kpis`, `/api/stats`)."""

from vocflow.schemas.api.kpis import (
    AgentSection,
    Dimension,
    IntervalKpis,
    IntervalLabel,
    IntervalSection,
    KpiDocument,
    KpiGroups,
    KpiSet,
    KpiValue,
    NowKpis,
)
from vocflow.schemas.api.stats import PipelineStats, StageStats

__all__ = [
    "AgentSection",
    "Dimension",
    "IntervalKpis",
    "IntervalLabel",
    "IntervalSection",
    "KpiDocument",
    "KpiGroups",
    "KpiSet",
    "KpiValue",
    "NowKpis",
    "PipelineStats",
    "StageStats",
]
