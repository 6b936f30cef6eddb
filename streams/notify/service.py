"""`vocflow notify`: Alertmanager webhooks -> the on-call supervisors' chat groups.

Alertmanager decides *whether* and *when* to notify (grouping, inhibition,
silences, repeats; deploy/alertmanager/alertmanager.yml). This service decides
*where* and *how*: it routes each alert by its labels (department, severity)
to WeCom, DingTalk, Feishu, Slack or generic webhook receivers, and renders it
so that a supervisor reading a phone can act on it. Operator guide:
docs/alerting.md. The parts, one module each:

* config.py -- the routing file: receivers, routes, timings (``${VAR}`` secrets);
* webhook.py -- Alertmanager's webhook body, and when two alerts are the same;
* outbox.py -- the durable SQLite queue, with de-duplication;
* render.py -- the message a supervisor reads; channels.py -- each chat tool's payload;
* this module -- the HTTP service and the sender tasks.

Design choices, and why:

* **200 means durable.** Each notification is written to the outbox before
  Alertmanager gets its 200. If the write fails Alertmanager gets a 500 and
  retries. A sender task per receiver then delivers in order with exponential
  backoff and jitter, so a chat tool's outage or a restart of this process
  loses nothing: pending rows resume. Delivery to the chat tool is therefore
  at-least-once (a crash between its answer and our commit repeats one
  message), like Alertmanager's own.
* **Alertmanager's duplicates are dropped.** Alertmanager is at-least-once
  too (HA peers, retried webhooks, a group re-sent when a new alert joins
  it). An alert is queued for a receiver only if the same receiver + group +
  fingerprint + status + startsAt was not queued within ``dedup_window``.
  The window must be shorter than the shortest ``repeat_interval`` in
  alertmanager.yml, so that Alertmanager's deliberate reminders still get
  through (they are marked as reminders); tests check the two files agree.
* **Rendered at send time.** The outbox keeps the alerts, not the text, so a
  message delivered after an outage says how long the alert has lasted *now*,
  and signatures (DingTalk, Feishu) are fresh on every attempt.
* **No secrets in logs or metrics.** Receivers are named by their ``name``;
  URLs (which hold WeCom keys and DingTalk tokens) and secrets are masked in
  every error text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vocflow.streams.core import http
from vocflow.streams.core.settings import Settings
from vocflow.streams.notify.channels import build_request, check_answer
from vocflow.streams.notify.config import (
    NAME,
    NotifyConfig,
    NotifyConfigError,
    Receiver,
    load_notify_config,
)
from vocflow.streams.notify.outbox import Outbox, OutboxRow
from vocflow.streams.notify.render import _Lang, format_duration, render
from vocflow.streams.notify.webhook import PayloadError, parse_webhook

# NotifyConfigError and load_notify_config live in config.py; the CLI imports them from here.
__all__ = [
    "MAX_BODY_BYTES",
    "SERVICE",
    "NotifyConfigError",
    "NotifyService",
    "NotifyStartError",
    "create_app",
    "default_outbox_path",
    "load_notify_config",
    "run_notify",
]

log = logging.getLogger("vocflow.notify")

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest webhook body accepted (Alertmanager's groups are far smaller)."""

_R = TypeVar("_R")


class _PendingCollector(Collector):
    """``vocflow_notify_pending`` and the age of the oldest pending row, per receiver."""

    def __init__(self, service: NotifyService) -> None:
        self.service = service

    def collect(self) -> Iterable[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "vocflow_notify_pending",
            "Notifications in the outbox not yet delivered, by receiver.",
            labels=["receiver"],
        )
        oldest = GaugeMetricFamily(
            "vocflow_notify_oldest_pending_seconds",
            "Age of the oldest undelivered notification, by receiver (0: none).",
            labels=["receiver"],
        )
        now = self.service.clock()
        for name in sorted(set(self.service.config.receivers) | set(self.service.pending)):
            count, first = self.service.pending.get(name, (0, now))
            pending.add_metric([name], count)
            oldest.add_metric([name], max(now - first, 0.0) if count else 0.0)
        yield pending
        yield oldest


class NotifyService:
    """Webhook handler, outbox and one sender task per receiver."""

    def __init__(
        self,
        config: NotifyConfig,
        outbox_path: Path,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.outbox_path = outbox_path
        self.clock = clock
        self.rng = rng
        self.outbox: Outbox | None = None
        self.pending: dict[str, tuple[int, float]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-outbox")
        self._wake = {name: asyncio.Event() for name in config.receivers}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.registry = CollectorRegistry()
        self.alerts_received = Counter(
            "vocflow_notify_alerts_received",
            "Alerts received from Alertmanager, by status.",
            ["status"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "vocflow_notify_duplicates",
            "Alerts dropped as duplicates (same receiver, group, fingerprint, status, startsAt).",
            registry=self.registry,
        )
        self.sent = Counter(
            "vocflow_notify_sent",
            "Notifications delivered, by receiver.",
            ["receiver"],
            registry=self.registry,
        )
        self.failed = Counter(
            "vocflow_notify_failed",
            "Failed delivery attempts (each is retried), by receiver.",
            ["receiver"],
            registry=self.registry,
        )
        self.given_up = Counter(
            "vocflow_notify_given_up",
            "Notifications dropped after delivery.give_up_after, by receiver.",
            ["receiver"],
            registry=self.registry,
        )
        self.delay = Histogram(
            "vocflow_notify_delay_seconds",
            "From Alertmanager's webhook to the chat tool's acceptance, by receiver.",
            ["receiver"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        for name in config.receivers:
            for metric in (self.sent, self.failed, self.given_up):
                metric.labels(name)
        self.registry.register(_PendingCollector(self))

    # ------------------------------------------------------------ lifecycle

    async def _db(self, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _require_outbox(self) -> Outbox:
        if self.outbox is None:
            raise RuntimeError("notify service not started")
        return self.outbox

    async def start(self, app: web.Application | None = None) -> None:
        self.outbox = await self._db(Outbox, self.outbox_path)
        outbox = self.outbox
        await self._db(outbox.prune, self.clock())
        self.pending = await self._db(outbox.pending)
        for name, (count, _) in sorted(self.pending.items()):
            if name in self.config.receivers:
                log.info("notify: resuming %d pending notification(s) for %s", count, name)
            else:
                log.warning(
                    "notify: %d pending notification(s) for receiver '%s', which is not in %s; "
                    "they stay in the outbox until it is configured again",
                    count,
                    name,
                    self.config.source,
                )
        timeout = aiohttp.ClientTimeout(total=self.config.delivery.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._tasks = [
            asyncio.create_task(self._sender(name), name=f"notify-{name}")
            for name in self.config.receivers
        ]

    async def stop(self, app: web.Application | None = None) -> None:
        """Stop the senders; a delivery cut short stays pending and is retried next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.outbox is not None:
            await self._db(self.outbox.close)
            self.outbox = None
        self._executor.shutdown(wait=True)

    async def rows(self, state: str | None = None) -> list[dict[str, Any]]:
        """The outbox's rows (troubleshooting, tests); read on the outbox's own thread."""
        return await self._db(self._require_outbox().rows, state)

    async def _refresh_pending(self) -> None:
        self.pending = await self._db(self._require_outbox().pending)

    # ------------------------------------------------------------- webhook

    def _authorised(self, request: web.Request) -> bool:
        token = self.config.webhook_token
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def alertmanager(self, request: web.Request) -> web.Response:
        """POST /alertmanager[/{department}]: queue durably, then answer 200."""
        if not self._authorised(request):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        target = request.match_info.get("target") or request.query.get("department")
        if target is not None and not NAME.match(target):
            return web.json_response({"error": f"bad department {target!r}"}, status=400)
        body = await http.read_body(request, MAX_BODY_BYTES)
        if body is None:
            error = f"body larger than {MAX_BODY_BYTES} bytes"
            return web.json_response({"error": error}, status=413)
        try:
            notification, alerts = parse_webhook(body)
        except PayloadError as exc:
            log.warning("notify: rejected a webhook: %s", exc)
            return web.json_response({"error": str(exc)}, status=400)
        batches: dict[str, list[dict[str, Any]]] = {}
        for alert in alerts:
            self.alerts_received.labels(alert["status"]).inc()
            labels = dict(alert["labels"])
            if target:
                # Alertmanager's route already chose whose on-call is paged.
                labels["department"] = target
            for receiver in self.config.route(labels):
                batches.setdefault(receiver, []).append(alert)
        try:
            result = await self._db(
                self._require_outbox().enqueue,
                batches,
                notification,
                now=self.clock(),
                window_s=self.config.dedup_window_s,
            )
            await self._refresh_pending()
        except sqlite3.Error as exc:
            log.error("notify: cannot write the outbox %s: %s", self.outbox_path, exc)
            return web.json_response({"error": "outbox unavailable, retry"}, status=500)
        self.duplicates.inc(result.duplicates)
        for receiver in batches:
            self._wake[receiver].set()
        return web.json_response({"queued": result.queued, "duplicates": result.duplicates})

    async def health(self) -> tuple[bool, dict[str, Any]]:
        try:
            await self._refresh_pending()
        except (sqlite3.Error, RuntimeError) as exc:
            return False, {"status": "outbox unavailable", "error": str(exc)}
        pending = {name: count for name, (count, _) in self.pending.items()}
        return True, {"status": "ok", "pending": pending}

    # -------------------------------------------------------------- senders

    async def _sleep_or_wake(self, event: asyncio.Event, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    async def _sender(self, name: str) -> None:
        """Deliver ``name``'s rows in order; a failing head row is retried with backoff.

        Head-of-line blocking is deliberate: a "resolved" must not overtake the
        "firing" it resolves.
        """
        receiver = self.config.receivers[name]
        wake = self._wake[name]
        delivery = self.config.delivery
        outbox = self._require_outbox()
        while True:
            try:
                wake.clear()
                row = await self._db(outbox.head, name)
                now = self.clock()
                if row is None:
                    await self._sleep_or_wake(wake, None)
                    continue
                if row.next_attempt_at > now:
                    await self._sleep_or_wake(wake, row.next_attempt_at - now)
                    continue
                give_up = delivery.give_up_after_s
                if give_up is not None and now - row.created_at > give_up and row.attempts:
                    await self._db(outbox.mark_expired, row.id, now)
                    await self._refresh_pending()
                    self.given_up.labels(name).inc()
                    log.error(
                        "notify: gave up on notification %d for %s after %d attempts over %s",
                        row.id,
                        name,
                        row.attempts,
                        format_duration(now - row.created_at, _Lang("en")),
                    )
                    continue
                error = await self._deliver(receiver, row, now)
                done = self.clock()
                if error is None:
                    await self._db(outbox.mark_sent, row.id, done)
                    await self._refresh_pending()
                    self.sent.labels(name).inc()
                    self.delay.labels(name).observe(max(done - row.created_at, 0.0))
                    continue
                wait = delivery.backoff(row.attempts + 1, self.rng)
                await self._db(outbox.mark_failed, row.id, done + wait, error)
                self.failed.labels(name).inc()
                log.warning(
                    "notify: delivery %d to %s (%s) failed, attempt %d, retry in %.1fs: %s",
                    row.id,
                    name,
                    receiver.type,
                    row.attempts + 1,
                    wait,
                    error,
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the loop alive: an outbox hiccup must not stop delivery
                log.exception("notify: sender for %s failed; retrying in 5s", name)
                await asyncio.sleep(5)

    async def _deliver(self, receiver: Receiver, row: OutboxRow, now: float) -> str | None:
        """One attempt; None on success, else a reason with every secret masked."""
        if self._session is None:
            return "not started"
        payload = row.payload
        try:
            message = render(
                payload["alerts"],
                language=receiver.language or self.config.language,
                tz=self.config.tz,
                now=now,
                departments=self.config.departments,
                external_url=payload.get("externalURL") or None,
            )
            request = build_request(
                receiver.type,
                receiver.url,
                message,
                secret=receiver.secret,
                now=now,
                receiver=receiver.name,
            )
            async with self._session.post(
                request.url, data=request.body, headers=dict(request.headers)
            ) as response:
                body = await response.content.read(64 * 1024)
                error = check_answer(receiver.type, response.status, body)
        except TimeoutError:
            error = f"no answer within {self.config.delivery.timeout_s:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bad row must not kill the sender; it is logged and retried
            error = f"{type(exc).__name__}: {exc}"
        return None if error is None else receiver.redact(error)


SERVICE: web.AppKey[NotifyService] = web.AppKey("notify_service", NotifyService)
"""Where the app keeps its NotifyService, for tests and embedding."""


def default_outbox_path(settings: Settings) -> Path:
    """Where the outbox lives: the setting, else under the data directory."""
    return Path(settings.notify_outbox_file or settings.data_dir / "notify" / "outbox.sqlite3")


def create_app(
    config: NotifyConfig,
    outbox_path: Path,
    *,
    clock: Callable[[], float] = time.time,
    rng: Callable[[], float] = random.random,
) -> web.Application:
    """The notify web app; the outbox and senders start and stop with it."""
    service = NotifyService(config, outbox_path, clock=clock, rng=rng)
    app = http.create_app(
        max_body_bytes=MAX_BODY_BYTES,
        registry=service.registry,
        health=service.health,
        start=service.start,
        stop=service.stop,
    )
    app[SERVICE] = service
    app.router.add_post("/alertmanager", service.alertmanager)
    app.router.add_post("/alertmanager/{target}", service.alertmanager)
    return app


class NotifyStartError(Exception):
    """The server could not start (port taken, outbox unwritable); the message says why."""


def run_notify(settings: Settings, config: NotifyConfig) -> None:
    """Serve until SIGINT/SIGTERM; pending notifications stay in the outbox for next time."""
    outbox = default_outbox_path(settings)
    try:
        Outbox(outbox).close()
    except (OSError, sqlite3.Error) as exc:
        raise NotifyStartError(f"cannot open the outbox {outbox}: {exc}") from None
    app = create_app(config, outbox)
    receivers = ", ".join(f"{r.name} ({r.type})" for r in config.receivers.values())
    print(
        f"vocflow notify: http://{settings.notify_host}:{settings.notify_port}/alertmanager"
        f"[/<department>] -> {receivers}; outbox {outbox}; /healthz, /metrics",
        flush=True,
    )
    try:
        http.serve(
            app,
            host=settings.notify_host,
            port=settings.notify_port,
            shutdown_timeout=5,
            access_log=log if settings.log_level.lower() == "debug" else None,
            port_hint="set VOCFLOW_NOTIFY_PORT or --port",
        )
    except http.ServeError as exc:
        raise NotifyStartError(str(exc)) from None
