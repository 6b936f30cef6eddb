"""The wallboard's Faust pages on a minimal Faust app: kiosk filters, assets, SSE framing.

The KPI document comes from the real `kpi_service.compute()` over generated
contacts, so a change of the document's shape breaks these tests rather than
a screen on the floor.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import faust
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.kpi import gen
from vocflow.schemas.api import KpiDocument
from vocflow.schemas.derived.alert import VocAlert
from vocflow.sinks.kpi import service as kpi_service
from vocflow.streams.core.settings import Settings
from vocflow.streams.detect.detector import HotTopic
from vocflow.streams.kpi.fold import fold
from vocflow.streams.kpi.models import FoldConfig
from vocflow.streams.wallboard import (
    BoardFilter,
    filter_document,
    normalize_extras,
    register_wallboard,
    render_page,
    sse_event,
    static_asset,
)

pytestmark = pytest.mark.clock

NOW = gen.DAY + timedelta(hours=10, minutes=7)


@cache
def _computed() -> bytes:
    scenario = gen.contacts(7, 4000)
    facts: dict[str, Any] = {}
    for event in scenario.events:
        updated = fold(facts.get(event.contact_id), event, FoldConfig())
        if updated is not None:
            facts[event.contact_id] = updated
    settings, folded = Settings(), list(facts.values())
    return orjson.dumps(
        kpi_service.compute(
            settings, lambda iv, at: kpi_service.facts_results(settings, folded, iv, at), [], NOW
        ).model_dump()
    )


def sample_document() -> dict[str, Any]:
    """A real /api/kpis document as JSON (queues billing_q, network_q, tech_q, sales_q, ...)."""
    return orjson.loads(_computed())


def sample_kpis() -> KpiDocument:
    """The same document as the KPI service hands it to the wallboard."""
    return KpiDocument.model_validate(sample_document())


def sample_alert(department: str | None = "network", severity: str = "critical") -> dict[str, Any]:
    """A VocAlert as the detector emits it, as JSON."""
    return VocAlert(
        alert_id=f"a-{department}-{severity}",
        sequence=0,
        status="new",
        dimension="keyword",
        key="断网",
        keyword="断网",
        window_start=NOW - timedelta(minutes=5),
        window_end=NOW,
        observed=42,
        baseline=6.0,
        baseline_rate=1.2,
        ratio=7.0,
        p_value=1e-9,
        severity=severity,
        first_seen=NOW - timedelta(minutes=5),
        episode_observed=42,
        emitted_at=NOW,
        department=department,
        summary_zh="断网 投诉激增：5 分钟 42 条（基线 6）",
        summary_en="断网 surging: 42 contacts in 5 min (baseline 6)",
    ).model_dump(mode="json")


def hot(key: str, count: int, alerting: bool = False) -> HotTopic:
    return HotTopic("keyword", key, count, 4.0, round(count / 4.0, 3), alerting)


# ------------------------------------------------------------------ pure parts


def test_filter_parses_kiosk_query_leniently() -> None:
    flt = BoardFilter.from_query(
        {"queues": " b_q, a_q,,b_q ", "departments": "billing", "floor": " 二楼 ", "lang": "EN"}
    )
    assert flt.queues == ("b_q", "a_q")  # kiosk order kept: it is the tile order
    assert flt.departments == ("billing",)
    assert (flt.floor, flt.lang, flt.interval, flt.target_pct) == ("二楼", "en", "15m", 80.0)
    bad = BoardFilter.from_query({"lang": "fr", "interval": "5m", "target": "abc"})
    assert (bad.lang, bad.interval, bad.target_pct) == ("zh", "15m", 80.0)
    assert BoardFilter.from_query({"target": "250"}).target_pct == 80.0
    assert BoardFilter.from_query({"target": "90", "interval": "today"}).interval == "today"
    many = BoardFilter.from_query({"queues": ",".join(f"q{i}" for i in range(500))})
    assert len(many.queues) == 50


def test_filter_document_keeps_only_the_kiosks_queues_and_departments() -> None:
    doc = sample_kpis()
    before = orjson.dumps(doc.model_dump())
    out = filter_document(doc, BoardFilter(queues=("tech_q", "billing_q"), departments=("x",)))
    assert orjson.dumps(doc.model_dump()) == before  # the shared document is never modified
    for label, body in out.intervals.items():
        assert set(body.by) == {"all", "queue", "channel", "department"}
        for groups in body.by["queue"].by_name().values():
            assert set(groups) <= {"tech_q", "billing_q"}
        assert all(groups == {} for groups in body.by["department"].by_name().values())
        assert body.by["all"] == doc.intervals[label].by["all"]
    assert set(out.now["queue"].queue_depth) == {"tech_q", "billing_q"}
    assert out.now["channel"] == doc.now["channel"]  # other dimensions untouched
    assert out.intervals["today"].by["all"] == doc.intervals["today"].by["all"]
    assert out.agents == doc.agents and out.generated_at == doc.generated_at
    assert filter_document(doc, BoardFilter()) == doc
    # the JSON keeps the document's key order: dimensions, KPIs and the groups left
    wire = orjson.loads(orjson.dumps(out.model_dump()))
    assert list(wire) == list(sample_document())
    assert list(wire["now"]["queue"]["queue_depth"]) == [
        g for g in sample_document()["now"]["queue"]["queue_depth"] if g in ("tech_q", "billing_q")
    ]


def test_extras_flatten_sort_and_follow_the_department_filter() -> None:
    extras = {
        "hot_topics": {"keyword": [hot("信号", 5), hot("断网", 9, alerting=True)], "category": []},
        "alerts": [
            sample_alert("billing", "warning"),
            sample_alert("network", "critical"),
            sample_alert(None, "warning"),
            {"labels": {"alertname": "VocflowSL", "department": "billing", "severity": "critical"}},
        ],
    }
    out = normalize_extras(extras, BoardFilter(departments=("billing",)))
    assert [t["key"] for t in out["hot_topics"]] == ["断网", "信号"]
    assert out["hot_topics"][0] == dataclasses.asdict(hot("断网", 9, alerting=True))
    ids = [a.get("alert_id") or a["labels"]["alertname"] for a in out["alerts"]]
    # network's alert is another floor's; the pipeline-wide one (no department) shows everywhere
    assert ids == ["VocflowSL", "a-billing-warning", "a-None-warning"]
    assert normalize_extras({}, BoardFilter()) == {"hot_topics": [], "alerts": []}
    assert normalize_extras(None, BoardFilter()) == {"hot_topics": [], "alerts": []}


def test_sse_frames_are_well_formed() -> None:
    frame = sse_event("update", {"text": "a\nb", "n": 1}, retry_ms=3000)
    assert frame.endswith(b"\n\n") and frame.count(b"\n\n") == 1
    lines = frame.decode().rstrip("\n").split("\n")
    assert lines[:2] == ["event: update", "retry: 3000"]
    data = "\n".join(line.removeprefix("data: ") for line in lines[2:])
    assert orjson.loads(data) == {"text": "a\nb", "n": 1}
    assert sse_event("heartbeat", None) == b"event: heartbeat\ndata: null\n\n"


def test_page_embeds_config_and_escapes_the_floor_name() -> None:
    flt = BoardFilter.from_query(
        {"queues": "a,b", "floor": "</script><b>2F</b>", "lang": "both", "departments": "x"}
    )
    page = render_page(flt)
    assert "</script><b>" not in page
    assert "&lt;/script&gt;&lt;b&gt;2F&lt;/b&gt;" in page
    start = page.index('id="wallboard-config">') + len('id="wallboard-config">')
    config = orjson.loads(page[start : page.index("</script>", start)])
    assert config["queues"] == ["a", "b"] and config["departments"] == ["x"]
    assert config["stream"] == "/api/stream?queues=a%2Cb&departments=x"
    assert config["lang"] == "both" and config["floor"] == "</script><b>2F</b>"
    assert (config["target_pct"], config["amber_band_pct"], config["stale_after_s"]) == (80, 5, 30)
    assert "__WB_" not in page
    # everything the page loads comes from the worker itself (wallboard PCs may be offline)
    assert "http://" not in page and "https://" not in page
    for name in ("wallboard.js", "wallboard.css"):
        asset = static_asset(name)
        assert asset is not None
        assert b"http://" not in asset[0] and b"https://" not in asset[0]


# --------------------------------------------------------------- Faust pages


def run(
    check: Callable[[TestClient, dict[str, Any]], Awaitable[None]],
    *,
    kpis: Callable[[], KpiDocument | None] | None = None,
    extras: Callable[[], dict[str, Any]] | None = None,
    push_seconds: float = 0.05,
    max_stream_seconds: float = 600.0,
) -> None:
    """Register the pages on a bare Faust app and drive its aiohttp application."""
    box: dict[str, Any] = {"doc": sample_kpis(), "extras": {}}
    app = faust.App("wallboard-test", broker="memory://", store="memory://", autodiscover=False)
    register_wallboard(
        app,
        kpis or (lambda: box["doc"]),
        extras or (lambda: box["extras"]),
        push_seconds=push_seconds,
        max_stream_seconds=max_stream_seconds,
    )

    async def main() -> None:
        async with TestClient(TestServer(app.web.web_app)) as client:
            await check(client, box)

    asyncio.run(main())


def parse_frame(frame: bytes) -> tuple[str, Any]:
    """One SSE frame (without its blank line) -> (event name, decoded data)."""
    fields: dict[str, list[str]] = {}
    for line in frame.decode().strip("\n").split("\n"):
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    return fields["event"][0], orjson.loads("\n".join(fields["data"]))


async def read_events(resp: Any, n: int, timeout: float = 5.0) -> list[tuple[str, Any]]:
    """The next n SSE events of a streaming response: each frame ends with a blank line."""
    async with asyncio.timeout(timeout):
        return [parse_frame(await resp.content.readuntil(b"\n\n")) for _ in range(n)]


def test_wallboard_page_is_html_with_the_kiosk_config() -> None:
    async def check(client: TestClient, box: dict[str, Any]) -> None:
        resp = await client.get("/wallboard?queues=tech_q&lang=en&floor=3F")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        body = await resp.text()
        assert '<html lang="en">' in body and '"queues":["tech_q"]' in body
        assert "/wallboard/static/wallboard.js?v=" in body

    run(check)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("wallboard.js", "text/javascript"), ("wallboard.css", "text/css")],
)
def test_static_assets_have_their_content_types_and_revalidate(
    name: str, content_type: str
) -> None:
    async def check(client: TestClient, box: dict[str, Any]) -> None:
        resp = await client.get(f"/wallboard/static/{name}")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == f"{content_type}; charset=utf-8"
        assert resp.headers["Cache-Control"] == "no-cache"
        asset = static_asset(name)
        assert asset is not None and await resp.read() == asset[0]
        again = await client.get(
            f"/wallboard/static/{name}", headers={"If-None-Match": resp.headers["ETag"]}
        )
        assert again.status == 304

    run(check)


@pytest.mark.parametrize(
    "name", ["index.html", "__init__.py", "..%2F__init__.py", "nope.js", "%2E%2E%2Fapp.py"]
)
def test_static_serves_nothing_but_the_two_assets(name: str) -> None:
    async def check(client: TestClient, box: dict[str, Any]) -> None:
        resp = await client.get(f"/wallboard/static/{name}")
        assert resp.status == 404

    run(check)


def test_stream_sends_the_filtered_document_then_heartbeats_then_changes() -> None:
    async def check(client: TestClient, box: dict[str, Any]) -> None:
        box["extras"] = {"hot_topics": [hot("断网", 9)], "alerts": [sample_alert("billing")]}
        resp = await client.get("/api/stream?queues=tech_q&departments=network")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["Cache-Control"] == "no-cache"
        first = await resp.content.readuntil(b"\n\n")
        assert first.startswith(b"event: update\nretry: 3000\ndata: ")
        event, data = parse_frame(first)
        assert event == "update"
        board = BoardFilter(queues=("tech_q",), departments=("network",))
        assert data["kpis"] == filter_document(sample_kpis(), board).model_dump()
        assert [t["key"] for t in data["hot_topics"]] == ["断网"]
        assert data["alerts"] == []  # billing's alert is not for the network board
        datetime.fromisoformat(data["server_time"])
        # unchanged: heartbeats only, carrying the server clock
        beats = await read_events(resp, 2)
        assert [e for e, _ in beats] == ["heartbeat", "heartbeat"]
        assert set(beats[0][1]) == {"server_time"}
        # a new KPI refresh is pushed without the client asking
        changed = box["doc"].model_copy(update={"generated_at": datetime.now(UTC)})
        box["doc"] = changed
        events = await read_events(resp, 3)
        update = next(d for e, d in events if e == "update")
        assert update["kpis"]["generated_at"] == changed.generated_at.isoformat()
        resp.close()

    run(check)


def test_stream_before_the_first_kpi_refresh_and_when_a_provider_fails() -> None:
    calls = {"n": 0}

    def flaky() -> KpiDocument | None:
        calls["n"] += 1
        if calls["n"] == 1:
            return None  # not computed yet
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return sample_kpis()

    async def check(client: TestClient, box: dict[str, Any]) -> None:
        resp = await client.get("/api/stream")
        events = await read_events(resp, 3)
        assert events[0][0] == "update" and events[0][1]["kpis"] is None
        # the failing round neither ends the stream nor blanks the screen
        assert events[1][0] == "heartbeat"
        assert events[2][0] == "update" and events[2][1]["kpis"] == sample_document()
        resp.close()

    run(check, kpis=flaky, extras=lambda: {"hot_topics": None})


def test_stream_is_recycled_after_its_lifetime() -> None:
    async def check(client: TestClient, box: dict[str, Any]) -> None:
        resp = await client.get("/api/stream")
        async with asyncio.timeout(5):
            body = await resp.read()  # returns because the server ends the response
        assert body.count(b"event: ") >= 2 and body.startswith(b"event: update")

    run(check, push_seconds=0.05, max_stream_seconds=0.2)
