"""The wallboard in headless Chromium: the numbers on screen are the document's numbers.

A tiny aiohttp server on 127.0.0.1 serves the very page and assets the worker
serves (the same `vocflow.streams.wallboard` functions) and a scripted
/api/stream. Chromium is driven over the DevTools protocol (see
wallboard_helpers.py, shared with the live test against a real worker), because
the test has to wait for live pushes: the first document on connect, a second
one on the same connection, then a reconnect after the server drops the stream,
delivering data that is too old and must turn the header red.

No Chromium is a failure with the install line, never a skip: a wallboard
nobody has rendered is not tested. Screenshots land in test-output/.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.e2e.wallboard_helpers import OUTPUT, assert_board, attr, chromium, kpi, val
from tests.unit.wallboard.test_wallboard import hot, sample_alert, sample_document
from vocflow.schemas.api import KpiDocument
from vocflow.streams.wallboard import (
    BoardFilter,
    page_response,
    sse_event,
    static_response,
    stream_payload,
)

pytestmark = pytest.mark.clock

QUEUES = ("billing_q", "network_q", "tech_q")


# ------------------------------------------------------------ the fake worker


@dataclass
class Feed:
    """A scripted /api/stream: one queue of frames per connection, None ends the stream."""

    connections: list[asyncio.Queue[bytes | None]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    on_connect: list[bytes] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.connections.append(frames)
        self.queries.append(dict(request.query))
        await resp.write(self.on_connect[min(len(self.connections), len(self.on_connect)) - 1])
        self.connected.set()
        with contextlib.suppress(ConnectionResetError):
            while (frame := await frames.get()) is not None:
                await resp.write(frame)
        return resp


def update(doc: dict[str, Any], query: dict[str, str], extras: dict[str, Any]) -> bytes:
    payload = stream_payload(KpiDocument.model_validate(doc), extras, BoardFilter.from_query(query))
    return sse_event(
        "update", {**payload, "server_time": datetime.now(UTC).isoformat()}, retry_ms=300
    )


@contextlib.asynccontextmanager
async def fake_worker(feed: Feed) -> AsyncIterator[str]:
    async def page(request: web.Request) -> web.StreamResponse:
        return page_response(request.query)

    async def static(request: web.Request) -> web.StreamResponse:
        return static_response(request.match_info["name"], request.headers.get("If-None-Match"))

    app = web.Application()
    app.router.add_get("/wallboard", page)
    app.router.add_get("/wallboard/static/{name}", static)
    app.router.add_get("/api/stream", feed.stream)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for frames in feed.connections:
            frames.put_nowait(None)
        await runner.cleanup()


# ------------------------------------------------------------ the tests


def second_document(doc: dict[str, Any]) -> dict[str, Any]:
    """doc with one tile of each colour and new queue state, freshly generated."""
    out = copy.deepcopy(doc)
    out["generated_at"] = datetime.now(UTC).isoformat()
    sl = out["intervals"]["15m"]["by"]["queue"]["service_level_ratio"]
    for queue, (num, den) in zip(QUEUES, [(18, 20), (31, 40), (7, 10)], strict=True):
        sl[queue] = {"value": num / den, "numerator": num, "denominator": den}
    out["now"]["queue"]["queue_depth"]["network_q"] = {
        "value": 12.0,
        "numerator": 12,
        "denominator": 1,
    }
    out["now"]["queue"]["oldest_waiting_seconds"]["network_q"] = {
        "value": 95.4,
        "numerator": 95400,
        "denominator": 1,
    }
    out["now"]["queue"]["queue_depth"].pop("billing_q", None)  # nobody waiting any more
    out["now"]["queue"]["oldest_waiting_seconds"].pop("billing_q", None)
    return out


def test_wallboard_renders_the_pushed_numbers_and_follows_live_updates() -> None:
    first = sample_document()
    first["generated_at"] = datetime.now(UTC).isoformat()
    extras = {
        "hot_topics": {"keyword": [hot("信号", 5), hot("断网", 31, alerting=True)]},
        "alerts": [sample_alert("network", "critical"), sample_alert("billing", "warning")],
    }
    query = {"queues": ",".join(QUEUES), "floor": "二楼 客服大厅", "lang": "zh"}

    async def main() -> None:
        feed = Feed(on_connect=[update(first, query, extras)])
        async with fake_worker(feed) as base, chromium() as browser:
            await browser.call("Page.navigate", url=f"{base}/wallboard?{urlencode(query)}")
            # 1. the document pushed on connect
            snap = await browser.wait_for("the first update", lambda s: s["updates"] >= 1)
            assert feed.queries[0] == {"queues": ",".join(QUEUES)}
            assert snap["state"] == "live" and snap["stale"] == "false"
            assert snap["hotTitle"] == "热点话题"
            assert_board(snap, first, QUEUES)
            assert [t["name"] for t in snap["tiles"]] == list(QUEUES)  # the kiosk's order
            shanghai = datetime.fromisoformat(first["generated_at"]).astimezone(
                ZoneInfo(first["timezone"])
            )
            assert snap["clock"] == shanghai.strftime("%H:%M:%S")
            assert snap["hot"] == ["断网", "信号"]
            assert snap["alerts"][0] == ["critical", "断网 投诉激增：5 分钟 42 条（基线 6）"]

            # 2. a new document on the same connection
            second = second_document(first)
            feed.connections[0].put_nowait(update(second, query, {}))
            snap = await browser.wait_for("the live update", lambda s: s["updates"] >= 2)
            assert_board(snap, second, QUEUES)
            assert [t["status"] for t in snap["tiles"]] == ["green", "amber", "red"]
            assert [t["slText"] for t in snap["tiles"]] == ["90", "77", "70"]
            assert snap["tiles"][1]["stats"]["waiting"] == "12"
            assert snap["tiles"][1]["stats"]["oldest"] == "1:35"
            assert snap["tiles"][0]["waiting"] == "0"
            assert snap["hot"] == [] and snap["alerts"] == []
            await browser.screenshot(OUTPUT / "wallboard.png")

            # 3. the server drops the stream: EventSource reconnects by itself, and data
            #    older than 30 s turns the header red
            old = copy.deepcopy(second)
            old["generated_at"] = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
            feed.on_connect.append(update(old, query, extras))
            feed.connections[0].put_nowait(None)
            snap = await browser.wait_for(
                "the reconnect", lambda s: len(feed.connections) >= 2 and s["updates"] >= 3
            )
            assert snap["stale"] == "true"
            assert_board(snap, old, QUEUES)
            await browser.screenshot(OUTPUT / "wallboard-stale.png")

    asyncio.run(main())


def test_wallboard_in_english_with_department_tiles() -> None:
    doc = sample_document()
    doc["generated_at"] = datetime.now(UTC).isoformat()
    dept = "unknown"  # the generated document routes nothing, so its one department group
    query = {"departments": dept, "lang": "en", "interval": "today"}

    async def main() -> None:
        feed = Feed(on_connect=[update(doc, query, {"alerts": [sample_alert("billing")]})])
        async with fake_worker(feed) as base, chromium() as browser:
            await browser.call("Page.navigate", url=f"{base}/wallboard?{urlencode(query)}")
            snap = await browser.wait_for("the first update", lambda s: s["updates"] >= 1)
            assert snap["hotTitle"] == "Hot topics"
            assert [(t["tile"], t["group"]) for t in snap["tiles"]] == [("department", dept)]
            sl = val(kpi(doc, "department", "service_level_ratio", dept, "today"))
            assert snap["tiles"][0]["sl"] == attr(sl)
            assert snap["alerts"] == []  # billing's alert is not for this board
            await browser.screenshot(OUTPUT / "wallboard-en.png")

    asyncio.run(main())
