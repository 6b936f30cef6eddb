"""Agent (坐席) state changes, the input of occupancy, utilization and adherence."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from vocflow.schemas.common import SCHEMA_VERSION, Identifier, ShortName, StrictModel, Timestamp


class AgentState(StrEnum):
    login = "login"
    ready = "ready"
    not_ready = "not_ready"
    on_contact = "on_contact"
    after_work = "after_work"
    logout = "logout"


class AgentEvent(StrictModel):
    """An agent entered `state` at `occurred_at`; the state lasts until the next event."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    agent_id: Identifier = Field(description="Kafka key.")
    team: ShortName | None = None
    state: AgentState
    reason: ShortName | None = Field(
        default=None, description="Why not ready (break, training, meeting, ...)."
    )
    contact_id: Identifier | None = Field(default=None, description="Set when on_contact.")
    occurred_at: Timestamp
    source: ShortName = "unknown"

    @model_validator(mode="after")
    def _reason_only_when_not_ready(self) -> AgentEvent:
        if self.reason is not None and self.state is not AgentState.not_ready:
            raise ValueError("reason is only allowed with state 'not_ready'")
        return self
