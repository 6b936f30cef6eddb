"""The `/api/kpis` document: computed by the KPI service (sinks/kpi/service.py) every
few seconds, served by the worker, streamed by the wallboard, printed by `vocflow kpis`.

As in the JSON: ``intervals`` (15m, 60m, today) -> ``by`` dimension (``all``,
``queue``, ``channel``, ``department``) -> KPI name -> group (``_all`` for the
totals) -> `KpiValue`; ``now`` (the point-in-time gauges) -> dimension -> KPI
name -> group; ``agents`` -> interval -> team KPIs. A group is present when
the KPI has a population in it; values come from the integer numerators and
denominators beside them (docs/kpis.md, "Results").

The models fix the wire format: field order is the JSON's key order, times
serialize with ``isoformat()`` (``+00:00``, microseconds when present), and
``model_dump()`` is the very dict the document always was, so the bytes on the
wire do not depend on the models. The service validates its own document once
per round (`KpiDocument.model_validate`); the CLI validates what it fetches.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from vocflow.schemas.common import ApiModel, absent_if_none

Dimension = Literal["all", "queue", "channel", "department"]
IntervalLabel = Literal["15m", "60m", "today"]

IsoTime = Annotated[
    AwareDatetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# A (pydantic) dataclass rather than a model: a document holds thousands of them,
# and one validates in about a quarter of a model's time (docs/kpis.md, "Performance").
@dataclass(frozen=True, slots=True, config=ConfigDict(extra="ignore"))
class KpiValue:
    """One KPI of one group: the value and the counts it came from."""

    value: float | None = Field(
        description="None when the denominator is 0: nothing to measure is not 0 %."
    )
    numerator: int = Field(description="Milliseconds for the `*_seconds` KPIs.")
    denominator: int = Field(description="1 for counts.")


KpiGroups = dict[str, KpiValue]
"""Group (a queue, channel, department or team; `_all` for the total) -> its KPI."""


class KpiSet(ApiModel):
    """KPI name -> groups. Every name is present, possibly with no groups."""

    def by_name(self) -> dict[str, KpiGroups]:
        """The KPIs under their names (those of the `vocflow_<name>` gauges), in order."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def only(self, groups: Collection[str]) -> Self:
        """The same KPIs holding only ``groups``."""
        return self.model_construct(
            **{
                name: {g: k for g, k in kpis.items() if g in groups}
                for name, kpis in self.by_name().items()
            }
        )


class IntervalKpis(KpiSet):
    """The KPIs of one interval and dimension (DOMAIN.md formulas, docs/kpis.md)."""

    contacts: KpiGroups
    service_level_ratio: KpiGroups
    asa_seconds: KpiGroups
    abandonment_ratio: KpiGroups
    aht_seconds: KpiGroups
    transfer_ratio: KpiGroups
    fcr_ratio: KpiGroups
    fcr_survey_ratio: KpiGroups
    repeat_contact_ratio: KpiGroups
    csat_ratio: KpiGroups
    nps: KpiGroups
    complaint_ratio: KpiGroups
    first_response_breach_ratio: KpiGroups
    resolution_breach_ratio: KpiGroups
    misroute_ratio: KpiGroups = Field(
        description="Routed items their department reassigned / items routed to it; "
        "filled for 'today' only (corrections come hours after the routing)."
    )


class NowKpis(KpiSet):
    """The point-in-time gauges of one dimension: only groups with something waiting."""

    queue_depth: KpiGroups
    oldest_waiting_seconds: KpiGroups
    backlog: KpiGroups


class IntervalSection(ApiModel):
    start: IsoTime = Field(description="Inclusive, in UTC.")
    end: IsoTime = Field(description="Exclusive, in UTC.")
    by: dict[Dimension, IntervalKpis]


# Present once the round's agent KPIs are in (always, on /api/kpis).
TeamKpis = Annotated[KpiGroups | SkipJsonSchema[None], absent_if_none()]


class AgentSection(ApiModel):
    """Agent KPIs of one interval per team (`*_by_team`) and for the centre (group
    `_all`); per agent they are on `/api/agents`."""

    occupancy_by_team: KpiGroups
    occupancy: KpiGroups
    utilization_by_team: TeamKpis
    utilization: TeamKpis
    adherence_by_team: TeamKpis
    adherence: TeamKpis


class KpiDocument(ApiModel):
    """`GET /api/kpis` (filtered by its query), and `kpis` of the wallboard's updates."""

    generated_at: IsoTime = Field(description="The round's clock, in the clock's own offset.")
    timezone: str = Field(description="Zone of the 15m buckets and of 'today'.")
    sl_threshold_seconds: float = Field(description="Default service-level threshold T.")
    intervals: dict[IntervalLabel, IntervalSection]
    now: dict[Dimension, NowKpis]
    agents: dict[IntervalLabel, AgentSection]
