"""Small builders for hand-written KPI scenarios."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from vocflow.schemas.source.contact import ContactEvent
from vocflow.streams.kpi.models import to_ms

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
T0_MS = to_ms(T0)

_PAYLOAD_NAMES = {
    "wait": "wait_seconds",
    "talk": "talk_seconds",
    "hold": "hold_seconds",
    "acw": "after_work_seconds",
    "to": "transfer_to",
    "csat": "csat",
    "nps": "nps",
    "fcr": "fcr",
}


def ev(
    eid: str,
    cid: str,
    event_type: str,
    sec: float,
    *,
    channel: str = "phone",
    queue: str | None = None,
    agent: str | None = None,
    customer: str | None = None,
    **payload: Any,
) -> ContactEvent:
    """An event ``sec`` seconds after 09:00 Shanghai; payload by short names."""
    body = {_PAYLOAD_NAMES[k]: v for k, v in payload.items()}
    return ContactEvent(
        event_id=eid,
        contact_id=cid,
        customer_id=customer,
        channel=channel,
        event_type=event_type,
        occurred_at=T0 + timedelta(seconds=sec),
        queue=queue,
        agent_id=agent,
        payload=body or None,
    )


def ms(sec: float) -> int:
    """Epoch ms of ``sec`` seconds after 09:00."""
    return T0_MS + round(sec * 1000)
