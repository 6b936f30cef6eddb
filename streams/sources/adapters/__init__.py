"""Channel adapters: each channel's native format -> canonical ContactEvent dicts.

Every adapter is a pure function ``parse_<format>(data: bytes, *, source=...)``
returning a list of JSON-ready dicts that already passed
``ContactEvent.model_validate`` (possibly empty: e.g. a WeChat subscribe push),
or raising :class:`AdapterError` with a bounded ``reason`` and a message for the
sender. The webhook service looks adapters up in :data:`ADAPTERS` by the
channel format in its URL. Formats and mapping rules: ``README.md`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vocflow.streams.sources.adapters.chat import parse_chat
from vocflow.streams.sources.adapters.common import AdapterError, AdapterReason
from vocflow.streams.sources.adapters.cti import parse_cti
from vocflow.streams.sources.adapters.freeswitch import parse_freeswitch
from vocflow.streams.sources.adapters.mail import parse_email
from vocflow.streams.sources.adapters.sms import parse_sms
from vocflow.streams.sources.adapters.survey import parse_survey
from vocflow.streams.sources.adapters.wechat import parse_wechat

Adapter = Callable[..., list[dict[str, Any]]]
"""``(data: bytes, *, source: str = <format>) -> list[dict]``."""

ADAPTERS: dict[str, Adapter] = {
    "cti": parse_cti,
    "freeswitch": parse_freeswitch,
    "chat": parse_chat,
    "email": parse_email,
    "wechat": parse_wechat,
    "sms": parse_sms,
    "survey": parse_survey,
}

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterError",
    "AdapterReason",
    "parse_chat",
    "parse_cti",
    "parse_email",
    "parse_freeswitch",
    "parse_sms",
    "parse_survey",
    "parse_wechat",
]
