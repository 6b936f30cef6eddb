"""Writes the JSON Schema files that downstream consumers validate against.

`vocflow schemas export` calls `write_all`; a unit test calls `render_all` and
fails when the committed files in `schemas/json/` are stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from vocflow.schemas import (
    AgentEvent,
    ContactEvent,
    CustomerProfile,
    DeadLetter,
    Resolution,
    RoutingEnvelope,
    ShiftRecord,
)
from vocflow.schemas.api import KpiDocument, PipelineStats
from vocflow.schemas.derived.alert import VocAlert

PUBLISHED: dict[str, type[BaseModel]] = {
    "contact_event": ContactEvent,
    "agent_event": AgentEvent,
    "resolution": Resolution,
    "dead_letter": DeadLetter,
    "routing_envelope": RoutingEnvelope,
    "customer_profile": CustomerProfile,
    "shift_record": ShiftRecord,
    "voc_alert": VocAlert,
    # HTTP API documents (schemas/api/)
    "api_kpis": KpiDocument,
    "api_stats": PipelineStats,
}

JSON_DIR = Path(__file__).parent / "json"


def render_all() -> dict[str, str]:
    """File name -> JSON text, stable across runs (sorted keys, trailing newline)."""
    out = {}
    for name, model in PUBLISHED.items():
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:vocflow:schema:{name}:v1"
        out[f"{name}.v1.json"] = (
            json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
    return out


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in render_all().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
