"""The differential oracle of the fault suite.

The same seeded traffic goes through a clean run and a faulted run, each on its
own topics and ClickHouse database; everything a KPI or a department depends on
is then read back (`snapshot.py` for ClickHouse and /api/kpis at a fixed
instant, `department_envelopes` for the department topics) and must be equal.
A faulted run may take longer; it may not lose, add or change anything.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.integration.conftest import read_topic, vocflow, worker_env
from vocflow.sinks.prometheus.lag import LagMonitor
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import load_settings
from vocflow.streams.tools import procs
from vocflow.streams.tools.broker import LocalBroker
from vocflow.streams.tools.simulator import SimConfig
from vocflow.streams.tools.simulator.publish import publish

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
# A busy hour of a fixed past morning, with 1 % malformed records (dead letters):
# fixed, so both runs see the same bytes whatever the wall-clock time.
TRAFFIC = SimConfig(
    seed=11,
    start_date=date(2026, 11, 23),
    start_hour=9.0,
    duration_hours=1.0,
    contacts_per_day=12_000,
    customers=3_000,
)
MALFORMED = 0.01
# /api/kpis is compared as it reads just after that hour.
KPIS_AT = datetime(2026, 11, 23, 10, 5, tzinfo=TZ)
DRAIN_TIMEOUT_S = 240.0
# ClickHouse fails every call from 3 s after the worker's start, for two minutes:
# longer than the VocflowSinkBlocked rule's 1-minute `for` with room to spare.
OUTAGE_START_S, OUTAGE_S = 3.0, 120.0


@dataclass
class Run:
    """One pipeline run: its environment, what was published, what each worker did."""

    name: str
    env: dict[str, str]
    data: Path
    published: Counter = field(default_factory=Counter)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    drained_s: float = 0.0

    @property
    def prefix(self) -> str:
        return self.env["VOCFLOW_TOPIC_PREFIX"]

    def log(self, n: int) -> Path:
        return self.data / f"worker-{n}.log"


def new_run(
    name: str, bootstrap: str, root: Path, traffic: SimConfig = TRAFFIC, **extra: str
) -> Run:
    """Topics created and the seeded traffic (the busy hour unless `traffic` says
    otherwise) published, nothing consumed yet.

    A restarted worker keeps its web port, hence its default static member name
    (Settings.group_instance_id), as a production worker does."""
    data = root / name
    data.mkdir(parents=True, exist_ok=True)
    prefix = f"{name}{int(time.time() * 1000) % 10**8}."
    env = worker_env(
        bootstrap,
        prefix,
        data,
        VOCFLOW_KPI_REFRESH_SECONDS="1",
        # One key for every run, as for every process of a deployment: the pseudonyms
        # of customer ids are compared too.
        VOCFLOW_PSEUDONYM_KEY="fault-suite-pseudonym-key-0123456789abcdef",
        **extra,
    )
    result = vocflow("topics", "--create", env=env)
    assert result.returncode == 0, result.stderr
    run = Run(name, env, data)
    # A customer's contacts in one raw partition: read back in event-time order, so
    # which contact is a repeat of which is the same in every run.
    run.published = publish(
        load_settings(environ=env), traffic, malformed_ratio=MALFORMED, customer_ordered=True
    )
    return run


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/stats", timeout=5) as response:
        return json.loads(response.read())


def _processed(url: str) -> float:
    """Records the worker's agents have taken in since it started."""
    try:
        return sum(s.get("in", 0) for s in _stats(url)["stages"].values())
    except OSError:
        return 0.0


def crash_at(run: Run, point: str, nth: int, timeout: float = 90.0) -> dict[str, Any]:
    """Start a worker armed to SIGKILL itself the `nth` time it passes `point`;
    wait for it to die. Returns when it died and how long the start took to work
    again (first record in, measured from its launch)."""
    n = len(run.crashes)
    env = {**run.env, "VOCFLOW_CRASH_AT": f"{point}:{nth}"}
    url = f"http://127.0.0.1:{env['VOCFLOW_WEB_PORT']}"
    t0 = time.monotonic()
    child = procs.Child("worker", run.log(n), env=env, url=url)
    first_record_s: float | None = None
    while child.returncode is None and time.monotonic() - t0 < timeout:
        if first_record_s is None and _processed(url) > 0:
            first_record_s = time.monotonic() - t0
        time.sleep(0.2)
    if child.returncode is None:
        child.stop()
        raise AssertionError(
            f"{point}:{nth} never crashed the worker within {timeout:.0f}s\n{child.log_tail()}"
        )
    assert child.returncode == -9, (child.returncode, child.log_tail())
    died_s = time.monotonic() - t0
    # Passing the crash point n times means records were processed: a worker that died
    # before this poll saw one (its web page starts after the agents) was working by then.
    crash = {"point": point, "nth": nth, "first_record_s": first_record_s or died_s,
             "died_s": died_s}  # fmt: skip
    run.crashes.append(crash)
    return crash


def _metric_groups(url: str) -> dict[str, list[str]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    groups: dict[str, list[str]] = defaultdict(list)
    for m in re.finditer(r"^vocflow_consumer_lag_messages\{([^}]*)\}", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        groups[labels["group"]].append(labels["topic"])
    return dict(groups)


def _until_drained(run: Run, child: procs.Child, url: str, deadline: float) -> None:
    """Until every group has consumed everything (lag 0 on every topic of every group,
    polled here; sinks/prometheus/lag.py) and the ClickHouse row counts stand still."""
    previous: dict[str, int] | None = None
    lags: dict[tuple[str, str], int] = {}
    while True:
        assert time.monotonic() < deadline, (
            f"{run.name} did not drain: lags {lags}\n{child.log_tail()}"
        )
        assert child.returncode is None, child.log_tail()
        groups = _metric_groups(url)
        if len(groups) >= 3:  # the agents', the voc loop's and the sink's
            monitor = LagMonitor(load_settings(environ=run.env), groups)
            try:
                lags = monitor.poll()
            finally:
                monitor.close()
            if lags and not any(lags.values()):
                rows = _stats(url).get("clickhouse") or {}
                if rows and rows == previous:
                    return
                previous = rows
                time.sleep(1.5)  # two sink flushes apart
                continue
        previous = None
        time.sleep(0.5)


def _first_record(url: str, t0: float, timeout: float) -> float | None:
    """Seconds from `t0` until the worker at `url` has taken in a record."""
    while time.monotonic() - t0 < timeout:
        if _processed(url) > 0:
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def drain(run: Run) -> float:
    """Run a worker until drained (`_until_drained`), stop it with SIGTERM. Returns the
    seconds from its launch to the first record it took in."""
    url = f"http://127.0.0.1:{run.env['VOCFLOW_WEB_PORT']}"
    t0 = time.monotonic()
    with procs.Child("worker", run.log(len(run.crashes)), env=run.env, url=url) as child:
        child.wait_healthy(120)
        first_record_s = _first_record(url, t0, 60)
        _until_drained(run, child, url, t0 + DRAIN_TIMEOUT_S)
        run.drained_s = time.monotonic() - t0
        code = child.stop()
    assert code == 0, f"worker exit code {code}: {child.log_tail()}"
    return first_record_s or 0.0


def broker_restarts(
    run: Run,
    broker: LocalBroker,
    faults: list[tuple[bool, float]],
    down_s: float = 5.0,
    restart: bool = True,
) -> None:
    """One worker through broker restarts: for each (kill, after) in `faults`, once the
    worker has taken in `after` records in all, the broker is stopped (SIGKILL if
    `kill`, else a clean shutdown), kept down `down_s` seconds and started again on
    the same data (unless not `restart`: then it stays down, and the rest of its
    cluster carries on); then the same worker drains. Each fault is appended to
    `run.crashes` with the seconds from the broker answering again (or from the
    kill, when it stays down) to the worker's next record."""
    url = f"http://127.0.0.1:{run.env['VOCFLOW_WEB_PORT']}"
    t0 = time.monotonic()
    with procs.Child("worker", run.log(len(run.crashes)), env=run.env, url=url) as child:
        child.wait_healthy(120)
        for kill, after in faults:
            while _processed(url) < after:
                assert time.monotonic() - t0 < 180, f"no progress\n{child.log_tail()}"
                assert child.returncode is None, child.log_tail()
                time.sleep(0.1)
            before = _processed(url)
            if kill:
                pid = broker.pid()
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
            broker.down()  # a clean shutdown, or the reaping of the killed process
            if restart:
                time.sleep(down_s)
                broker.up()
            back = time.monotonic()
            resumed_s = None
            while time.monotonic() - back < 120 and child.returncode is None:
                if _processed(url) > before:
                    resumed_s = time.monotonic() - back
                    break
                time.sleep(0.2)
            point = "broker " + ("kill -9" if kill else "stop") + ("" if restart else " for good")
            run.crashes.append({"point": point, "after": before, "resumed_s": resumed_s})
        _until_drained(run, child, url, time.monotonic() + DRAIN_TIMEOUT_S)
        run.drained_s = time.monotonic() - t0
        code = child.stop()
    assert code == 0, f"worker exit code {code}: {child.log_tail()}"


def _metric(url: str, name: str) -> float | None:
    """One unlabelled sample of the worker's /metrics, or None."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
    return int(kib) / 1024


def clickhouse_outage(run: Run, start_s: float, seconds: float) -> None:
    """One worker whose ClickHouse fails every call from `start_s` seconds after its
    start, for `seconds` (VOCFLOW_CLICKHOUSE_OUTAGE, streams/core/faults.py), under
    the published backlog; then it drains. Appended to `run.crashes`: the highest
    `vocflow_sink_blocked_seconds` seen, the worker's highest RSS during the outage
    and after the catch-up, and the records taken in by the stages during it."""
    env = {**run.env, "VOCFLOW_CLICKHOUSE_OUTAGE": f"{start_s:g}:{seconds:g}"}
    url = f"http://127.0.0.1:{env['VOCFLOW_WEB_PORT']}"
    t0 = time.monotonic()
    with procs.Child("worker", run.log(len(run.crashes)), env=env, url=url) as child:
        child.wait_healthy(120)
        blocked, rss_during = 0.0, 0.0
        taken = {"start": _processed(url), "end": 0.0}
        while time.monotonic() - t0 < start_s + seconds:
            assert child.returncode is None, child.log_tail()
            rss_during = max(rss_during, _rss_mib(child.pid))
            blocked = max(blocked, _metric(url, "vocflow_sink_blocked_seconds") or 0.0)
            taken["end"] = _processed(url)
            time.sleep(1.0)
        run.crashes.append(
            {
                "point": "clickhouse outage",
                "seconds": seconds,
                "blocked_max_s": blocked,
                "rss_during_max_mib": rss_during,
                "taken_during": taken["end"] - taken["start"],
            }
        )
        _until_drained(run, child, url, time.monotonic() + DRAIN_TIMEOUT_S)
        run.crashes[-1]["rss_after_mib"] = _rss_mib(child.pid)
        run.drained_s = time.monotonic() - t0
        code = child.stop()
    assert code == 0, f"worker exit code {code}: {child.log_tail()}"


def clickhouse_outage_run(bootstrap: str, root: Path) -> dict[str, Any]:
    """The seeded traffic through one worker under the ClickHouse outage
    (OUTAGE_START_S, OUTAGE_S), drained, and its snapshot."""
    run = new_run("outage", bootstrap, root)
    clickhouse_outage(run, OUTAGE_START_S, OUTAGE_S)
    return {"run": run, "snapshot": snapshot(run)}


def snapshot(run: Run) -> dict[str, Any]:
    """The ClickHouse side (tests/faults/snapshot.py, in a child process) and the
    department topics."""
    request = json.dumps({"env": run.env, "kpis_at": KPIS_AT.isoformat()})
    result = subprocess.run(
        [sys.executable, "-m", "tests.faults.snapshot", request],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    out["department_envelopes"] = department_envelopes(run)
    # Kept beside the run's logs: what a failing comparison is read from.
    (run.data / "snapshot.json").write_text(json.dumps(out, ensure_ascii=False, indent=1))
    return out


def department_envelopes(run: Run) -> list[tuple[str, str, str]]:
    """(department, contact key, envelope id) of every record on every dept.* topic of
    the run, sorted; a duplicate envelope appears twice."""
    settings = load_settings(environ=run.env)
    admin = kafka_clients.admin(settings)
    try:
        start = run.prefix + T.DEPARTMENT_PREFIX
        names = sorted(t for t in admin.list_topics() if t.startswith(start))
    finally:
        admin.close()
    out = []
    for name in names:
        for record in read_topic(run.env["VOCFLOW_KAFKA_BOOTSTRAP"], name):
            body = json.loads(record.value)
            out.append((name[len(start) :], record.key.decode(), body["envelope_id"]))
    return sorted(out)


def differences(clean: dict[str, Any], faulted: dict[str, Any]) -> dict[str, str]:
    """Per compared item, what differs (empty when the runs agree)."""
    out = {}
    for key in clean:
        a, b = clean[key], faulted.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            ca = Counter(json.dumps(x, sort_keys=True) for x in a)
            cb = Counter(json.dumps(x, sort_keys=True) for x in b)
            missing, extra = ca - cb, cb - ca
            out[key] = (
                f"clean {len(a)} rows, faulted {len(b)}: {sum(missing.values())} missing, "
                f"{sum(extra.values())} extra; e.g. missing {list(missing)[:2]}, "
                f"extra {list(extra)[:2]}"
            )
        else:
            out[key] = f"differs: {_first_difference(a, b)}"
    return out


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
    return f"{path}: clean {str(a)[:200]} faulted {str(b)[:200]}"


def duplicates(envelopes: list[tuple[str, str, str]]) -> int:
    """Envelopes beyond the first of each (department, envelope id)."""
    return sum(n - 1 for n in Counter((d, e) for d, _, e in envelopes).values())


def crash_summary(run: Run) -> str:
    """One line per fault of the run, for the test output and docs/reliability.md."""
    parts = []
    for c in run.crashes:
        if c["point"] == "clickhouse outage":
            parts.append(
                f"ClickHouse down {c['seconds']:.0f}s: vocflow_sink_blocked_seconds up to "
                f"{c['blocked_max_s']:.0f}s, {c['taken_during']:.0f} records taken in by the "
                f"stages meanwhile, worker RSS at most {c['rss_during_max_mib']:.0f} MiB "
                f"during, {c.get('rss_after_mib', 0):.0f} MiB after the catch-up"
            )
        elif "died_s" in c:
            parts.append(f"{c['point']}:{c['nth']} died after {c['died_s']:.1f}s")
        else:
            resumed = "never" if c["resumed_s"] is None else f"{c['resumed_s']:.1f}s"
            since = "the kill" if c["point"].endswith("for good") else "the broker answered"
            parts.append(
                f"{c['point']} after {c['after']:.0f} records, processing again "
                f"{resumed} after {since}"
            )
    return "; ".join(parts)
