"""The wallboard of a real worker in headless Chromium: real broker, real `vocflow worker`
(embedded ClickHouse, KPI refresh), simulated traffic; the page's numbers equal /api/kpis.

The document changes on every KPI refresh (its `generated_at` at least), and the page
receives it over SSE a few seconds later, so "the page equals /api/kpis" only means
something for one and the same document. The page exposes the `generated_at` of the
document it rendered (`#updated-at[data-generated-at]`); the test polls /api/kpis,
keeps every version it sees by `generated_at`, and compares the page with the version
whose `generated_at` is the one the page shows. A DOM snapshot is one synchronous
script evaluation and the page renders a document synchronously, so the snapshot is
exactly one rendered document; `generated_at` has microseconds, so it names one
refresh.

Traffic comes from the simulator's `publish()`, the function `vocflow simulate` runs:
a simulated 09:30-09:56 stamped to end 14 minutes before the test begins
(`SimConfig.starting_at`), so the load and the queues are the same at any hour. Two
batches with their own ids: the first before the page opens, the second while it is
open, after which the same page (no reload) shows the new numbers. The kiosk shows the
rolling 60 minutes, which holds both batches for the whole test.

Broker or Chromium missing is a failure, never a skip. Screenshots: test-output/.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest

from tests.e2e.wallboard_helpers import (
    OUTPUT,
    Browser,
    assert_board,
    attr,
    chromium,
    chromium_binary,
    duration,
    expected_totals,
    floor_ratio,
    js_round,
    kpi,
    pct1,
    val,
)
from tests.integration.conftest import get_json, running_worker, vocflow, wait_for, worker_env
from vocflow.streams.core.settings import load_settings
from vocflow.streams.tools.simulator import SimConfig, simulate
from vocflow.streams.tools.simulator.publish import publish

pytestmark = [pytest.mark.integration, pytest.mark.clock]

INTERVAL = "60m"
FLOOR = "三楼 实时大厅"
TZ = "Asia/Shanghai"
SIM_DATE = date(2026, 11, 23)  # the simulated day; its events are stamped around now
INGEST_SECONDS = 300.0  # two cores shared with other test runs: be patient
ALIGN_SECONDS = 180.0


@dataclass(frozen=True)
class Batch:
    """One `publish()` of simulated traffic and what it holds."""

    config: SimConfig
    events: int
    first_event: dict[str, datetime]  # contact id -> its first event's time
    queues: tuple[str, ...]


def batch(seed: int, start: datetime, minutes: float, morning_hour: float) -> Batch:
    """Simulated traffic of a busy morning (from `morning_hour`) stamped from `start`:
    the same load and queues whatever the hour the test runs at."""
    config = SimConfig(
        seed=seed,
        start_date=SIM_DATE,
        tz=TZ,
        start_hour=morning_hour,
        duration_hours=minutes / 60,
        contacts_per_day=40_000,
        customers=2_000,
        id_prefix=f"wb{seed}",  # contact and agent ids of their own: no batch overwrites another
    ).starting_at(start)
    first: dict[str, datetime] = {}
    queues = set()
    events = 0
    for record in simulate(config):
        if record.kind != "contact":
            continue
        events += 1
        value = record.value
        at = datetime.fromisoformat(value["occurred_at"])
        cid = value["contact_id"]
        first[cid] = min(at, first.get(cid, at))
        if value.get("queue"):
            queues.add(value["queue"])
    return Batch(config, events, first, tuple(sorted(queues)))


def wait_ingested(url: str, events: int, contacts: int) -> datetime:
    """Wait until ClickHouse holds every contact event and fact; returns when it did."""
    last: dict[str, Any] = {}

    def done() -> bool:
        last.clear()
        last.update(get_json(f"{url}/api/stats"))
        counts = last.get("clickhouse", {})
        return counts.get("contact_events") == events and counts.get("contact_facts") == contacts

    try:
        wait_for(done, INGEST_SECONDS, f"{events} contact events / {contacts} facts in ClickHouse")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; /api/stats said {last}") from None
    return datetime.now(UTC)


class Steps:
    """What the test got through and when: printed, and in a failure with the worker's log."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.t0 = time.monotonic()
        self.done: list[str] = []

    def __call__(self, what: str) -> None:
        self.done.append(f"{time.monotonic() - self.t0:6.1f}s {what}")
        print(self.done[-1])

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            steps = "\n".join(self.done)
            raise AssertionError(
                f"{exc}\n--- steps done ---\n{steps}\n--- {self.log.name} (end) ---\n{tail}"
            ) from exc


# ------------------------------------------------------------ page vs /api/kpis


async def board_and_kpis(
    browser: Browser, session: aiohttp.ClientSession, url: str, since: datetime, what: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page's snapshot and the /api/kpis document it rendered (same `generated_at`),
    for the first rendered document generated at or after `since`."""
    seen: dict[str, dict[str, Any]] = {}
    snap: dict[str, Any] | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ALIGN_SECONDS
    while loop.time() < deadline:
        async with session.get(f"{url}/api/kpis") as resp:
            if resp.status == 200:  # 503 until the first refresh
                doc = orjson.loads(await resp.read())
                seen[doc["generated_at"]] = doc
        snap = await browser.snapshot()
        if snap is not None and (shown := snap.get("generatedAt")):
            at = datetime.fromisoformat(shown)
            if at >= since and shown in seen:
                return snap, seen[shown]
            # the page only moves forward: older versions can never match again
            seen = {g: d for g, d in seen.items() if datetime.fromisoformat(g) >= at}
        await asyncio.sleep(0.25)
    raise AssertionError(
        f"timed out after {ALIGN_SECONDS:.0f}s waiting for {what}: the page shows the "
        f"document of {(snap or {}).get('generatedAt')!r}, /api/kpis served {sorted(seen)}"
    )


def assert_live_board(
    snap: dict[str, Any], doc: dict[str, Any], queues: tuple[str, ...], batches: list[Batch]
) -> None:
    """Every number on the board is the document's, and the document holds the traffic."""
    assert snap["state"] == "live" and snap["stale"] == "false", snap
    assert [t["name"] for t in snap["tiles"]] == list(queues)  # the kiosk's order
    assert_board(snap, doc, queues, INTERVAL)  # tiles and floor totals (SL, queue, waits)

    # What assert_board leaves out: per tile contacts and today's SL ...
    def contacts(q: str) -> float:
        v = val(kpi(doc, "queue", "contacts", q, INTERVAL))
        return 0 if v is None else v

    assert [(t["contacts"], t["slToday"]) for t in snap["tiles"]] == [
        (attr(contacts(q)), attr(val(kpi(doc, "queue", "service_level_ratio", q, "today"))))
        for q in queues
    ]
    # ... and the rest of the header, attributes and text as shown.
    totals = expected_totals(doc, queues, INTERVAL)
    asa = floor_ratio(doc, queues, "asa_seconds", INTERVAL, 1000)  # numerators in ms
    abandon = floor_ratio(doc, queues, "abandonment_ratio", INTERVAL)
    sl_today = floor_ratio(doc, queues, "service_level_ratio", "today")
    total_contacts = sum(contacts(q) for q in queues)
    assert {k: snap["totals"].get(k) for k in ("asa", "abandon", "slToday", "contacts")} == {
        "asa": attr(asa),
        "abandon": attr(abandon),
        "slToday": attr(sl_today),
        "contacts": attr(total_contacts),
    }
    oldest = float(totals["oldest"]) if totals["oldest"] else None
    assert snap["totalStats"] == {
        "sl": totals["slText"],
        "waiting": str(js_round(float(totals["waiting"]))),
        "oldest": duration(oldest),
        "asa": duration(asa),
        "abandon": pct1(abandon),
        "contacts": str(js_round(total_contacts)),
    }
    clock = datetime.fromisoformat(doc["generated_at"]).astimezone(ZoneInfo(doc["timezone"]))
    assert snap["clock"] == clock.strftime("%H:%M:%S")

    # Not an empty board that trivially equals an empty document: every contact the
    # batches started inside the interval is on it.
    iv = doc["intervals"][INTERVAL]
    start, end = (datetime.fromisoformat(iv[k]) for k in ("start", "end"))
    started = sum(start <= at < end for b in batches for at in b.first_event.values())
    assert total_contacts == started > 0
    assert any(t["sl"] for t in snap["tiles"]), "no queue shows a service level"


# ------------------------------------------------------------ the test


def test_wallboard_shows_the_live_kpis_of_a_real_worker(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    chromium_binary()  # no Chromium fails here, before minutes of setup, not a skip
    prefix = f"wb{uuid.uuid4().hex[:8]}."
    data = tmp_path / "data"
    data.mkdir()
    shots = [OUTPUT / "wallboard-live.png", OUTPUT / "wallboard-live-2.png"]
    for shot in shots:
        shot.unlink(missing_ok=True)  # a screenshot from an earlier run proves nothing
    env = worker_env(kafka_bootstrap, prefix, data, VOCFLOW_KPI_REFRESH_SECONDS="2")
    created = vocflow("topics", "--create", env=env)
    assert created.returncode == 0, created.stderr
    settings = load_settings(environ=env)
    # Two quarter-hours of traffic that ended before the test began: both stay inside the
    # rolling 60 minutes for 20 minutes, far longer than the test runs.
    now = datetime.now(UTC)
    first = batch(1, now - timedelta(minutes=40), 13, morning_hour=9.5)
    second = batch(2, now - timedelta(minutes=27), 13, morning_hour=9.5 + 13 / 60)
    queues = first.queues
    assert len(queues) >= 3, queues

    def published(b: Batch) -> None:
        counts = publish(settings, b.config)
        assert counts["contact"] == b.events, counts

    step = Steps(data / "worker.log")
    published(first)
    step(f"published batch 1: {first.events} contact events")
    with step.explained(), running_worker(env, step.log) as url:
        step("worker healthy")
        settled = wait_ingested(url, first.events, len(first.first_event))
        step("batch 1 in ClickHouse")
        query = {"queues": ",".join(queues), "floor": FLOOR, "interval": INTERVAL}

        async def main() -> None:
            async with chromium() as browser, aiohttp.ClientSession() as session:
                await browser.call("Page.navigate", url=f"{url}/wallboard?{urlencode(query)}")
                await browser.wait_for(
                    "the first update", lambda s: s["updates"] >= 1, timeout=ALIGN_SECONDS
                )
                # 1. the first batch, exactly as /api/kpis has it
                snap, doc = await board_and_kpis(
                    browser, session, url, settled, "a document with the first batch"
                )
                step(f"page shows the document of {doc['generated_at']}")
                assert_live_board(snap, doc, queues, [first])
                await browser.screenshot(shots[0])
                await browser.evaluate("window.__vocflowNoReload = 'still here'")

                # 2. more traffic: the same page follows, with no reload
                await asyncio.to_thread(published, second)
                step(f"published batch 2: {second.events} contact events")
                done = await asyncio.to_thread(
                    wait_ingested,
                    url,
                    first.events + second.events,
                    len(first.first_event) + len(second.first_event),
                )
                step("batch 2 in ClickHouse")
                after, doc2 = await board_and_kpis(
                    browser, session, url, done, "a document with the second batch"
                )
                step(f"page shows the document of {doc2['generated_at']}")
                assert await browser.evaluate("window.__vocflowNoReload") == "still here"
                assert after["updates"] > snap["updates"]
                assert_live_board(after, doc2, queues, [first, second])
                assert float(after["totals"]["contacts"]) > float(snap["totals"]["contacts"])
                assert [t["contacts"] for t in after["tiles"]] != [
                    t["contacts"] for t in snap["tiles"]
                ]
                await browser.screenshot(shots[1])

        asyncio.run(main())
        step("done")
        # Read while the worker still runs: every refresh the page showed succeeded. (A
        # refresh still in flight when SIGTERM closes ClickHouse logs a failure: that is
        # shutdown, not the wallboard.)
        assert "KPI refresh failed" not in step.log.read_text(errors="replace")

    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
