"""Shared helpers for the channel adapter tests (fixtures live in tests/fixtures/channels)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from vocflow.schemas import ContactEvent
from vocflow.streams.privacy import pseudonyms

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "channels"


def load(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def validated(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every adapter output must be accepted by the canonical schema as is."""
    for ev in events:
        ContactEvent.model_validate(ev)
    return events


def tel(number: str) -> str:
    """The documented pseudonym of a normalized phone number, computed independently."""
    return "tel-" + hmac_hex(number)


def hmac_hex(value: str) -> str:
    return hmac.new(pseudonyms._key, value.encode(), hashlib.sha256).hexdigest()[:20]


def expected_event_id(fmt: str, source: str, *parts: str) -> str:
    """The documented id rule, spelled out independently of the implementation."""
    joined = "\x1f".join([fmt, source, *parts])
    return f"{fmt}-{hashlib.sha256(joined.encode()).hexdigest()[:32]}"


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["event_type"], e["occurred_at"]) for e in events]
