"""Published event schemas (pydantic v2). JSON Schema copies live in `json/`."""

from vocflow.schemas.agent import AgentEvent, AgentState
from vocflow.schemas.common import SCHEMA_VERSION
from vocflow.schemas.contact import REQUIRED_PAYLOAD, Channel, ContactEvent, EventType, Payload
from vocflow.schemas.deadletter import DeadLetter, FieldError, Reason, SourceRef
from vocflow.schemas.enriched import (
    CustomerProfile,
    EnrichedContact,
    Tags,
    TagValue,
    TextAnalysis,
    Tier,
    Urgency,
)
from vocflow.schemas.resolution import Outcome, Resolution
from vocflow.schemas.routing import RoutingEnvelope
from vocflow.schemas.shift import ShiftRecord

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
    "ShiftRecord",
    "SourceRef",
    "TagValue",
    "Tags",
    "TextAnalysis",
    "Tier",
    "Urgency",
]
