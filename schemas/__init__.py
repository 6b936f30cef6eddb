"""Published event schemas (pydantic v2). JSON Schema copies live in `json/`."""

from vocflow.schemas.agent import AgentEvent, AgentState
from vocflow.schemas.common import SCHEMA_VERSION
from vocflow.schemas.contact import REQUIRED_PAYLOAD, Channel, ContactEvent, EventType, Payload
from vocflow.schemas.deadletter import DeadLetter, FieldError, Reason, SourceRef
from vocflow.schemas.resolution import Outcome, Resolution

__all__ = [
    "REQUIRED_PAYLOAD",
    "SCHEMA_VERSION",
    "AgentEvent",
    "AgentState",
    "Channel",
    "ContactEvent",
    "DeadLetter",
    "EventType",
    "FieldError",
    "Outcome",
    "Payload",
    "Reason",
    "Resolution",
    "SourceRef",
]
