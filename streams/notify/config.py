"""The notify routing file (docs/alerting.md, deploy/alertmanager/notify.yaml).

Which receivers (chat groups) exist, which alerts go to which of them, and how
messages read (language, time zone, department names), plus the delivery and
de-duplication timings. Loaded with the shared config-file loader: every
problem is reported at once as ``file:line: key: reason``.

**No secrets in logs or metrics.** Receivers are named by their ``name``; URLs
(which hold WeCom keys and DingTalk tokens) and secrets are masked in every
error text. Secrets come from ``${ENV_VAR}`` references, so the routing file
itself can be committed; no error shows a value that came from the environment.
"""

from __future__ import annotations

import math
import os
import random
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticUseDefault

from vocflow.streams.core import configfile
from vocflow.streams.notify.channels import RECEIVER_TYPES, SIGNING_TYPES
from vocflow.streams.notify.render import DEFAULT_TIMEZONE, DEPARTMENT_NAMES, Language

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A receiver name (and the department segment of the webhook URL)."""

_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class NotifyConfigError(Exception):
    """The notify file is wrong; each line of the message is ``file:line: what: why``."""


@dataclass(frozen=True)
class Receiver:
    """A chat group (or webhook) to deliver to. ``url`` and ``secret`` are never logged."""

    name: str
    type: str
    url: str
    secret: str | None = field(default=None, repr=False)
    language: str | None = None

    def __repr__(self) -> str:  # the URL holds the WeCom key / DingTalk token
        return f"Receiver(name={self.name!r}, type={self.type!r})"

    def redact(self, text: str) -> str:
        """``text`` with the URL, its query values and the secret replaced by ``***``."""
        hidden = [self.url, self.secret or ""]
        hidden += [v for _, v in urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query)]
        for value in sorted((h for h in hidden if len(h) >= 4), key=len, reverse=True):
            text = text.replace(value, "***")
            text = text.replace(urllib.parse.quote(value, safe=""), "***")
        return text


@dataclass(frozen=True)
class Route:
    """Alerts whose labels match every ``match`` entry go to ``receivers``.

    A value matches when it is one of the listed ones; an empty ``match`` is a
    catch-all. Like Alertmanager, the first matching route wins unless it
    says ``continue: true``.
    """

    match: Mapping[str, frozenset[str]]
    receivers: tuple[str, ...]
    continue_: bool = False
    line: int = 0

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key, "") in values for key, values in self.match.items())


@dataclass(frozen=True)
class Delivery:
    """Retry policy of the sender loops (seconds)."""

    timeout_s: float = 10.0
    initial_backoff_s: float = 2.0
    max_backoff_s: float = 300.0
    give_up_after_s: float | None = 24 * 3600.0

    def backoff(self, attempts: int, rng: Callable[[], float] = random.random) -> float:
        """Delay before the next attempt after ``attempts`` failures: exponential, capped,
        with "equal jitter" (half fixed, half random) so that receivers recovering from
        one outage are not hit by every sender in the same second."""
        growth = 2.0 ** max(attempts - 1, 0)
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * growth)
        return float(ceiling / 2 + rng() * ceiling / 2)


@dataclass(frozen=True)
class NotifyConfig:
    """A validated notify file (docs/alerting.md, deploy/alertmanager/notify.yaml)."""

    receivers: Mapping[str, Receiver]
    routes: tuple[Route, ...]
    language: str = "zh"
    timezone: str = DEFAULT_TIMEZONE
    dedup_window_s: float = 25 * 60.0
    delivery: Delivery = field(default_factory=Delivery)
    departments: Mapping[str, str] = field(default_factory=lambda: dict(DEPARTMENT_NAMES))
    webhook_token: str | None = field(default=None, repr=False)
    source: str = "<config>"

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def route(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """Receiver names for an alert with ``labels`` (never empty: a catch-all is required)."""
        out: list[str] = []
        for route in self.routes:
            if route.matches(labels):
                out.extend(r for r in route.receivers if r not in out)
                if not route.continue_:
                    break
        return tuple(out)


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"500ms"``, ``"10s"``, ``"5m"``, ``"24h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 5m or 24h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"'{value}' is not a duration such as 10s, 5m or 24h")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be zero or positive")
    return seconds


# ------------------------------------------------------------- the file's model


def _duration(value: object) -> float:
    if value is None:
        raise PydanticUseDefault()
    return parse_duration(value)


def _give_up_after(value: object) -> float | None:
    if value in ("never", 0):
        return None
    return _duration(value)


def _none_as_empty(value: object) -> object:
    return {} if value is None else value


def _one_or_more(what: str) -> Callable[[object], list[str]]:
    """A value or a non-empty list of values (numbers are taken as written)."""

    def check(value: object) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
            return [str(v) for v in value]
        raise ValueError(what)

    return check


def _receiver_name(name: str) -> str:
    if not NAME.match(name):
        raise ValueError("a receiver name is letters, digits, '.', '_' or '-' (max 64)")
    return name


def _label_name(name: str) -> str:
    if not _LABEL.match(name):
        raise ValueError("not a Prometheus label name")
    return name


def _display_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("display name must be a non-empty string")
    return value.strip()


def _secret_text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string (or ${ENV_VAR})")
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
Values = Annotated[
    list[str], BeforeValidator(_one_or_more("must be a value or a non-empty list of values"))
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeliverySpec(_Spec):
    timeout: Duration = Delivery.timeout_s
    initial_backoff: Duration = Delivery.initial_backoff_s
    max_backoff: Duration = Delivery.max_backoff_s
    give_up_after: Annotated[float | None, BeforeValidator(_give_up_after)] = (
        Delivery.give_up_after_s
    )

    @field_validator("timeout", "initial_backoff")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("max_backoff")
    @classmethod
    def _not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        if value < info.data.get("initial_backoff", 0):
            raise ValueError("must not be smaller than initial_backoff")
        return value


class ReceiverSpec(_Spec):
    type: str = Field(description=f"one of {', '.join(RECEIVER_TYPES)}")
    url: str = Field(description="the robot's webhook address")
    secret: Annotated[str, BeforeValidator(_secret_text)] | None = None
    language: Language | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in RECEIVER_TYPES:
            raise ValueError(f"must be one of {', '.join(RECEIVER_TYPES)}, not {value!r}")
        return value

    @field_validator("url")
    @classmethod
    def _address(cls, value: str, info: ValidationInfo) -> str:
        url = value.strip()
        if not url:
            raise ValueError("missing (the robot's webhook address)")
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        kind = info.data.get("type")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// address")
        if kind == "wecom" and not query.get("key"):
            raise ValueError("a WeCom robot address ends in ?key=<robot key>")
        if kind == "dingtalk" and not query.get("access_token"):
            raise ValueError("a DingTalk robot address ends in ?access_token=<token>")
        return url

    @field_validator("secret")
    @classmethod
    def _signing_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if value is not None and kind is not None and kind not in SIGNING_TYPES:
            raise ValueError(f"{kind} does not sign requests; its key belongs in the url")
        return value


class RouteSpec(_Spec):
    match: Annotated[
        dict[Annotated[str, AfterValidator(_label_name)], Values],
        BeforeValidator(_none_as_empty),
    ] = Field(default_factory=dict)
    receivers: Annotated[
        list[str], BeforeValidator(_one_or_more("must list at least one receiver name"))
    ]
    continue_: StrictBool = Field(default=False, alias="continue")

    @field_validator("receivers")
    @classmethod
    def _defined(cls, value: list[str], info: ValidationInfo) -> list[str]:
        known = (info.context or {}).get("receivers", ())
        unknown = [name for name in value if name not in known]
        if unknown:
            names = ", ".join(f"'{name}'" for name in unknown)
            listed = ", ".join(sorted(known)) or "none defined"
            plural = "s" if len(unknown) > 1 else ""
            raise ValueError(f"unknown receiver{plural} {names} (known: {listed})")
        return value


class NotifyFile(_Spec):
    language: Language = "zh"
    timezone: str = DEFAULT_TIMEZONE
    dedup_window: Duration = 25 * 60.0
    delivery: Annotated[DeliverySpec, BeforeValidator(_none_as_empty)] = Field(
        default_factory=DeliverySpec
    )
    departments: Annotated[
        dict[str, Annotated[str, BeforeValidator(_display_name)]],
        BeforeValidator(_none_as_empty),
    ] = Field(default_factory=dict)
    webhook_token: Annotated[str, BeforeValidator(_secret_text)] | None = None
    receivers: dict[Annotated[str, AfterValidator(_receiver_name)], ReceiverSpec] = Field(
        description="name: {type, url[, secret]} of each chat group"
    )
    routes: list[RouteSpec] = Field(description="a list of {match, receivers}")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("receivers")
    @classmethod
    def _some_receivers(cls, value: dict[str, ReceiverSpec]) -> dict[str, ReceiverSpec]:
        if not value:
            raise ValueError("must be a non-empty mapping of name: {type, url[, secret]}")
        return value

    @field_validator("routes")
    @classmethod
    def _some_routes(cls, value: list[RouteSpec]) -> list[RouteSpec]:
        if not value:
            raise ValueError("must be a non-empty list of {match, receivers}")
        return value


def _check_routes(doc: configfile.Document) -> None:
    """Routes after a catch-all are never reached, and a catch-all is required."""
    routes = doc.data.get("routes")
    if not isinstance(routes, list) or not routes:
        return
    catch_all_at: int | None = None
    for i, spec in enumerate(routes):
        if catch_all_at is not None:
            doc.add(
                ("routes", i),
                f"unreachable: route {catch_all_at} above matches every alert (and has no "
                "continue: true)",
            )
        elif isinstance(spec, dict) and not spec.get("match") and spec.get("continue") is not True:
            catch_all_at = i
    if catch_all_at is None:
        doc.add(
            ("routes",),
            "no catch-all route (one without match): an alert matching no route would be lost",
        )


# ------------------------------------------------------------------- loading


def _config(spec: NotifyFile, doc: configfile.Document) -> NotifyConfig:
    d = spec.delivery
    return NotifyConfig(
        receivers={
            name: Receiver(name, r.type, r.url, r.secret, r.language)
            for name, r in spec.receivers.items()
        },
        routes=tuple(
            Route(
                {label: frozenset(values) for label, values in route.match.items()},
                tuple(route.receivers),
                route.continue_,
                doc.lines.get(("routes", i), 0),
            )
            for i, route in enumerate(spec.routes)
        ),
        language=spec.language,
        timezone=spec.timezone,
        dedup_window_s=spec.dedup_window,
        delivery=Delivery(d.timeout, d.initial_backoff, d.max_backoff, d.give_up_after),
        departments={**DEPARTMENT_NAMES, **spec.departments},
        webhook_token=spec.webhook_token or None,
        source=doc.filename,
    )


def _parse(doc: configfile.Document) -> NotifyConfig:
    receivers = doc.data.get("receivers")
    known = set(receivers) if isinstance(receivers, dict) else set()
    spec = doc.validate(NotifyFile, context={"receivers": known})
    _check_routes(doc)
    try:
        doc.check()
    except configfile.ConfigFileError as exc:
        n = len(exc.problems)
        problems = "\n  ".join(map(str, exc.problems))
        raise NotifyConfigError(f"invalid notify file ({n} problem(s)):\n  {problems}") from None
    assert spec is not None  # no problems: validation succeeded
    return _config(spec, doc)


# Secrets stay exactly as written (a token of digits is not a number).
_SECRET_KEYS = ("secret", "webhook_token")


def parse_notify_config(
    text: str, source: str = "<config>", environ: Mapping[str, str] | None = None
) -> NotifyConfig:
    """Validate a notify file's text; raise NotifyConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    try:
        doc = configfile.parse(
            text,
            source,
            expect="a mapping with receivers and routes",
            keep_strings=_SECRET_KEYS,
            environ=environ,
        )
    except configfile.ConfigFileError as exc:
        raise NotifyConfigError(str(exc)) from None
    return _parse(doc)


def load_notify_config(path: Path, environ: Mapping[str, str] | None = None) -> NotifyConfig:
    """Read and validate a notify file (see parse_notify_config)."""
    try:
        text = configfile.read_text(path, "notify file")
    except configfile.ConfigFileError as exc:
        raise NotifyConfigError(str(exc)) from None
    return parse_notify_config(text, str(path), environ)
