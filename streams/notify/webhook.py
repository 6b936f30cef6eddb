"""Alertmanager's webhook body, checked and normalised; the identity of a notification.

Only what rendering and de-duplication need is kept; unknown fields are
ignored so that newer Alertmanagers keep working.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


class PayloadError(ValueError):
    """The webhook body is not an Alertmanager notification; answered with 400."""


def parse_webhook(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(notification, alerts) from an Alertmanager v4 webhook body, checked and normalised.

    Only what rendering and de-duplication need is kept; unknown fields are
    ignored so that newer Alertmanagers keep working.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
        raise PayloadError("expected an Alertmanager webhook object with an 'alerts' list")
    alerts = []
    for i, raw in enumerate(data["alerts"]):
        if not isinstance(raw, dict):
            raise PayloadError(f"alerts[{i}] is not an object")
        labels, notes = raw.get("labels") or {}, raw.get("annotations") or {}
        if not isinstance(labels, dict) or not isinstance(notes, dict):
            raise PayloadError(f"alerts[{i}]: labels and annotations must be objects")
        status = raw.get("status", data.get("status"))
        if status not in ("firing", "resolved"):
            raise PayloadError(f"alerts[{i}].status must be firing or resolved, not {status!r}")
        labels = {str(k): str(v) for k, v in labels.items()}
        fingerprint = raw.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            # Alertmanager always sends one; other senders get a stable stand-in.
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()
        alerts.append(
            {
                "status": status,
                "labels": labels,
                "annotations": {str(k): str(v) for k, v in notes.items()},
                "startsAt": str(raw.get("startsAt") or ""),
                "endsAt": str(raw.get("endsAt") or ""),
                "fingerprint": fingerprint[:64],
                "generatorURL": str(raw.get("generatorURL") or ""),
            }
        )
    notification = {
        "groupKey": str(data.get("groupKey") or ""),
        "externalURL": str(data.get("externalURL") or ""),
        "receiver": str(data.get("receiver") or ""),
    }
    return notification, alerts


def dedup_key(receiver: str, group_key: str, alert: Mapping[str, Any]) -> str:
    """Same receiver + group + fingerprint + status + startsAt = the same notification."""
    parts = (receiver, group_key, alert["fingerprint"], alert["status"], alert["startsAt"])
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
