"""The floor wallboard (大屏/实时看板): one HTML page, two static assets, one SSE stream.

People read a wallboard from across a room (DOMAIN.md, "Who uses it"), so the
page shows few, big numbers per queue with red/amber/green against the
service-level target, plus hot topics and active alerts. Design choices, and why:

* **Served by the worker, no CDN, no build.** Wallboard PCs on a contact-center
  floor often have no internet access; everything the page needs (HTML, one
  ES2020 script, one stylesheet) ships in this package and is served here.
* **Server-Sent Events, not polling.** One long-lived GET per screen: the
  server pushes the KPI document when it changes and a small heartbeat
  otherwise. EventSource reconnects by itself after a dropped connection, and
  the heartbeat lets the page both notice a half-open connection and correct
  for a wrong kiosk clock when it judges data age (stale after 30 s).
* **Kiosk filters in the URL** (``?queues=a,b&departments=x&floor=NAME&lang=``):
  a kiosk is configured by its bookmark, nothing is stored per screen. The
  same filters are applied server side to the stream, so a floor screen does
  not download every other floor's queues every few seconds.
* **Handlers share pure functions** (:func:`render_page`, :func:`static_asset`,
  :func:`stream_payload`, :func:`sse_event`) so tests, and the browser test's
  stand-in server, exercise exactly what production serves.

The lead wires it in ``streams/worker/app.py``::

    register_wallboard(app, lambda: app.kpis, lambda: {"hot_topics": [], "alerts": []})
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import html
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
from aiohttp import web

from vocflow.schemas.api import Dimension, KpiDocument, KpiSet

log = logging.getLogger(__name__)
S = TypeVar("S", bound=KpiSet)

ASSET_DIR = Path(__file__).resolve().parent
PAGE_TEMPLATE = "index.html"
# The only files /wallboard/static/ serves: a fixed list, so no path ever reaches the disk.
STATIC_TYPES: dict[str, str] = {
    "wallboard.js": "text/javascript",
    "wallboard.css": "text/css",
}
LANGS = ("zh", "en", "both")
INTERVALS = ("15m", "60m", "today")
DEFAULT_LANG = "zh"
DEFAULT_INTERVAL = "15m"
DEFAULT_TARGET_PCT = 80.0
AMBER_BAND_PCT = 5.0
STALE_AFTER_SECONDS = 30.0
PUSH_SECONDS = 5.0
# Long-lived connections are recycled: proxies and load balancers cut idle or old
# streams anyway, and a bounded lifetime lets a worker shut down promptly.
MAX_STREAM_SECONDS = 600.0
RETRY_MS = 3000
MAX_FILTER_VALUES = 50
MAX_NAME_CHARS = 100
MAX_HOT_TOPICS = 20
MAX_ALERTS = 20
STREAM_PATH = "/api/stream"
_PLACEHOLDER = re.compile(r"__WB_(LANG|TITLE|FLOOR|VERSION|CONFIG)__")


def _split(value: str | None) -> tuple[str, ...]:
    """'a, b,,a' -> ('a', 'b'): order kept (it is the tile order), duplicates and blanks dropped."""
    if not value:
        return ()
    out: list[str] = []
    for part in value.split(","):
        name = part.strip()[:MAX_NAME_CHARS]
        if name and name not in out:
            out.append(name)
    return tuple(out[:MAX_FILTER_VALUES])


@dataclass(frozen=True, slots=True)
class BoardFilter:
    """What one kiosk shows, parsed leniently from its URL.

    A typo in a bookmarked URL must still give a working board, so unknown
    values fall back to the defaults instead of answering 400 on a screen
    nobody is watching up close.
    """

    queues: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    floor: str = ""
    lang: str = DEFAULT_LANG
    interval: str = DEFAULT_INTERVAL
    target_pct: float = DEFAULT_TARGET_PCT

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> BoardFilter:
        lang = (query.get("lang") or "").strip().lower()
        interval = (query.get("interval") or "").strip()
        try:
            target = float(query.get("target") or DEFAULT_TARGET_PCT)
        except ValueError:
            target = DEFAULT_TARGET_PCT
        if not 0 < target <= 100:
            target = DEFAULT_TARGET_PCT
        return cls(
            queues=_split(query.get("queues")),
            departments=_split(query.get("departments")),
            floor=(query.get("floor") or "").strip()[:MAX_NAME_CHARS],
            lang=lang if lang in LANGS else DEFAULT_LANG,
            interval=interval if interval in INTERVALS else DEFAULT_INTERVAL,
            target_pct=target,
        )

    def stream_query(self) -> str:
        """The filters the stream needs (not the display-only ones), as a query string."""
        params = {}
        if self.queues:
            params["queues"] = ",".join(self.queues)
        if self.departments:
            params["departments"] = ",".join(self.departments)
        return urlencode(params)

    def page_config(self) -> dict[str, Any]:
        """What the page script needs to know; embedded in the HTML as JSON."""
        query = self.stream_query()
        return {
            "lang": self.lang,
            "floor": self.floor,
            "queues": list(self.queues),
            "departments": list(self.departments),
            "interval": self.interval,
            "target_pct": self.target_pct,
            "amber_band_pct": AMBER_BAND_PCT,
            "stale_after_s": STALE_AFTER_SECONDS,
            "heartbeat_timeout_s": 4 * PUSH_SECONDS,
            "stream": STREAM_PATH + (f"?{query}" if query else ""),
        }


# ------------------------------------------------------------------ filtering


def _keep_groups(
    by_map: dict[Dimension, S], dim: Dimension, keep: tuple[str, ...]
) -> dict[Dimension, S]:
    """Copy of a `by` map where dimension `dim` holds only the groups in `keep`."""
    if not keep or dim not in by_map:
        return by_map
    return {**by_map, dim: by_map[dim].only(set(keep))}


def filter_document(doc: KpiDocument, flt: BoardFilter) -> KpiDocument:
    """The KPI document with only this kiosk's queues and departments (others untouched).

    Totals (`all`) and channels stay: the page re-aggregates the header from
    the queue tiles' numerators and denominators when a queue filter is set.
    """
    if not flt.queues and not flt.departments:
        return doc

    def narrow(by_map: dict[Dimension, S]) -> dict[Dimension, S]:
        return _keep_groups(
            _keep_groups(by_map, "queue", flt.queues), "department", flt.departments
        )

    return doc.model_copy(
        update={
            "intervals": {
                label: body.model_copy(update={"by": narrow(body.by)})
                for label, body in doc.intervals.items()
            },
            "now": narrow(doc.now),
        }
    )


def _jsonable(item: Any) -> Any:
    """Detector rows (dataclasses) and alerts (pydantic models) as plain JSON values."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    dump = getattr(item, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return orjson.loads(orjson.dumps(item, default=str))


def _as_list(value: Any) -> list[Any]:
    """A list, or a {dimension: [rows]} mapping (SurgeDetector.hot_topics()) flattened."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [row for rows in value.values() for row in (rows or [])]
    return list(value)


def _alert_department(alert: Mapping[str, Any]) -> str | None:
    """A VocAlert has `department`; an Alertmanager alert has it among its labels."""
    labels = alert.get("labels")
    if isinstance(labels, Mapping) and labels.get("department"):
        return str(labels["department"])
    dept = alert.get("department")
    return str(dept) if dept else None


def normalize_extras(extras: Mapping[str, Any] | None, flt: BoardFilter) -> dict[str, Any]:
    """hot_topics / alerts as JSON lists, busiest and most severe first, bounded in length.

    Alerts of another department are dropped on a department board; alerts
    without a department (pipeline-wide) are shown everywhere, because every
    floor is affected when the pipeline is.
    """
    extras = extras or {}
    topics = [_jsonable(t) for t in _as_list(extras.get("hot_topics"))]
    topics = [t for t in topics if isinstance(t, dict)]
    topics.sort(key=lambda t: (not t.get("alerting"), -(t.get("count") or 0), str(t.get("key"))))
    alerts = [_jsonable(a) for a in _as_list(extras.get("alerts"))]
    alerts = [a for a in alerts if isinstance(a, dict)]
    if flt.departments:
        wanted = set(flt.departments)
        alerts = [a for a in alerts if _alert_department(a) in (None, *wanted)]

    def severity(a: Mapping[str, Any]) -> str:
        labels = a.get("labels")
        if isinstance(labels, Mapping) and labels.get("severity"):
            return str(labels["severity"])
        return str(a.get("severity") or "")

    alerts.sort(key=lambda a: severity(a) != "critical")
    return {"hot_topics": topics[:MAX_HOT_TOPICS], "alerts": alerts[:MAX_ALERTS]}


def stream_payload(
    doc: KpiDocument | None,
    extras: Mapping[str, Any] | None,
    flt: BoardFilter,
) -> dict[str, Any]:
    """One `update` event: the filtered KPI document (None until the first refresh) + extras."""
    return {
        "kpis": None if doc is None else filter_document(doc, flt).model_dump(),
        **normalize_extras(extras, flt),
    }


def sse_event(event: str, data: Any, *, retry_ms: int | None = None) -> bytes:
    """One Server-Sent Events frame: `event:` line, `data:` line(s), blank line.

    orjson never emits a raw newline, but the split keeps the frame valid
    whatever `data` holds (each line of a multi-line payload needs its own
    `data:` prefix, or the browser would cut the event short).
    """
    body = orjson.dumps(data).decode()
    lines = [f"event: {event}"]
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    lines += [f"data: {line}" for line in body.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


# --------------------------------------------------------------------- assets


@cache
def _asset_bytes(name: str) -> bytes:
    return (ASSET_DIR / name).read_bytes()


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def static_asset(name: str) -> tuple[bytes, str, str] | None:
    """(body, content type, ETag) of an allowed asset; None for anything else."""
    content_type = STATIC_TYPES.get(name)
    if content_type is None:
        return None
    body = _asset_bytes(name)
    return body, content_type, _etag(body)


def render_page(flt: BoardFilter) -> str:
    """index.html with this kiosk's config, language and floor name filled in.

    The config travels as JSON inside a <script type="application/json">, with
    '<' escaped so that no floor name can close the script element.
    """
    config = orjson.dumps(flt.page_config()).decode().replace("<", "\\u003c")
    title = f"{flt.floor} · " if flt.floor else ""
    asset_version = _etag(b"".join(_asset_bytes(n) for n in STATIC_TYPES)).strip('"')[:10]
    values = {
        "LANG": "en" if flt.lang == "en" else "zh-CN",
        "TITLE": html.escape(title),
        "FLOOR": html.escape(flt.floor),
        "VERSION": asset_version,
        "CONFIG": config,
    }
    # One pass, so a floor name that happens to contain a placeholder stays literal.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _asset_bytes(PAGE_TEMPLATE).decode())


# ---------------------------------------------------------------------- pages


def page_response(query: Mapping[str, str]) -> web.Response:
    return web.Response(
        text=render_page(BoardFilter.from_query(query)),
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


def static_response(name: str, if_none_match: str | None = None) -> web.Response:
    """The asset, 304 when the kiosk already has it, 404 for any other name.

    `no-cache` + ETag: a kiosk revalidates on reload and picks up a new
    release at once, yet does not download unchanged files again.
    """
    asset = static_asset(name)
    if asset is None:
        return web.Response(status=404, text="not found")
    body, content_type, etag = asset
    headers = {"Cache-Control": "no-cache", "ETag": etag}
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)


_FAILED = object()


def _safe(fn: Callable[[], Any], what: str) -> Any:
    """A failing provider must not end every screen's stream, nor blank it: log, mark failed."""
    try:
        return fn()
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        log.warning("wallboard: %s failed: %s", what, first[:200])
        return _FAILED


async def serve_stream(
    request: web.Request,
    get_kpis: Callable[[], KpiDocument | None],
    get_extras: Callable[[], dict[str, Any]],
    *,
    push_seconds: float = PUSH_SECONDS,
    max_seconds: float = MAX_STREAM_SECONDS,
    should_stop: Callable[[], bool] = lambda: False,
) -> web.StreamResponse:
    """GET /api/stream: `update` on connect and whenever the payload changes, else `heartbeat`.

    Unchanged documents are not resent (a full KPI document every few seconds
    to every screen is wasted bandwidth); the heartbeat carries the server's
    clock so the page can judge data age with a correct clock.
    """
    flt = BoardFilter.from_query(request.query)
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        },
    )
    await response.prepare(request)
    started = time.monotonic()
    last: bytes | None = None
    first = True
    with contextlib.suppress(ConnectionResetError):
        while True:
            doc, extras = _safe(get_kpis, "get_kpis"), _safe(get_extras, "get_extras")
            failed = doc is _FAILED or extras is _FAILED
            payload = {} if failed else stream_payload(doc, extras, flt)
            body = orjson.dumps(payload)
            server_time = datetime.now(UTC).isoformat()
            retry = RETRY_MS if first else None
            if not failed and body != last:
                frame = sse_event("update", {**payload, "server_time": server_time}, retry_ms=retry)
                last = body
            else:
                frame = sse_event("heartbeat", {"server_time": server_time}, retry_ms=retry)
            first = False
            await response.write(frame)
            if should_stop() or time.monotonic() - started + push_seconds > max_seconds:
                break
            await asyncio.sleep(push_seconds)
    return response


def register_wallboard(
    app: Any,
    get_kpis: Callable[[], KpiDocument | None],
    get_extras: Callable[[], dict[str, Any]],
    *,
    push_seconds: float = PUSH_SECONDS,
    max_stream_seconds: float = MAX_STREAM_SECONDS,
) -> None:
    """Add GET /wallboard, /wallboard/static/{name} and /api/stream to a Faust app.

    `get_kpis` returns the /api/kpis document (a `KpiDocument`; None until the
    first KPI refresh); `get_extras` returns {"hot_topics": [...], "alerts": [...]}
    (lists, or SurgeDetector.hot_topics()'s {dimension: rows}; either may be
    missing or empty). Both are called on the event loop every `push_seconds`
    per open screen, so they must only read what is already in memory.
    """

    def should_stop() -> bool:
        return bool(getattr(app, "should_stop", False))

    @app.page("/wallboard")
    async def wallboard_page(self: Any, request: Any) -> web.Response:
        return page_response(request.query)

    @app.page("/wallboard/static/{name}")
    async def wallboard_static(self: Any, request: Any, name: str) -> web.Response:
        return static_response(name, request.headers.get("If-None-Match"))

    @app.page(STREAM_PATH)
    async def wallboard_stream(self: Any, request: Any) -> web.StreamResponse:
        return await serve_stream(
            request,
            get_kpis,
            get_extras,
            push_seconds=push_seconds,
            max_seconds=max_stream_seconds,
            should_stop=should_stop,
        )


__all__ = [
    "BoardFilter",
    "filter_document",
    "normalize_extras",
    "page_response",
    "register_wallboard",
    "render_page",
    "serve_stream",
    "sse_event",
    "static_asset",
    "static_response",
    "stream_payload",
]
