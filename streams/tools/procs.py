"""`vocflow <command>` as a child process: what the demo, the benchmarks and
the integration tests start, wait for, and stop.

A child is started with ``python -m vocflow.streams.cli`` (the `vocflow`
script may not be on PATH in a fresh venv), its output goes to a log file, it
is ready when its ``/healthz`` answers, and it is stopped with SIGTERM (so the
worker commits and flushes, as in production) and killed only after a grace
period. An error names the command and ends with the tail of its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

CLI = (sys.executable, "-m", "vocflow.streams.cli")


class ChildError(RuntimeError):
    """A child process died or did not become healthy."""


def env_without_vocflow(**settings: str) -> dict[str, str]:
    """This process's environment minus every ``VOCFLOW_*`` variable, plus
    `settings`: a child configured only by what its caller says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOCFLOW_")}
    env.update(settings)
    return env


def run(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A one-shot `vocflow <args>`, output captured as text."""
    return subprocess.run(
        [*CLI, *args],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Child:
    """A running `vocflow <command>`; a context manager that stops it on exit."""

    def __init__(
        self,
        command: str,
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        url: str | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.command = command
        self.log = log
        self.url = url
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, *options, command],
                env=None if env is None else dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Until ``<url>/healthz`` answers 200; ChildError if the child exits first
        or does not answer within `timeout` seconds."""
        assert self.url is not None, "a child without a URL has no /healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChildError(
                    f"vocflow {self.command} exited with code {self.proc.returncode} during "
                    f"start-up; the end of {self.log}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.3)
        raise ChildError(
            f"vocflow {self.command} did not answer on {self.url} within {timeout:.0f}s; "
            f"the end of {self.log}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
