"""The wallboard's drill-down in headless Chromium against a real worker: clicking a
tile's number opens the side panel with exactly the contacts `/api/contacts` lists for
that tile, and its CSV link asks the same list as CSV.

Same setup as the live test (test_wallboard_live.py, whose traffic and waits it
reuses): real broker, real `vocflow worker` with embedded ClickHouse, one batch of
simulated traffic that ended before the test began, so nothing changes while the page
and the test both ask for the list. The batch stays inside the rolling 60 minutes for
about 20 minutes, far longer than the test runs.

The tile is chosen from /api/kpis, not hard-coded: the first queue with answered
contacts in a KPI round after the traffic was stored (the ASA number's drill-down is
the `answered` list, `DRILL.asa` in wallboard.js; abandons are too rare in a short
simulated morning to be sure of one). The
click is a real mouse press and release at the number's place on the screen, so the
page's own click handling (one listener on #tiles) is what opens the panel.

Broker or Chromium missing is a failure, never a skip. Screenshot: test-output/.
"""

from __future__ import annotations

import asyncio
import csv as csv_module
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import orjson
import pytest

from tests.e2e.test_wallboard_live import ALIGN_SECONDS, Steps, batch, wait_ingested
from tests.e2e.wallboard_helpers import OUTPUT, Browser, chromium, chromium_binary, kpi
from tests.integration.conftest import running_worker, vocflow, worker_env
from vocflow.streams.core.settings import load_settings
from vocflow.streams.tools.simulator.publish import publish

pytestmark = [pytest.mark.integration, pytest.mark.clock]

INTERVAL = "60m"
LIST = "answered"  # what the ASA number of a tile opens (the ASA denominator)
PANEL_ROWS = 50  # DRILL_ROWS in wallboard.js: the panel's first page

# The open panel as the page shows it.
PANEL = """JSON.stringify((() => {
  const p = document.getElementById("drill");
  return {hidden: p.hidden, ...p.dataset,
    csv: document.getElementById("drill-csv").getAttribute("href"),
    ids: [...p.querySelectorAll(".drill-row")].map((li) => li.dataset.contactId)};
})())"""


def number_of(queue: str) -> str:
    """The selector of a queue tile's ASA number."""
    return f'.tile[data-group="{queue}"] .stat[data-k="asa"]'


async def click(browser: Browser, selector: str) -> None:
    """A real left click in the middle of the element (scrolled into view first)."""
    box = await browser.evaluate(
        f"""(() => {{ const e = document.querySelector('{selector}');
        if (!e) return null; e.scrollIntoView({{block: "center"}});
        const r = e.getBoundingClientRect();
        return [r.left + r.width / 2, r.top + r.height / 2]; }})()"""
    )
    assert box is not None, f"nothing on the page matches {selector}"
    x, y = box
    for kind in ("mousePressed", "mouseReleased"):
        await browser.call(
            "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
        )


async def contacts(session: aiohttp.ClientSession, url: str, **query: str) -> dict[str, Any]:
    async with session.get(f"{url}/api/contacts?{urlencode(query)}") as resp:
        body = await resp.read()
        assert resp.status == 200, body[:500]
        return dict(orjson.loads(body))


async def kpis_after(session: aiohttp.ClientSession, url: str, since: datetime) -> dict[str, Any]:
    """The first /api/kpis document of a KPI round that began after `since` (the
    per-contact deltas the lists read are written by the KPI round)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ALIGN_SECONDS
    while loop.time() < deadline:
        async with session.get(f"{url}/api/kpis") as resp:
            if resp.status == 200:  # 503 until the first round
                doc = dict(orjson.loads(await resp.read()))
                if datetime.fromisoformat(doc["generated_at"]) > since:
                    return doc
        await asyncio.sleep(0.5)
    raise AssertionError(f"no KPI round after {since} within {ALIGN_SECONDS:.0f}s")


def test_clicking_a_tile_lists_the_contacts_behind_its_number(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    chromium_binary()  # no Chromium fails here, before minutes of setup, not a skip
    prefix = f"wd{uuid.uuid4().hex[:8]}."
    data = tmp_path / "data"
    data.mkdir()
    shot = OUTPUT / "wallboard-drilldown.png"
    shot.unlink(missing_ok=True)
    env = worker_env(kafka_bootstrap, prefix, data, VOCFLOW_KPI_REFRESH_SECONDS="2")
    created = vocflow("topics", "--create", env=env)
    assert created.returncode == 0, created.stderr
    traffic = batch(3, datetime.now(UTC) - timedelta(minutes=40), 13, morning_hour=9.5)
    counts = publish(load_settings(environ=env), traffic.config)
    assert counts["contact"] == traffic.events, counts
    step = Steps(data / "worker.log")
    step(f"published {traffic.events} contact events")

    with step.explained(), running_worker(env, step.log) as url:
        settled = wait_ingested(url, traffic.events, len(traffic.first_event))
        step("traffic in ClickHouse")

        async def main() -> None:
            async with chromium() as browser, aiohttp.ClientSession() as session:
                doc = await kpis_after(session, url, settled)
                numerators = {
                    q: (kpi(doc, "queue", "asa_seconds", q, INTERVAL) or {}).get("denominator")
                    for q in traffic.queues
                }
                queue = next((q for q, n in numerators.items() if n), None)
                assert queue is not None, numerators
                step(f"{queue}: {numerators[queue]} answered in {doc['generated_at']}")
                board = {"queues": ",".join(traffic.queues), "interval": INTERVAL, "lang": "en"}
                await browser.call("Page.navigate", url=f"{url}/wallboard?{urlencode(board)}")
                await browser.wait_for(
                    "a board with KPIs",
                    lambda s: any(t["group"] == queue and t["asa"] for t in s["tiles"]),
                    timeout=ALIGN_SECONDS,
                )
                await click(browser, number_of(queue))
                panel: dict[str, Any] = {}
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while loop.time() < deadline:
                    panel = orjson.loads(await browser.evaluate(PANEL))
                    if panel.get("state") in ("ready", "error"):
                        break
                    await asyncio.sleep(0.1)
                step(f"panel {panel.get('state')}: {len(panel.get('ids', []))} rows")
                await browser.screenshot(shot)

                # What the page asked for, asked again by the test (the data no longer moves).
                expected = await contacts(
                    session, url, kpi=LIST, interval=INTERVAL, queue=queue, limit=str(PANEL_ROWS)
                )
                assert expected["total"] == numerators[queue]  # the list is the number
                ids = [c["contact_id"] for c in expected["contacts"]]
                assert len(ids) == min(expected["total"], PANEL_ROWS)
                assert panel["hidden"] is False
                assert panel["state"] == "ready", panel
                assert (panel["list"], panel["group"]) == (LIST, queue)
                assert panel["ids"] == ids
                assert panel["total"] == str(expected["total"])
                totals = expected["kpi_totals"]
                assert (panel["numerator"], panel["denominator"]) == (
                    str(totals["numerator"]),
                    str(totals["denominator"]),
                )

                csv = urlsplit(panel["csv"])
                assert csv.path == "/api/contacts"
                assert parse_qs(csv.query) == {
                    "kpi": [LIST],
                    "interval": [INTERVAL],
                    "queue": [queue],
                    "format": ["csv"],
                    "limit": ["10000"],
                }
                # The link works: the whole list as CSV, newest first like the panel.
                async with session.get(url + panel["csv"]) as resp:
                    assert resp.status == 200
                    assert resp.content_type == "text/csv"
                    text = (await resp.read()).decode("utf-8-sig")
                rows = list(csv_module.DictReader(io.StringIO(text)))
                assert len(rows) == expected["total"]
                assert [r["contact_id"] for r in rows[: len(ids)]] == ids

        asyncio.run(main())
        step("done")

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
