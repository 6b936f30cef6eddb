"""`vocflow demo` just after midnight in the KPI time zone: the board is live at once.

The demo (worker, simulator, summary; the suite's broker instead of its own) runs
for 60 s under libfaketime at 00:30 Asia/Shanghai in a UTC process. A demo that
simulated "today 08:00" in the machine's zone would put every event on yesterday
(Shanghai) or in the far future: the 15m, 60m and today figures would stay empty.
Here all three must fill while the traffic runs, on /api/kpis and in `vocflow kpis`,
the wallboard renders them (screenshot: test-output/wallboard-demo.png, the picture
in the README is a copy), and the summary accounts for every event of the run.

No faketime or Chromium is a failure with the install line, never a skip.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.clock_matrix import faked, offset_seconds
from tests.e2e.wallboard_helpers import OUTPUT, chromium, chromium_binary
from tests.integration.conftest import get_json, vocflow, wait_for, worker_env
from vocflow.streams.tools import procs

pytestmark = pytest.mark.integration

INTERVALS = ("15m", "60m", "today")
SHOT = OUTPUT / "wallboard-demo.png"


def contacts(doc: dict[str, Any], interval: str) -> int:
    groups = doc["intervals"][interval]["by"]["all"]["contacts"]
    return groups.get("_all", {}).get("numerator", 0)


class Output:
    """The demo's stdout, read on a thread so the pipe never fills."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.seen_at: dict[str, float] = {}
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            print(line, end="")

    def has(self, text: str) -> bool:
        if text not in self.seen_at and any(text in line for line in self.lines):
            self.seen_at[text] = time.monotonic()
        return text in self.seen_at

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def test_the_demo_at_half_past_midnight_shows_live_kpis(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    chromium_binary()
    SHOT.unlink(missing_ok=True)  # a screenshot from an earlier run proves nothing
    prefix = f"demo{uuid.uuid4().hex[:8]}."
    offset = offset_seconds("00:30", datetime.now(UTC))
    env = faked(worker_env(kafka_bootstrap, prefix, tmp_path / "data"), "UTC", offset)
    url = f"http://127.0.0.1:{env['VOCFLOW_WEB_PORT']}"
    command = [*procs.CLI, "demo", "--duration", "60"]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Output(proc)
    try:
        wait_for(lambda: out.has("this run's ids start with"), 180, "the demo's traffic to start")
        traffic_started = out.seen_at["this run's ids start with"]
        assert f"wallboard: {url}/wallboard" in out.text

        latest: dict[str, Any] = {}

        def every_interval_has_contacts() -> bool:
            latest.update(get_json(f"{url}/api/kpis"))
            return all(contacts(latest, iv) > 0 for iv in INTERVALS)

        wait_for(every_interval_has_contacts, 55, "15m, 60m and today all to show contacts")
        filled_after = time.monotonic() - traffic_started
        print(f"15m, 60m and today non-empty {filled_after:.1f} s after the traffic started")
        generated = datetime.fromisoformat(latest["generated_at"])
        local = generated.astimezone(ZoneInfo(latest["timezone"]))
        assert (local.hour, latest["timezone"]) == (0, "Asia/Shanghai"), local  # faked clock
        day_start = datetime.fromisoformat(latest["intervals"]["today"]["start"])
        assert day_start == local.replace(hour=0, minute=0, second=0, microsecond=0)

        cli = vocflow("kpis", "--once", "--json", "--interval", "today", env=env)
        assert cli.returncode == 0, cli.stderr
        assert contacts(json.loads(cli.stdout), "today") > 0

        async def screenshot() -> None:
            async with chromium() as browser:
                await browser.call("Page.navigate", url=f"{url}/wallboard?interval=15m")
                await browser.wait_for(
                    "a live board",
                    lambda s: s["updates"] >= 1 and s["state"] == "live" and bool(s["tiles"]),
                    timeout=30,
                )
                await asyncio.sleep(1.0)  # let the fonts and tiles settle for the picture
                await browser.screenshot(SHOT)

        asyncio.run(screenshot())
        assert proc.wait(timeout=300) == 0, out.text[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    summary = out.text
    assert "  nothing lost" in summary, summary[-3000:]
    assert "produced = valid + dead-lettered: " in summary
    line = next(x for x in out.lines if x.startswith("demo summary: produced="))
    produced = int(line.split("produced=")[1].split()[0])
    assert produced > 1000, line
    assert SHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
