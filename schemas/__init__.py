"""Published schemas (pydantic v2): `source/` events that come in, `derived/` records
the pipeline derives, `api/` documents the worker's HTTP API answers (imported from
`vocflow.schemas.api`). JSON Schema copies live in `json/`."""

from vocflow.schemas.common import SCHEMA_VERSION
from vocflow.schemas.derived.deadletter import DeadLetter, FieldError, Reason, SourceRef
from vocflow.schemas.derived.enriched import (
    CustomerProfile,
    EnrichedContact,
    SentimentClass,
    Tags,
    TagValue,
    TextAnalysis,
    Tier,
    Urgency,
)
from vocflow.schemas.derived.routing import RoutingEnvelope
from vocflow.schemas.source.agent_event import AgentEvent, AgentState
from vocflow.schemas.source.contact import (
    REQUIRED_PAYLOAD,
    Channel,
    ContactEvent,
    EventType,
    Payload,
)
from vocflow.schemas.source.resolution import Outcome, Resolution
from vocflow.schemas.source.shift import ShiftRecord

__all__ = [
    "REQUIRED_PAYLOAD",
    "SCHEMA_VERSION",
    "AgentEvent",
    "AgentState",
    "Channel",
    "ContactEvent",
    "CustomerProfile",
    "DeadLetter",
    "EnrichedContact",
    "EventType",
    "FieldError",
    "Outcome",
    "Payload",
    "Reason",
    "Resolution",
    "RoutingEnvelope",
    "SentimentClass",
    "ShiftRecord",
    "SourceRef",
    "TagValue",
    "Tags",
    "TextAnalysis",
    "Tier",
    "Urgency",
]
