"""What the wallboard browser tests share: Chromium over the DevTools protocol, the DOM
snapshot, and the numbers the page must show for a KPI document.

Chromium is driven over the DevTools protocol (a few lines over aiohttp's websocket
client) rather than `--dump-dom`, because the tests have to wait for live pushes.
No Chromium is a failure with the install line, never a skip: a wallboard nobody has
rendered is not tested. Screenshots land in test-output/.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import ROOT

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
WAIT_SECONDS = 20.0

# What the page shows, read back from the DOM: the data-* attributes hold the raw values.
SNAPSHOT = """!document.getElementById("freshness") ? "null" : JSON.stringify({
  updates: Number(document.body.dataset.updates),
  state: document.body.dataset.state,
  stale: document.getElementById("freshness").dataset.stale,
  clock: document.getElementById("updated-at").textContent,
  generatedAt: document.getElementById("updated-at").dataset.generatedAt,
  hotTitle: document.getElementById("hot-title").textContent,
  totals: {...document.getElementById("totals").dataset,
    slText: document.querySelector("#totals .total-sl .total-value")?.textContent},
  totalStats: Object.fromEntries([...document.querySelectorAll("#totals .total")].map(
    (t) => [t.dataset.k, t.querySelector(".total-value").textContent])),
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


def expected_tile(
    doc: dict[str, Any], by: str, group: str, interval: str = "15m"
) -> dict[str, Any]:
    depth = now_kpi(doc, by, "queue_depth", group)
    sl = val(kpi(doc, by, "service_level_ratio", group, interval))
    asa = val(kpi(doc, by, "asa_seconds", group, interval))
    abandon = val(kpi(doc, by, "abandonment_ratio", group, interval))
    return {
        "group": group,
        "sl": attr(sl),
        "status": status(sl),
        "slText": "–" if sl is None else pct_floor(sl),
        "waiting": attr(val(depth) if depth else 0),
        "oldest": attr(val(now_kpi(doc, by, "oldest_waiting_seconds", group))),
        "asa": attr(asa),
        "abandon": attr(abandon),
        "stats": {
            "waiting": str(js_round(val(depth) if depth else 0)),
            "oldest": duration(val(now_kpi(doc, by, "oldest_waiting_seconds", group))),
            "asa": duration(asa),
            "abandon": pct1(abandon),
        },
    }


def floor_ratio(
    doc: dict[str, Any], groups: tuple[str, ...], name: str, interval: str, scale: float = 1.0
) -> float | None:
    """A ratio KPI over several queues: summed numerators over summed denominators."""
    cells = [k for g in groups if (k := kpi(doc, "queue", name, g, interval))]
    den = sum(k["denominator"] for k in cells)
    return sum(k["numerator"] for k in cells) / den / scale if den else None


def expected_totals(
    doc: dict[str, Any], groups: tuple[str, ...], interval: str = "15m"
) -> dict[str, str]:
    """The floor's totals from numerators and denominators, as the page must compute them."""
    sl = floor_ratio(doc, groups, "service_level_ratio", interval)
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


def assert_board(
    snap: dict[str, Any], doc: dict[str, Any], groups: tuple[str, ...], interval: str = "15m"
) -> None:
    """The queue tiles (in the kiosk's order) and the floor totals show exactly `doc`."""
    keys = ("group", "sl", "status", "slText", "waiting", "oldest", "asa", "abandon", "stats")
    assert [pick(t, keys) for t in snap["tiles"]] == [
        expected_tile(doc, "queue", q, interval) for q in groups
    ]
    totals = expected_totals(doc, groups, interval)
    assert pick(snap["totals"], totals) == totals


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

    async def evaluate(self, expression: str) -> Any:
        """The JSON-able value of `expression` in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def snapshot(self) -> dict[str, Any] | None:
        """The page's state, None while the wallboard page is not loaded yet."""
        return orjson.loads(await self.evaluate(SNAPSHOT))

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


def browser_env() -> dict[str, str]:
    """Chromium keeps the real clock when the tests run under libfaketime (the clock
    matrix): a wall screen is another machine with a clock of its own, which the page
    must cope with (it corrects by the server's time in every push). Faked, Chromium's
    timers stall under libfaketime and nothing would render at all."""
    return {
        k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")
    }


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    binary = chromium_binary()
    # Chromium's helper processes may still write to the profile while they exit.
    with tempfile.TemporaryDirectory(
        prefix="vocflow-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            env=browser_env(),
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
