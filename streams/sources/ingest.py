"""`vocflow ingest`: the signed HTTP front door of the channel adapters.

``POST /v1/events/{channel}`` takes one native item (or a JSON array of them)
from a channel system, runs the adapter of ``channel`` over each item and
publishes the resulting ContactEvents to ``contacts.raw`` keyed by
``contact_id``. Reference for senders: docs/ingest.md.

Design choices, and why:

* **202 means durable.** An item is reported ``accepted`` only after Kafka
  acknowledged every event it produced (idempotent producer, ``acks=all``).
  A sender may therefore delete its copy on a 202; anything else (503,
  connection reset) means "not confirmed, send again". Resending is harmless:
  adapters derive ``event_id`` from the native record, and the pipeline drops
  duplicates by ``event_id``.
* **Bounded memory instead of buffering.** Events waiting for an ack are
  counted; a request that would go beyond ``ingest_max_in_flight``, or whose
  acks do not come within ``ingest_produce_timeout_s``, is answered 503 with
  ``Retry-After``. A slow or dead Kafka thus pushes back on the senders (which
  keep their own queues) instead of growing this process until it dies.
* **Authenticated senders.** Each source has its own HMAC-SHA256 secret and
  list of channels (the sources file); the signed timestamp must be within
  ``ingest_timestamp_window_s`` so that a captured request cannot be replayed
  later. Secrets are compared in constant time.
* **Rate limit per source, in items.** A token bucket per source
  (``rate_per_s``, ``burst``; sources file or ``ingest_source_rate_per_s``)
  answers 429 with ``Retry-After`` before any adapter runs, so that one
  runaway sender cannot take the capacity (CPU, Kafka in-flight budget) of all
  the others. It counts items, not requests: batching must not buy a higher
  rate. It is checked after the signature, so a forged request cannot spend a
  source's budget.
* **No personal data in logs.** Bodies are never logged, only sizes, counts,
  channel, source and reason codes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from vocflow.streams.core import configfile, http, kafka_clients, kafka_diagnosis
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.sources.adapters import ADAPTERS, AdapterError
from vocflow.streams.sources.rate_limit import TokenBucket, default_burst, retry_after_header

log = logging.getLogger("vocflow.ingest")

SOURCE_HEADER = "X-Vocflow-Source"
TIMESTAMP_HEADER = "X-Vocflow-Timestamp"
SIGNATURE_HEADER = "X-Vocflow-Signature"
SIGNATURE_PREFIX = "sha256="

JSON_FORMATS = frozenset({"cti", "chat", "sms", "survey", "freeswitch"})
"""Formats whose body may be a JSON array of items, each accepted or rejected on its own.
(FreeSWITCH also takes plain-text ESL; only a body starting with ``[`` is split.)"""

MIN_SECRET_BYTES = 16
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEALTH_CACHE_S = 1.0
_HEALTH_TIMEOUT_S = 3.0
_RATE_LOG_EVERY_S = 30.0


# ---------------------------------------------------------------- sources file


class SourcesError(Exception):
    """The sources file is wrong; the message names file:line and what to fix."""


@dataclass(frozen=True)
class Source:
    """One sending system: its shared secret, the channel formats it may post, its rate limit.

    ``rate_per_s`` None: the settings default (``ingest_source_rate_per_s``)
    applies. ``burst`` None: two seconds' worth of the rate (``default_burst``).
    """

    name: str
    secret: bytes = field(repr=False)
    channels: frozenset[str]
    rate_per_s: float | None = None
    burst: int | None = None


def _source_name(name: str) -> str:
    if not _SOURCE_NAME.match(name):
        raise ValueError(
            f"a source name is 1-64 of A-Z a-z 0-9 . _ - (it is sent in {SOURCE_HEADER})"
        )
    return name


def _channel(value: object) -> str:
    if not isinstance(value, str) or value not in ADAPTERS:
        raise ValueError(f"unknown channel {value!r}; known: {', '.join(ADAPTERS)}")
    return value


class SourceSpec(BaseModel):
    """One entry of the sources file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str = Field(
        description="the source's HMAC key, at least 16 bytes; e.g. secret: ${VARIABLE}"
    )
    channels: list[Annotated[str, BeforeValidator(_channel)]] = Field(
        description=f"list of {', '.join(ADAPTERS)}"
    )

    rate_per_s: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        strict=True,  # YAML `true` or '20' is a mistake, not 1.0 or 20
        description="items per second this source may post (beyond: 429); "
        "unset: VOCFLOW_INGEST_SOURCE_RATE_PER_S",
    )
    burst: int | None = Field(
        default=None,
        gt=0,
        strict=True,
        description="items it may post at once after a quiet spell; "
        "default: 2 x rate_per_s (at least 1); needs rate_per_s",
    )

    @field_validator("burst")
    @classmethod
    def _burst_needs_rate(cls, value: int | None, info: ValidationInfo) -> int | None:
        # A burst alone would silently follow a settings default that may be 0 (unlimited).
        # (rate_per_s is validated first; absent from info.data when it was invalid itself.)
        if value is not None and "rate_per_s" in info.data and info.data["rate_per_s"] is None:
            raise ValueError("given without rate_per_s; give both, or rate_per_s alone")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        size = len(value.encode("utf-8"))
        if size < MIN_SECRET_BYTES:
            raise ValueError(
                f"{size} bytes is too short; use at least {MIN_SECRET_BYTES} random bytes "
                "(e.g. `openssl rand -hex 32`)"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"must be a non-empty list of {', '.join(ADAPTERS)}")
        return value


SourcesFile = dict[Annotated[str, AfterValidator(_source_name)], SourceSpec]


def _where(loc: configfile.Loc, data: Any) -> str:
    if not loc:
        return ""
    rest = configfile.path_text(loc[1:])
    return f"source {loc[0]!r}" + (f": {rest}" if rest else "")


def load_sources(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Source]:
    """Read and validate the sources file; every problem is reported as ``file:line: ...``.

    Format (a mapping of source name -> settings)::

        cti-main:
          secret: ${VOCFLOW_SECRET_CTI}   # at least 16 bytes, random
          channels: [cti, freeswitch]
          rate_per_s: 200                 # optional: items/s (default: the setting)
          burst: 1000                     # optional: items at once (default: 2 x rate)

    ``${VARIABLE}`` is replaced by the environment variable's value, so the
    file itself can be committed or mounted without the secret in it. (The
    older ``secret_env: VARIABLE`` is still accepted, with a warning, until
    the next release.)
    """
    environ = os.environ if environ is None else environ
    try:
        doc = configfile.load(
            path,
            what="the sources file",
            expect="a mapping of source name -> settings",
            keep_strings=("secret",),  # as written: a secret of digits is not a number
            environ=environ,
            where=_where,
        )
    except configfile.ConfigFileError as exc:
        raise SourcesError(str(exc)) from None
    if doc.empty:
        raise SourcesError(f"{path}:1: no sources defined; ingest would refuse every request")
    _secret_env(doc, environ)
    specs = doc.validate(SourcesFile)
    if specs is not None and not specs:
        doc.add((), "no sources defined; ingest would refuse every request")
    try:
        doc.check()
    except configfile.ConfigFileError as exc:
        problems = "\n  ".join(map(str, exc.problems))
        raise SourcesError(f"invalid sources file:\n  {problems}") from None
    assert specs is not None  # no problems: validation succeeded
    return {
        name: Source(
            name,
            spec.secret.encode("utf-8"),
            frozenset(spec.channels),
            rate_per_s=spec.rate_per_s,
            burst=spec.burst,
        )
        for name, spec in specs.items()
    }


def _secret_env(doc: configfile.Document, environ: Mapping[str, str]) -> None:
    """Deprecated ``secret_env: VAR`` (until the next release): as ``secret: ${VAR}``."""
    for name, spec in doc.data.items():
        if not isinstance(spec, dict) or "secret_env" not in spec:
            continue
        var = spec.pop("secret_env")
        loc = (name, "secret_env")
        if "secret" in spec:
            doc.add(loc, "give 'secret' or the deprecated 'secret_env', not both")
            continue
        line = doc.lines[loc]
        log.warning(
            "%s:%d: source '%s': secret_env is deprecated; write secret: ${%s}",
            doc.filename,
            line,
            name,
            var,
        )
        doc.lines[(name, "secret")] = line
        if isinstance(var, str) and var in environ:
            spec["secret"] = doc.expand((name, "secret"), "${" + var + "}", environ)
        else:
            doc.add((name, "secret"), f"environment variable {var!r} (secret_env) is not set")


# ------------------------------------------------------------------ signatures


def sign(secret: bytes | str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Vocflow-Signature`` value: ``sha256=`` + hex HMAC(secret, ts + "." + body).

    The timestamp is inside the MAC so that it cannot be changed to make an
    old captured request look fresh.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    mac = hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(
    source: str, secret: bytes | str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """Headers of a request signed now (for Python senders, tests and the benchmark)."""
    timestamp = int(time.time() if now is None else now)
    return {
        SOURCE_HEADER: source,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        "Content-Type": "application/octet-stream",
    }


class AuthError(Exception):
    """A request that is not signed correctly; ``status`` 401 or 403, ``code`` a metric label."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def verify(
    sources: Mapping[str, Source],
    headers: Mapping[str, str],
    body: bytes,
    channel: str,
    *,
    now: float,
    window_s: int,
) -> Source:
    """Return the authenticated source of a request or raise AuthError.

    The order matters: the MAC is checked before the channel permission, so an
    unauthenticated caller learns nothing about which source may post where.
    """
    name = headers.get(SOURCE_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not name or not stamp or not signature:
        missing = [
            h
            for h, v in (
                (SOURCE_HEADER, name),
                (TIMESTAMP_HEADER, stamp),
                (SIGNATURE_HEADER, signature),
            )
            if not v
        ]
        raise AuthError(401, "missing_headers", f"missing header(s): {', '.join(missing)}")
    source = sources.get(name)
    if source is None:
        raise AuthError(401, "unknown_source", f"unknown source {name[:64]!r}")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise AuthError(
            401, "bad_timestamp", f"{TIMESTAMP_HEADER} must be unix time in whole seconds"
        )
    if abs(now - int(stamp)) > window_s:
        raise AuthError(
            401,
            "stale_timestamp",
            f"{TIMESTAMP_HEADER} is {int(now) - int(stamp)} s off the server clock; the window "
            f"is ±{window_s} s (sign each request when sending it; check NTP)",
        )
    if not hmac.compare_digest(sign(source.secret, stamp, body), signature.strip()):
        raise AuthError(
            401,
            "bad_signature",
            f"{SIGNATURE_HEADER} does not match: expected sha256=<hex HMAC-SHA256 of "
            "timestamp + '.' + body with the source's secret>",
        )
    if channel not in source.channels:
        raise AuthError(
            403,
            "channel_not_allowed",
            f"source '{name}' may post to {', '.join(sorted(source.channels))}, not '{channel}'",
        )
    return source


# -------------------------------------------------------------------- metrics


class IngestMetrics:
    """Prometheus metrics of one ingest app, in a registry of its own.

    A registry per app (not the global one) so that tests and a benchmark can
    run several apps in one process. ``channel`` labels are ADAPTERS keys or
    ``unknown``: the URL is user input and must not create label values.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vocflow_ingest_requests",
            "HTTP requests to /v1/events by channel and answered status.",
            ["channel", "status"],
            registry=self.registry,
        )
        self.accepted = Counter(
            "vocflow_ingest_items_accepted",
            "Items acknowledged by Kafka (every event they produced is durable).",
            ["channel"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "vocflow_ingest_items_rejected",
            "Items not accepted, by reason (adapter reasons, kafka_unavailable, overloaded).",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.events = Counter(
            "vocflow_ingest_events_produced",
            "ContactEvents acknowledged by Kafka.",
            ["channel"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "vocflow_ingest_items_rate_limited",
            "Items refused by the per-source rate limit, by reason (rate_limited: 429, send "
            "again later; above_burst: 413, a request larger than the burst never passes).",
            ["source", "reason"],  # source: a name from the sources file, never raw input
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "vocflow_ingest_auth_failures",
            "Requests refused by the signature check, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "vocflow_ingest_produce_seconds",
            "Time from send to Kafka acknowledgement of one event.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "vocflow_ingest_in_flight",
            "Events sent to Kafka and not yet acknowledged.",
            registry=self.registry,
        )
        self.kafka_up = Gauge(
            "vocflow_ingest_kafka_up",
            "1 if the last Kafka health check succeeded.",
            registry=self.registry,
        )


# ------------------------------------------------------------------- producer


class Producer(Protocol):
    """What ingest needs of aiokafka's AIOKafkaProducer (a fake one in unit tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]: ...


ProducerFactory = Callable[[Settings], Producer]
HealthCheck = Callable[[], Awaitable[bool]]


def kafka_producer(settings: Settings) -> Producer:
    """The real producer: idempotent, acks from all in-sync replicas.

    Idempotence makes aiokafka's internal retries (after a lost connection)
    free of duplicates; ``acks="all"`` makes an ack mean the event survives
    the loss of the partition leader.
    """
    return kafka_clients.aio_producer(
        settings,
        "ingest",
        linger_ms=2,
        compression_type=None,
        max_request_size=max(settings.max_event_bytes + 1024, 1_048_576),
        # Batches not delivered by then fail; the in-flight bound covers the rest.
        request_timeout_ms=int(max(30.0, settings.ingest_produce_timeout_s * 3) * 1000),
    )


class Overloaded(Exception):
    """Too many events wait for Kafka already; the request is refused, not queued."""


class ProduceGate:
    """Sends events and counts the ones Kafka has not acknowledged yet.

    The count is released only when Kafka answers (or the send fails), not
    when the HTTP request gives up waiting: a timed-out request still holds
    memory in the producer, so new requests must keep being refused until
    Kafka catches up.
    """

    def __init__(
        self, producer: Producer | None, topic: str, limit: int, metrics: IngestMetrics
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.limit = limit
        self.metrics = metrics
        self.in_flight = 0

    def reserve(self, n: int) -> None:
        """Admit ``n`` more events or raise Overloaded.

        A request larger than the whole limit is admitted when nothing else
        is in flight, so that a big batch is never refused forever.
        """
        if self.in_flight and self.in_flight + n > self.limit:
            raise Overloaded(f"{self.in_flight} events wait for Kafka (limit {self.limit})")
        self._add(n)

    def _add(self, n: int) -> None:
        self.in_flight += n
        self.metrics.in_flight.set(self.in_flight)

    def send(self, key: bytes, value: bytes) -> asyncio.Task[None]:
        """Send one reserved event; the task ends with Kafka's ack (or the error).

        The reservation is released exactly once: when Kafka answers if the
        record was queued in the producer, else when the task ends (failed or
        cancelled, even before it started).
        """
        queued = False
        started = time.monotonic()

        def acked(fut: asyncio.Future[Any]) -> None:
            self._add(-1)
            if not fut.cancelled() and fut.exception() is None:
                self.metrics.produce_latency.observe(time.monotonic() - started)

        async def run() -> None:
            nonlocal queued
            assert self.producer is not None, "send() before the app started"
            fut = await self.producer.send(self.topic, value=value, key=key)
            queued = True
            fut.add_done_callback(acked)
            # Shielded: giving up on the wait must not cancel the delivery itself.
            await asyncio.shield(fut)

        def ended(task: asyncio.Task[None]) -> None:
            if not queued:
                self._add(-1)

        task = asyncio.ensure_future(run())
        task.add_done_callback(ended)
        return task


# ------------------------------------------------------------------------ app


@dataclass
class ItemResult:
    """One item of a request: accepted (with its event ids), rejected, or unavailable."""

    index: int
    status: str = "pending"
    event_ids: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    events: list[tuple[bytes, bytes]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.status == "accepted":
            out["event_ids"] = self.event_ids
        if self.error is not None:
            out["error"] = self.error
        return out


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return http.json_response(status, {"error": code, "message": message, **extra})


def split_items(channel: str, body: bytes) -> list[bytes]:
    """One native item per adapter call, so that each is accepted or rejected alone.

    Adapters treat an array as all-or-nothing; here a JSON array body is cut
    into its elements first. Anything else (one object, invalid JSON, e-mail,
    XML) is one item and the adapter says what is wrong with it.
    """
    if channel not in JSON_FORMATS or body.lstrip()[:1] != b"[":
        return [body]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [body]
    if not isinstance(doc, list):
        return [body]
    # A nested array would be a batch inside the batch: let the adapter refuse it
    # as not_an_object rather than accept it as several items at one index.
    return [orjson.dumps(item) if not isinstance(item, list) else b'"nested array"' for item in doc]


class IngestService:
    """The aiohttp handlers plus the producer they share."""

    def __init__(
        self,
        settings: Settings,
        sources: Mapping[str, Source],
        producer_factory: ProducerFactory = kafka_producer,
        health_check: HealthCheck | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sources = dict(sources)
        self.buckets = rate_limits(self.sources, settings.ingest_source_rate_per_s, monotonic)
        self._monotonic = monotonic
        self._rate_log: dict[str, tuple[float, int]] = {}  # source -> (logged at, refused since)
        self.metrics = IngestMetrics()
        self.topic = T.Topics(settings).name(T.RAW)
        # aiokafka binds its producer to the running loop: made in start(), not here.
        self._producer_factory = producer_factory
        self.producer: Producer | None = None
        self.gate = ProduceGate(None, self.topic, settings.ingest_max_in_flight, self.metrics)
        self._health_check = health_check or self._kafka_metadata_ok
        self._health: tuple[float, bool] = (0.0, False)
        self._clock = clock
        self.channels = sorted(ADAPTERS)

    # ---- lifecycle

    async def start(self, app: web.Application) -> None:
        self.producer = self.gate.producer = self._producer_factory(self.settings)
        await self.producer.start()
        log.info(
            "ingest: producing to %s on %s; %d source(s); max body %d bytes, "
            "max in flight %d, produce timeout %.1fs; %d source(s) rate-limited",
            self.topic,
            self.settings.bootstrap_servers,
            len(self.sources),
            self.settings.ingest_max_body_bytes,
            self.settings.ingest_max_in_flight,
            self.settings.ingest_produce_timeout_s,
            len(self.buckets),
        )

    async def stop(self, app: web.Application) -> None:
        # stop() flushes what is queued: requests still waiting get their acks.
        if self.producer is not None:
            await self.producer.stop()
        log.info("ingest: producer stopped")

    # ---- /healthz and /metrics

    async def _kafka_metadata_ok(self) -> bool:
        client = getattr(self.producer, "client", None)
        if client is None:
            return True
        await client.fetch_all_metadata()  # raises KafkaError when no broker answers
        return True

    async def kafka_ok(self) -> bool:
        """Cached for a second, so a busy load balancer cannot turn into a metadata storm."""
        checked_at, ok = self._health
        if time.monotonic() - checked_at < _HEALTH_CACHE_S:
            return ok
        try:
            ok = await asyncio.wait_for(self._health_check(), _HEALTH_TIMEOUT_S)
        except Exception as exc:
            log.warning("ingest: Kafka health check failed: %s", type(exc).__name__)
            ok = False
        self._health = (time.monotonic(), ok)
        self.metrics.kafka_up.set(1 if ok else 0)
        return ok

    async def health(self) -> tuple[bool, dict[str, Any]]:
        ok = await self.kafka_ok()
        body = {
            "status": "ok" if ok else "kafka_unavailable",
            "kafka": self.settings.bootstrap_servers,
            "topic": self.topic,
            "in_flight": self.gate.in_flight,
        }
        return ok, body

    # ---- POST /v1/events/{channel}

    async def post_events(self, request: web.Request) -> web.StreamResponse:
        channel = request.match_info["channel"]
        label = channel if channel in ADAPTERS else "unknown"
        response = await self._post(request, channel)
        self.metrics.requests.labels(label, str(response.status)).inc()
        return response

    async def _post(self, request: web.Request, channel: str) -> web.StreamResponse:
        settings = self.settings
        if channel not in ADAPTERS:
            return _error(
                404,
                "unknown_channel",
                f"no adapter for channel {channel[:64]!r}; use one of {', '.join(self.channels)}",
                channels=self.channels,
            )
        limit = settings.ingest_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._too_large(request.content_length, limit)
        body = await http.read_body(request, limit)
        if body is None:
            return self._too_large(None, limit)
        try:
            source = verify(
                self.sources,
                request.headers,
                body,
                channel,
                now=self._clock(),
                window_s=settings.ingest_timestamp_window_s,
            )
        except AuthError as exc:
            self.metrics.auth_failures.labels(exc.code).inc()
            log.info(
                "ingest: refused %s request from %s: %s",
                channel,
                request.remote,
                exc.code,
            )
            return _error(exc.status, exc.code, exc.message)
        raw_items = split_items(channel, body)
        if not raw_items:
            return _error(400, "empty_batch", "the JSON array has no items")
        if len(raw_items) > settings.ingest_max_batch_items:
            return _error(
                413,
                "too_many_items",
                f"{len(raw_items)} items in one request; the limit is "
                f"{settings.ingest_max_batch_items}: split the batch",
                limit=settings.ingest_max_batch_items,
            )
        refused = self._rate_limit(source, len(raw_items))
        if refused is not None:
            return refused
        items = self._parse(channel, source, raw_items)
        return await self._produce_and_answer(channel, source, items)

    def _rate_limit(self, source: Source, n: int) -> web.Response | None:
        """None if the source may post ``n`` more items now, else the 413/429 answer.

        Checked before the adapters run, so a refused request costs little
        and nothing of it is published. The 429 body has the shape of a 503
        (every item ``unavailable``), so a sender that resends unavailable
        items after ``Retry-After`` needs nothing new.
        """
        bucket = self.buckets.get(source.name)
        if bucket is None:
            return None
        rate = f"{bucket.rate_per_s:g} items/s, burst {bucket.burst}"
        if n > bucket.burst:
            # 413, not 429: waiting never helps, and a Retry-After would make it loop.
            self.metrics.rate_limited.labels(source.name, "above_burst").inc(n)
            return _error(
                413,
                "above_burst",
                f"{n} items in one request; source '{source.name}' may post at most "
                f"{bucket.burst} at once (its burst; {rate}): split the batch",
                limit=bucket.burst,
            )
        wait = bucket.take(n)
        if not wait:
            return None
        retry_after = retry_after_header(wait)
        self.metrics.rate_limited.labels(source.name, "rate_limited").inc(n)
        self._log_rate_limited(source.name, n, rate)
        items = [ItemResult(i, status="unavailable") for i in range(n)]
        for item in items:
            item.error = {
                "reason": "rate_limited",
                "loc": "",
                "message": f"not published; send this item again after {retry_after} s",
            }
        body = {
            "accepted": 0,
            "rejected": 0,
            "unavailable": n,
            "items": [item.to_json() for item in items],
            "error": "rate_limited",
            "message": f"source '{source.name}' may post {rate}; nothing of this request of {n} "
            f"item(s) was published: send it again after {retry_after} s",
            "rate_per_s": bucket.rate_per_s,
            "burst": bucket.burst,
        }
        return http.json_response(429, body, {"Retry-After": retry_after})

    def _log_rate_limited(self, name: str, n: int, rate: str) -> None:
        """One line per source per 30 s: a sender hammering the limit must not flood the log."""
        now = self._monotonic()
        logged_at, refused = self._rate_log.get(name, (now - _RATE_LOG_EVERY_S, 0))
        refused += n
        if now - logged_at >= _RATE_LOG_EVERY_S:
            log.warning(
                "ingest: 429 for source %s: %d item(s) refused by its rate limit (%s)",
                name,
                refused,
                rate,
            )
            self._rate_log[name] = (now, 0)
        else:
            self._rate_log[name] = (logged_at, refused)

    def _too_large(self, size: int | None, limit: int) -> web.Response:
        told = f"{size} bytes" if size is not None else "more than that"
        return _error(
            413,
            "body_too_large",
            f"request body is {told}; the limit is {limit} bytes (VOCFLOW_INGEST_MAX_BODY_BYTES):"
            " send smaller batches",
            limit=limit,
        )

    def _parse(self, channel: str, source: Source, raw_items: list[bytes]) -> list[ItemResult]:
        adapter = ADAPTERS[channel]
        items = []
        for index, raw in enumerate(raw_items):
            item = ItemResult(index)
            try:
                events = adapter(raw, source=source.name)
            except AdapterError as exc:
                item.status = "rejected"
                item.error = exc.to_json()
                self.metrics.rejected.labels(channel, exc.reason.value).inc()
            else:
                for ev in events:
                    item.event_ids.append(ev["event_id"])
                    item.events.append((ev["contact_id"].encode(), orjson.dumps(ev)))
            items.append(item)
        return items

    async def _produce_and_answer(
        self, channel: str, source: Source, items: list[ItemResult]
    ) -> web.Response:
        valid = [item for item in items if item.status == "pending"]
        n_events = sum(len(item.events) for item in valid)
        retry_after = str(self.settings.ingest_retry_after_s)
        overloaded = False
        if n_events:
            try:
                self.gate.reserve(n_events)
            except Overloaded as exc:
                overloaded = True
                log.warning("ingest: 503 for %s from %s: %s", channel, source.name, exc)
            else:
                await self._send_items(channel, valid)
        for item in valid:
            if item.status == "pending" and not item.events:
                item.status = "accepted"  # e.g. a WeChat subscribe push: nothing to store
            elif item.status == "pending":
                item.status = "unavailable"
                item.error = {
                    "reason": "overloaded" if overloaded else "kafka_unavailable",
                    "loc": "",
                    "message": "not confirmed by Kafka; send this item again later",
                }
                self.metrics.rejected.labels(channel, item.error["reason"]).inc()
        counts = {s: sum(1 for i in items if i.status == s) for s in ("accepted", "rejected")}
        unavailable = len(items) - counts["accepted"] - counts["rejected"]
        for item in items:
            if item.status == "accepted":
                self.metrics.accepted.labels(channel).inc()
                self.metrics.events.labels(channel).inc(len(item.events))
        body: dict[str, Any] = {
            "accepted": counts["accepted"],
            "rejected": counts["rejected"],
            "unavailable": unavailable,
            "items": [item.to_json() for item in items],
        }
        if unavailable:
            status = 503
            body["error"] = "overloaded" if overloaded else "kafka_unavailable"
            body["message"] = (
                "Kafka did not confirm every event; items marked unavailable must be sent again "
                f"(after {retry_after} s). Resending accepted items is harmless (same event_id)."
            )
            headers = {"Retry-After": retry_after}
        else:
            status = 202 if not counts["rejected"] else 207 if counts["accepted"] else 422
            headers = None
        log.debug(
            "ingest: %s from %s: %d accepted, %d rejected, %d unavailable",
            channel,
            source.name,
            counts["accepted"],
            counts["rejected"],
            unavailable,
        )
        return http.json_response(status, body, headers)

    async def _send_items(self, channel: str, items: list[ItemResult]) -> None:
        """Send every event, wait for acks up to the produce timeout, mark items accepted."""
        owner: dict[asyncio.Task[None], ItemResult] = {}
        for item in items:
            for key, value in item.events:
                owner[self.gate.send(key, value)] = item
        done, pending = await asyncio.wait(owner, timeout=self.settings.ingest_produce_timeout_s)
        for task in pending:
            task.cancel()  # the record may still be delivered; the sender retries anyway
        failed: set[int] = {owner[t].index for t in pending}
        errors = set()
        for task in done:
            exc = task.exception()
            if exc is not None:
                failed.add(owner[task].index)
                errors.add(type(exc).__name__)
        if pending or errors:
            log.warning(
                "ingest: Kafka did not acknowledge %d of %d events of a %s request (%s)",
                len(pending) + sum(1 for t in done if t.exception() is not None),
                len(owner),
                channel,
                ", ".join(sorted(errors)) or "timeout",
            )
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for item in items:
            if item.index not in failed:
                item.status = "accepted"


def rate_limits(
    sources: Mapping[str, Source],
    default_rate_per_s: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, TokenBucket]:
    """A bucket per rate-limited source: its own rate, else the default (0: unlimited)."""
    buckets = {}
    for name, source in sources.items():
        rate = source.rate_per_s or default_rate_per_s
        if rate > 0:
            burst = source.burst if source.burst is not None else default_burst(rate)
            buckets[name] = TokenBucket(rate, burst, monotonic)
    return buckets


SERVICE: web.AppKey[IngestService] = web.AppKey("service", IngestService)
"""Where the app keeps its IngestService (metrics, gate), for tests and embedding."""


def create_app(
    settings: Settings,
    sources: Mapping[str, Source],
    *,
    producer_factory: ProducerFactory = kafka_producer,
    health_check: HealthCheck | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The ingest web app; the producer starts and stops with it.

    ``clock`` is wall time for the signature window, ``monotonic`` the time of
    the rate-limit buckets (both injected by tests).
    """
    service = IngestService(
        settings,
        sources,
        producer_factory=producer_factory,
        health_check=health_check,
        clock=clock,
        monotonic=monotonic,
    )
    app = http.create_app(
        max_body_bytes=settings.ingest_max_body_bytes,
        registry=service.metrics.registry,
        health=service.health,
        start=service.start,
        stop=service.stop,
    )
    app[SERVICE] = service
    app.router.add_post("/v1/events/{channel}", service.post_events)
    return app


class QuietRepeats(logging.Filter):
    """Lets the same log message through once per ``every_s`` seconds.

    Only for aiokafka's records: it logs every failed reconnect (ten a second
    while Kafka is down); the first line says all an operator needs, the rest
    would bury ours.
    """

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self._last.get(key, -self.every_s) < self.every_s:
            return False
        self._last[key] = now
        return True


class IngestStartError(Exception):
    """The server could not start (Kafka unreachable, port taken); the message says why."""


def run_ingest(settings: Settings, sources: Mapping[str, Source]) -> None:
    """Serve until SIGINT/SIGTERM; then finish open requests and flush the producer."""
    app = create_app(settings, sources)
    quiet = QuietRepeats()
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)
    print(
        f"vocflow ingest: http://{settings.ingest_host}:{settings.ingest_port}/v1/events/<channel>"
        f" -> {T.Topics(settings).name(T.RAW)} on {settings.bootstrap_servers}; "
        f"/healthz, /metrics",
        flush=True,
    )
    try:
        http.serve(
            app,
            host=settings.ingest_host,
            port=settings.ingest_port,
            shutdown_timeout=settings.ingest_produce_timeout_s + 5,
            access_log=log if settings.log_level.lower() == "debug" else None,
            port_hint="set VOCFLOW_INGEST_PORT or --port",
        )
    except http.ServeError as exc:
        raise IngestStartError(str(exc)) from None
    except Exception as exc:
        from aiokafka.errors import KafkaError

        if isinstance(exc, KafkaError):
            cause = kafka_diagnosis.diagnose(settings)
            raise IngestStartError(
                f"cannot connect to Kafka: {cause}"
                if cause
                else f"no Kafka broker answered at {settings.bootstrap_servers} "
                f"({type(exc).__name__}); check VOCFLOW_KAFKA_BOOTSTRAP"
            ) from None
        raise
