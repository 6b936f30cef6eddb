"""The skeleton of vocflow's small HTTP services (`vocflow ingest`, `vocflow notify`).

Only what both genuinely share: an aiohttp app whose service starts and stops
with it, ``/healthz`` (200 or 503, JSON) and ``/metrics`` (the service's own
Prometheus registry, so tests can run several apps in one process), request
bodies read up to a limit, and serving until SIGINT/SIGTERM with a bounded
graceful shutdown. The routes that do the work are each service's own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HealthCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
"""Answers (healthy, JSON body); /healthz returns it with 200, or 503 when unhealthy."""

Hook = Callable[[web.Application], Awaitable[None]]

_READ_CHUNK = 64 * 1024


class ServeError(Exception):
    """The server could not listen (address in use, no permission); the message says why."""


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def create_app(
    *,
    max_body_bytes: int,
    registry: CollectorRegistry,
    health: HealthCheck,
    start: Hook,
    stop: Hook,
) -> web.Application:
    """An app with /healthz and /metrics; ``start`` runs before it serves, ``stop`` after.

    Handlers read bodies with ``read_body(request, max_body_bytes)`` and answer
    an oversized one themselves; aiohttp's own limit is one byte above, so it
    never answers first.
    """

    async def healthz(request: web.Request) -> web.Response:
        ok, body = await health()
        return json_response(200 if ok else 503, body)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application(client_max_size=max_body_bytes + 1)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` (also for chunked uploads)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    access_log: logging.Logger | None,
    port_hint: str,
) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, give open requests up to
    ``shutdown_timeout`` seconds, and run the app's cleanup (the service's ``stop``).

    ``port_hint`` ends the message of a port that cannot be bound (which setting to change).
    """
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            print=None,
            access_log=access_log,
            shutdown_timeout=shutdown_timeout,
        )
    except OSError as exc:
        raise ServeError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; {port_hint}"
        ) from None
