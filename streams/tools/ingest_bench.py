"""Throughput and latency of `vocflow ingest`, measured with wrk on loopback.

A real `vocflow ingest` process (real producer, acks=all, so every 202 waited
for Kafka) receives signed single-event CTI POSTs from wrk. wrk's Lua has no
HMAC, so a pool of distinct events is signed once up front and the server is
started with a timestamp window wide enough for the run; distinct call ids
spread the load over the partitions like real traffic would.

`bench_ingest(settings)` returns rows ``(name, value, unit, note)`` for the
benchmark report; timings are never asserted by tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from vocflow.streams.core.settings import Settings
from vocflow.streams.sources.ingest import signed_headers
from vocflow.streams.tools import broker, procs

BenchRow = tuple[str, float, str, str]

SECRET = "bench-secret-not-for-production-0123456789"
POOL = 2000
"""Distinct pre-signed events wrk cycles through."""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(i: int) -> bytes:
    return json.dumps(
        {
            "call_id": f"BENCH-{i:06d}",
            "event": "answered",
            "timestamp": "2024-05-06T09:15:42+08:00",
            "event_id": f"bench-{i:06d}",
            "queue": "billing",
            "agent_id": "A1024",
            "caller": "13800138000",
            "wait_seconds": 39,
            "transcript": "你好，我想查询一下本月的话费账单，为什么多扣了二十元？",
        },
        ensure_ascii=False,
    ).encode("utf-8")


def _lua_string(data: str) -> str:
    return "[==[" + data + "]==]"


def wrk_script(path: Path, pool: int = POOL) -> None:
    """A wrk script cycling through `pool` pre-signed POST requests."""
    now = time.time()
    # Formatted in init(), per thread: only then has wrk set the Host header.
    lines = ["requests = {}", "init = function(args)"]
    for i in range(pool):
        body = _event(i)
        headers = signed_headers("bench", SECRET, body, now=now)
        headers["Content-Type"] = "application/json"
        headers["Host"] = "127.0.0.1"
        lua_headers = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
        lines.append(
            f'  requests[{i + 1}] = wrk.format("POST", "/v1/events/cti", {{{lua_headers}}}, '
            f"{_lua_string(body.decode('utf-8'))})"
        )
    lines += [
        "end",
        f"local n = {pool}",
        "local i = 0",
        "request = function()",
        "  i = i % n + 1",
        "  return requests[i]",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """requests/s, p50/p99 latency in ms, and non-2xx count from `wrk --latency` output."""
    out: dict[str, float] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", output):
        out["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        if m := re.search(rf"^\s*{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M):
            out[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    out["non_2xx"] = float(m.group(1)) if m else 0.0
    if m := re.search(r"(\d+) requests in", output):
        out["requests"] = float(m.group(1))
    return out


def bench_ingest(
    settings: Settings,
    duration_s: int = 15,
    connections: int = 32,
    threads: int = 2,
) -> list[BenchRow]:
    """Run wrk against a local `vocflow ingest`; rows for requests/s and p99 latency."""
    wrk = shutil.which("wrk")
    if wrk is None:
        note = "skipped: wrk is not installed (Debian/Ubuntu: apt-get install -y wrk)"
        return [("ingest single-event POST", float("nan"), "req/s", note)]
    local = broker.local_broker(settings)
    started_broker = settings.uses_local_broker and local.up()
    prefix = f"benchingest{uuid.uuid4().hex[:6]}."
    port = _free_port()
    try:
        with tempfile.TemporaryDirectory(prefix="vocflow-ingest-bench-") as tmp:
            tmpdir = Path(tmp)
            sources = tmpdir / "sources.yaml"
            sources.write_text(f"bench:\n  secret: '{SECRET}'\n  channels: [cti]\n")
            script = tmpdir / "signed.lua"
            wrk_script(script)
            env = procs.env_without_vocflow(
                VOCFLOW_KAFKA_BOOTSTRAP=settings.bootstrap_servers,
                VOCFLOW_TOPIC_PREFIX=prefix,
                VOCFLOW_APP_ID=prefix.rstrip("."),
                VOCFLOW_DATA_DIR=str(tmpdir),
                VOCFLOW_PARTITIONS=str(settings.partitions),
                VOCFLOW_INGEST_PORT=str(port),
                VOCFLOW_INGEST_SOURCES_FILE=str(sources),
                # Signed once before the run; only the benchmark widens the window.
                VOCFLOW_INGEST_TIMESTAMP_WINDOW_S=str(duration_s + 3600),
                VOCFLOW_LOG_LEVEL="warning",
            )
            url = f"http://127.0.0.1:{port}"
            proc = procs.Child("ingest", tmpdir / "ingest.log", env=env, url=url)
            try:
                proc.wait_healthy()
                base = [wrk, "-t", str(threads), "-c", str(connections), "-s", str(script)]
                # Warm-up: connections, producer metadata, Python caches.
                subprocess.run(
                    [*base, "-d", "3s", url], capture_output=True, text=True, check=False
                )
                result = subprocess.run(
                    [*base, "-d", f"{duration_s}s", "--latency", url],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=duration_s + 120,
                )
            finally:
                proc.stop()
    finally:
        if started_broker:
            local.down()
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stderr.strip()[-1000:]}")
    stats = parse_wrk(result.stdout)
    method = (
        f"wrk {threads} threads x {connections} connections, {duration_s} s, one signed CTI "
        f"event per POST ({POOL} distinct), one `vocflow ingest` process, 202 only after "
        f"Kafka's ack (acks=all, idempotent)"
    )
    bad = int(stats.get("non_2xx", 0))
    note = f"{method}; non-2xx answers: {bad}"
    p50 = stats.get("p50_ms", float("nan"))
    return [
        ("ingest single-event POST", stats.get("rps", float("nan")), "req/s", note),
        ("ingest p99 latency", stats.get("p99_ms", float("nan")), "ms", f"p50 {p50:.2f} ms"),
    ]


if __name__ == "__main__":
    from vocflow.streams.core.settings import load_settings

    for row in bench_ingest(load_settings()):
        print(f"{row[0]:<28} {row[1]:>10,.1f} {row[2]:<6} {row[3]}")
