"""Run the clock-sensitive tests again at the awkward hours, under libfaketime.

`make test` runs the whole suite at whatever instant CI happens to start. A test
that only passes in office hours (a "today" that began two hours ago, a 15-minute
bucket that just turned over) would then fail at night and nowhere else. This
runner repeats every test marked ``clock`` (its result depends on "now": KPI
intervals, wallboard, alerting, detector, freshness, TTLs, simulator dates) with
the process clock moved by libfaketime to the instants below, in the KPI time zone
Asia/Shanghai, and with the process time zone (``TZ``) set to UTC and to
America/New_York, so nothing can lean on the machine's zone either.

How the clock is moved: libfaketime (Debian package ``faketime``) preloaded with
``FAKETIME=<offset>``, a *relative* offset in seconds, so that the target local
time is reached on the most recent day it occurred and the clock keeps running
from there (23:58 crosses midnight during the run, on purpose). An absolute
``@YYYY-MM-DD HH:MM:SS`` would be read in the process zone, which this runner
varies. The single-threaded build: with a constant offset it is correct for
threaded programs, and the multi-threaded one serialises every clock read (Kafka
clients ran 4x slower). The monotonic clock stays real
(``FAKETIME_DONT_FAKE_MONOTONIC``; faked, every timed lock wait hangs under
libfaketime 0.9.10), and ``tests/faketime_shim/waits.c``, preloaded first, passes
the monotonic waits libfaketime still gets wrong straight to glibc. Every child
process (worker, CLI) inherits the faked clock; Chromium is given the real one (a
wall screen is another machine), and Go programs (Prometheus, Alertmanager) read
the kernel's clock directly: nothing may compare their clocks with ours.

One Kafka broker, on real time, serves every run (``VOCFLOW_TEST_BOOTSTRAP``): the
records' timestamps are the producers' (faked) clocks; the broker's retention
(7 days) is far longer than the <= 24 h offsets used here.

Usage: ``python -m tests.clock_matrix [pytest args]``; exit status 0 only if every
run passed. A missing libfaketime or gcc is a failure with the install line,
never a skip.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.conftest import ROOT, free_port
from vocflow.streams.tools.broker import LocalBroker

KPI_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Run:
    """One faked instant (local time in the KPI zone) in one process time zone."""

    local_time: str  # HH:MM[:SS] in Asia/Shanghai
    process_tz: str
    # "all": every clock test; "unit": those without a broker (seconds, not minutes).
    scope: str

    @property
    def label(self) -> str:
        return f"{self.local_time} Asia/Shanghai, TZ={self.process_tz}, {self.scope}"

    @property
    def marker(self) -> str:
        return "clock" if self.scope == "all" else "clock and not integration"


# Just after midnight (a new "today" with almost nothing in it), ten seconds before a
# quarter-hour and an hour turn over, two minutes before midnight (the day changes
# while the tests run). Each instant runs in both process zones: once with every
# clock test, once with those that need no broker. The broker-backed ones take
# minutes each (a worker, Prometheus, Chromium); all six combinations of them would
# not fit `make test`'s 20 minutes, so each instant gets them in one zone, and the
# zones alternate. `make test`'s plain pytest run leaves every clock test out
# (-m "not clock"): they run here, three or six times.
RUNS = (
    Run("00:03", "America/New_York", "all"),
    Run("00:03", "UTC", "unit"),
    Run("07:59:50", "UTC", "all"),
    Run("07:59:50", "America/New_York", "unit"),
    Run("23:58", "America/New_York", "all"),
    Run("23:58", "UTC", "unit"),
)


def offset_seconds(local_time: str, now: datetime) -> int:
    """Seconds to add to ``now`` to reach the latest past ``local_time`` in Shanghai."""
    parts = [int(p) for p in local_time.split(":")] + [0]
    hh, mm, ss = parts[0], parts[1], parts[2]
    local_now = now.astimezone(KPI_TZ)
    target = local_now.replace(hour=hh, minute=mm, second=ss, microsecond=0)
    if target > local_now:
        target -= timedelta(days=1)
    return round((target - now).total_seconds())


SHIM_SOURCE = Path(__file__).resolve().parent / "faketime_shim" / "waits.c"
LIBFAKETIME = (
    "/usr/lib/*/faketime/libfaketime.so.1",  # Debian/Ubuntu (package libfaketime)
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def libfaketime() -> str:
    for pattern in LIBFAKETIME:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise RuntimeError(
        "libfaketime not found: install the Debian package faketime "
        "(make system-deps, or as root: apt-get install faketime)"
    )


@functools.cache
def preload() -> str:
    """``LD_PRELOAD`` for a faked process: the wait shim, then libfaketime.

    The shim (tests/faketime_shim/waits.c) is compiled once per source version into
    the cache directory; it must come first so that its waits win."""
    lib = libfaketime()
    source = SHIM_SOURCE.read_bytes()
    cache = Path(os.environ.get("VOCFLOW_CACHE_DIR") or Path.home() / ".cache" / "vocflow")
    shim = cache / "faketime" / f"waits-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if not shim.exists():
        gcc = shutil.which("gcc")
        if gcc is None:
            raise RuntimeError("gcc not found: install the Debian package gcc")
        shim.parent.mkdir(parents=True, exist_ok=True)
        partial = shim.with_name(f"{shim.name}.{os.getpid()}.tmp")
        built = subprocess.run(
            [gcc, "-shared", "-fPIC", "-O2", "-o", str(partial), str(SHIM_SOURCE), "-ldl"],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise RuntimeError(f"compiling {SHIM_SOURCE.name} failed: {built.stderr.strip()}")
        partial.replace(shim)
    return f"{shim}:{lib}"


def faked(env: dict[str, str], process_tz: str, offset: int) -> dict[str, str]:
    """``env`` for a process (and its children) whose wall clock is moved by ``offset``
    seconds and keeps running, in zone ``process_tz``, with a real monotonic clock."""
    return {
        **env,
        "TZ": process_tz,
        "LD_PRELOAD": preload(),
        "FAKETIME": f"{offset:+d}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def faked_env(offset: int, process_tz: str, bootstrap: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOCFLOW_")}
    return faked({**env, "VOCFLOW_TEST_BOOTSTRAP": bootstrap}, process_tz, offset)


def check_clock(env: dict[str, str], run: Run) -> str:
    """The faked clock really is where we asked (else the run would prove nothing)."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; from datetime import datetime; from zoneinfo import ZoneInfo; "
            "time.sleep(0.01); "  # the wait shim is in place (else EINVAL)
            "print(datetime.now(ZoneInfo('Asia/Shanghai')).isoformat(timespec='seconds'), "
            "time.strftime('%Z'))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    shown = probe.stdout.strip()
    if probe.returncode != 0 or not shown:
        raise SystemExit(f"clock matrix: python under libfaketime failed: {probe.stderr.strip()}")
    local = datetime.fromisoformat(shown.split()[0])
    want = [int(p) for p in run.local_time.split(":")] + [0]
    got_s = local.hour * 3600 + local.minute * 60 + local.second
    want_s = want[0] * 3600 + want[1] * 60 + want[2]
    if abs(got_s - want_s) > 60:
        raise SystemExit(f"clock matrix: asked for {run.label}, the process saw {shown}")
    return shown


def run_one(run: Run, bootstrap: str, argv: list[str], out: Path) -> tuple[int, float, str]:
    """One run: its faked clock checked, then pytest with its output in ``out``.

    The offset is taken when the run starts (not when the matrix does), so the
    run begins at its instant however long the runs before it took."""
    offset = offset_seconds(run.local_time, datetime.now(UTC))
    env = faked_env(offset, run.process_tz, bootstrap)
    seen = check_clock(env, run)
    started = time.monotonic()
    with out.open("wb") as log:
        log.write(f"\n=== clock matrix: {run.label} (process saw {seen}) ===\n".encode())
        log.flush()
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-m", run.marker, "-q", "-p", "no:cacheprovider",
             *argv],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return code, time.monotonic() - started, seen


def main(argv: list[str]) -> int:
    """The runs in two lanes side by side, each lane one run after another: the
    "all" runs (mostly waiting on workers, Prometheus and real-time pacing) and the
    "unit" runs (embedded ClickHouse queries, CPU). One after another they took
    ~1,270 s, longer than the suite at the real time that `make test` runs beside
    them; side by side the "unit" runs fill the all-runs' waiting. Each run's output
    is printed whole when it ends, so the log reads run by run."""
    try:
        preload()  # fail before starting anything
    except RuntimeError as exc:
        print(f"clock matrix: {exc}", file=sys.stderr)
        return 2
    results: dict[Run, tuple[int, float, str]] = {}
    printing = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="vocflow-clock-") as home:
        external = os.environ.get("VOCFLOW_TEST_BOOTSTRAP")
        broker = None
        if not external:
            broker = LocalBroker(home=Path(home) / "kafka", port=free_port(pairs=True))
            broker.up()
        bootstrap = external or broker.bootstrap  # type: ignore[union-attr]

        def lane(runs: list[Run]) -> None:
            for n, run in enumerate(runs):
                out = Path(home) / f"{run.scope}-{n}.log"
                try:
                    results[run] = run_one(run, bootstrap, argv, out)
                finally:
                    with printing:
                        if out.exists():
                            sys.stdout.write(out.read_text("utf-8", "replace"))
                        sys.stdout.flush()

        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                lanes = [
                    pool.submit(lane, [r for r in RUNS if r.scope == scope])
                    for scope in ("all", "unit")
                ]
                for done in lanes:
                    done.result()  # a SystemExit of check_clock is raised here
        finally:
            if broker is not None:
                broker.down()
    print("\nclock matrix summary:")
    for run in RUNS:
        if run not in results:
            print(f"  {run.label:48} not run")
            continue
        code, seconds, seen = results[run]
        verdict = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"  {run.label:48} started {seen:28} {verdict:24} {seconds:5.0f}s")
    return 0 if len(results) == len(RUNS) and all(c == 0 for c, _, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
