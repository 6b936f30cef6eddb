"""The HTTP service skeleton shared by `vocflow ingest` and `vocflow notify`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter

from vocflow.streams.core import http


class Service:
    def __init__(self) -> None:
        self.ok = True
        self.events: list[str] = []
        self.registry = CollectorRegistry()
        self.hits = Counter("demo_hits", "Hits.", registry=self.registry)

    async def health(self) -> tuple[bool, dict[str, Any]]:
        return self.ok, {"status": "ok" if self.ok else "down"}

    async def start(self, app: web.Application) -> None:
        self.events.append("start")

    async def stop(self, app: web.Application) -> None:
        self.events.append("stop")

    async def echo(self, request: web.Request) -> web.Response:
        body = await http.read_body(request, 10)
        if body is None:
            return http.json_response(413, {"error": "too large"})
        self.hits.inc()
        return http.json_response(200, {"size": len(body)}, {"X-Seen": "1"})


def app_of(service: Service) -> web.Application:
    app = http.create_app(
        max_body_bytes=10,
        registry=service.registry,
        health=service.health,
        start=service.start,
        stop=service.stop,
    )
    app.router.add_post("/echo", service.echo)
    return app


def test_health_metrics_hooks_and_body_limit() -> None:
    service = Service()

    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"abcd"

    async def main() -> None:
        async with TestClient(TestServer(app_of(service))) as client:
            assert service.events == ["start"]
            response = await client.get("/healthz")
            assert (response.status, await response.json()) == (200, {"status": "ok"})
            service.ok = False
            response = await client.get("/healthz")
            assert (response.status, await response.json()) == (503, {"status": "down"})

            response = await client.post("/echo", data=b"0123456789")
            assert (response.status, await response.json()) == (200, {"size": 10})
            assert response.headers["X-Seen"] == "1"
            # too large by its Content-Length, and too large while streaming (chunked)
            response = await client.post("/echo", data=b"0123456789!")
            assert (response.status, await response.json()) == (413, {"error": "too large"})
            response = await client.post("/echo", data=chunks(3))
            assert (response.status, await response.json()) == (413, {"error": "too large"})
            response = await client.post("/echo", data=chunks(2))
            assert (response.status, await response.json()) == (200, {"size": 8})

            response = await client.get("/metrics")
            assert response.headers["Content-Type"].startswith("text/plain")
            assert "demo_hits_total 2.0" in await response.text()
        assert service.events == ["start", "stop"]

    asyncio.run(main())


def test_a_port_in_use_is_a_serve_error_with_the_hint() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = Service()
        with pytest.raises(http.ServeError) as info:
            http.serve(
                app_of(service),
                host="127.0.0.1",
                port=port,
                shutdown_timeout=1,
                access_log=None,
                port_hint="set VOCFLOW_DEMO_PORT or --port",
            )
    assert str(info.value).startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert str(info.value).endswith("; set VOCFLOW_DEMO_PORT or --port")
    assert service.events == ["start", "stop"]  # started, then cleaned up
