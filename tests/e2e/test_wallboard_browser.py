"""The wallboard in headless Chromium: the numbers on screen are the document's numbers.

A tiny aiohttp server on 127.0.0.1 serves the very page and assets the worker
serves (the same `vocflow.streams.wallboard` functions) and a scripted
/api/stream. Chromium is driven over the DevTools protocol (a few lines over
aiohttp's websocket client) rather than `--dump-dom`, because the test has to
wait for live pushes: the first document on connect, a second one on the same
connection, then a reconnect after the server drops the stream, delivering data
that is too old and must turn the header red.

No Chromium is a failure with the install line, never a skip: a wallboard
nobody has rendered is not tested. Screenshots land in test-output/.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import math
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import ROOT, free_port
from tests.unit.test_wallboard import hot, sample_alert, sample_document
from vocflow.streams.wallboard import (
    BoardFilter,
    page_response,
    sse_event,
    static_response,
    stream_payload,
)

OUTPUT = ROOT / "test-output"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--window-size=1920,1080",
]
QUEUES = ("billing_q", "network_q", "tech_q")
WAIT_SECONDS = 20.0

# What the page shows, read back from the DOM: the data-* attributes hold the raw values.
SNAPSHOT = """!document.getElementById("freshness") ? "null" : JSON.stringify({
  updates: Number(document.body.dataset.updates),
  state: document.body.dataset.state,
  stale: document.getElementById("freshness").dataset.stale,
  clock: document.getElementById("updated-at").textContent,
  hotTitle: document.getElementById("hot-title").textContent,
  totals: {...document.getElementById("totals").dataset,
    slText: document.querySelector("#totals .total-sl .total-value")?.textContent},
  tiles: [...document.querySelectorAll(".tile")].map((t) => ({...t.dataset,
    name: t.querySelector(".tile-name").textContent,
    slText: t.querySelector(".sl-value").textContent,
    stats: Object.fromEntries([...t.querySelectorAll(".stat")].map(
      (s) => [s.dataset.k, s.querySelector(".stat-value").textContent]))})),
  hot: [...document.querySelectorAll("#hot .hot-row")].map((li) => li.dataset.key),
  alerts: [...document.querySelectorAll("#alerts .alert")].map(
    (li) => [li.dataset.severity, li.querySelector(".alert-text").textContent]),
})"""


def chromium_binary() -> str:
    for name in (os.environ.get("VOCFLOW_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return str(shutil.which(name))
    pytest.fail(
        "headless Chromium is needed for the wallboard browser test and was not found; "
        "install it: apt-get install -y chromium fonts-noto-cjk (or set VOCFLOW_CHROMIUM)"
    )


# ------------------------------------------------------------ expected values


def js_round(x: float) -> int:
    """Math.round: halves go up (Python's round() goes to even)."""
    return math.floor(x + 0.5)


def pct_floor(v: float) -> str:
    return str(math.floor(v * 100 + 1e-9))


def pct1(v: float | None) -> str:
    if v is None:
        return "–"
    shown = Decimal(v * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)  # toFixed(1)
    return f"{shown}%"


def duration(s: float | None) -> str:
    if s is None:
        return "–"
    total = js_round(s)
    if total < 60:
        return f"{total}s"
    h, m, sec = total // 3600, total % 3600 // 60, total % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def attr(v: float | None) -> str:
    """String(v) in JS for the values a KPI document holds."""
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def status(v: float | None) -> str:
    if v is None:
        return "none"
    pct = v * 100 + 1e-9
    return "green" if pct >= 80 else "amber" if pct >= 75 else "red"


def kpi(doc: dict[str, Any], by: str, name: str, group: str, interval: str = "15m") -> Any:
    return doc["intervals"][interval]["by"][by].get(name, {}).get(group)


def now_kpi(doc: dict[str, Any], by: str, name: str, group: str) -> Any:
    return doc["now"][by].get(name, {}).get(group)


def val(k: dict[str, Any] | None) -> float | None:
    return None if k is None else k["value"]


def expected_tile(doc: dict[str, Any], by: str, group: str) -> dict[str, Any]:
    depth = now_kpi(doc, by, "queue_depth", group)
    sl = val(kpi(doc, by, "service_level_ratio", group))
    return {
        "group": group,
        "sl": attr(sl),
        "status": status(sl),
        "slText": "–" if sl is None else pct_floor(sl),
        "waiting": attr(val(depth) if depth else 0),
        "oldest": attr(val(now_kpi(doc, by, "oldest_waiting_seconds", group))),
        "asa": attr(val(kpi(doc, by, "asa_seconds", group))),
        "abandon": attr(val(kpi(doc, by, "abandonment_ratio", group))),
        "stats": {
            "waiting": str(js_round(val(depth) if depth else 0)),
            "oldest": duration(val(now_kpi(doc, by, "oldest_waiting_seconds", group))),
            "asa": duration(val(kpi(doc, by, "asa_seconds", group))),
            "abandon": pct1(val(kpi(doc, by, "abandonment_ratio", group))),
        },
    }


def expected_totals(doc: dict[str, Any], groups: tuple[str, ...]) -> dict[str, str]:
    """The floor's totals from numerators and denominators, as the page must compute them."""

    def ratio(name: str, scale: float = 1.0) -> float | None:
        cells = [k for g in groups if (k := kpi(doc, "queue", name, g))]
        den = sum(k["denominator"] for k in cells)
        return sum(k["numerator"] for k in cells) / den / scale if den else None

    sl = ratio("service_level_ratio")
    waits = [now_kpi(doc, "queue", "oldest_waiting_seconds", g) for g in groups]
    return {
        "scope": "totalFloor",
        "sl": attr(sl),
        "status": status(sl),
        "slText": "–" if sl is None else f"{pct_floor(sl)}%",
        "waiting": attr(sum(val(now_kpi(doc, "queue", "queue_depth", g)) or 0 for g in groups)),
        "oldest": attr(max((w["value"] for w in waits if w), default=None)),
    }


def pick(d: dict[str, Any], keys: Any) -> dict[str, Any]:
    return {k: d.get(k) for k in keys}


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
    payload = stream_payload(doc, extras, BoardFilter.from_query(query))
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


# ------------------------------------------------------------ Chromium over CDP


class Browser:
    """Just enough of the DevTools protocol: navigate, evaluate, screenshot."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:  # events of other domains arrive in between: skip them
            msg = await self.ws.receive_json(timeout=30)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def snapshot(self) -> dict[str, Any] | None:
        """The page's state, None while the wallboard page is not loaded yet."""
        result = await self.call("Runtime.evaluate", expression=SNAPSHOT, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return orjson.loads(result["result"]["value"])

    async def wait_for(
        self, what: str, ok: Callable[[dict[str, Any]], bool], timeout: float = WAIT_SECONDS
    ) -> dict[str, Any]:
        snap: dict[str, Any] | None = None
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            snap = await self.snapshot()
            if snap is not None and ok(snap):
                return snap
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; page shows {snap}")

    async def screenshot(self, path: Path) -> None:
        result = await self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    binary = chromium_binary()
    # Chromium's helper processes may still write to the profile while they exit.
    with tempfile.TemporaryDirectory(
        prefix="vocflow-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: we stop exactly what we started
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            for _ in range(300):
                if port_file.exists() and port_file.read_text().strip():
                    break
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"chromium exited with {proc.returncode}: {err[-2000:]}")
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("chromium did not open its DevTools port within 30 s")
            port = int(port_file.read_text().split()[0])
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    targets = await resp.json()
                url = next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]
                async with session.ws_connect(url, max_msg_size=64 * 1024 * 1024) as ws:
                    browser = Browser(ws)
                    await browser.call("Page.enable")
                    await browser.call(
                        "Emulation.setDeviceMetricsOverride",
                        width=1920,
                        height=1080,
                        deviceScaleFactor=1,
                        mobile=False,
                    )
                    yield browser
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


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


def assert_board(snap: dict[str, Any], doc: dict[str, Any]) -> None:
    keys = ("group", "sl", "status", "slText", "waiting", "oldest", "asa", "abandon", "stats")
    assert [pick(t, keys) for t in snap["tiles"]] == [
        expected_tile(doc, "queue", q) for q in QUEUES
    ]
    totals = expected_totals(doc, QUEUES)
    assert pick(snap["totals"], totals) == totals


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
            assert_board(snap, first)
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
            assert_board(snap, second)
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
            assert_board(snap, old)
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
