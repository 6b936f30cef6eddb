"""The dead-letter envelope: everything needed to understand and replay a rejected event."""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Literal

from pydantic import Field

from vocflow.schemas.common import SCHEMA_VERSION, StrictModel, Timestamp


class Reason(StrEnum):
    """Bounded set, used as a metric label; details go in `errors`."""

    oversized = "oversized"
    invalid_utf8 = "invalid_utf8"
    bad_json = "bad_json"
    not_an_object = "not_an_object"
    missing_field = "missing_field"
    wrong_type = "wrong_type"
    unknown_value = "unknown_value"
    invalid_value = "invalid_value"
    unroutable = "unroutable"
    processing_error = "processing_error"


class SourceRef(StrictModel):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: str | None = Field(default=None, description="Original key, UTF-8 with replacement.")

    @classmethod
    def of(
        cls, topic: str, partition: int, offset: int, key: object, timestamp_ms: object = None
    ) -> SourceRef:
        """From a record's coordinates as any Kafka client gives them (key bytes or
        str; a timestamp that is not a non-negative int of milliseconds is left out)."""
        stamp = timestamp_ms if isinstance(timestamp_ms, int) and timestamp_ms >= 0 else None
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp_ms=stamp,
            key=text if isinstance(text, str) else None,
        )


class FieldError(StrictModel):
    loc: str = Field(description="Dotted path of the offending field, '' for the whole event.")
    type: str
    msg: str


class DeadLetter(StrictModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    reason: Reason
    stage: str = Field(description="Pipeline stage that rejected it (normalize, enrich, ...).")
    errors: list[FieldError] = Field(default_factory=list)
    source: SourceRef
    original_b64: str = Field(
        description="The original bytes, base64; truncated only if oversized."
    )
    original_size: int
    truncated: bool = False
    rejected_at: Timestamp

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.original_b64)
