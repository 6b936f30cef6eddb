"""The child-process helper the demo, the benchmarks and the integration tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from vocflow.streams.tools import procs


def test_run_is_the_cli_of_this_interpreter() -> None:
    done = procs.run("--help", timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: vocflow")


def test_a_child_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    child = procs.Child("no-such-command", log, url="http://127.0.0.1:9")
    with pytest.raises(procs.ChildError) as err:
        child.wait_healthy(timeout=60)
    message = str(err.value)
    assert message.startswith("vocflow no-such-command exited with code 2 during start-up")
    assert "invalid choice: 'no-such-command'" in message
    assert child.stop() == 2


def test_env_without_vocflow_keeps_only_what_the_caller_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOCFLOW_TOPIC_PREFIX", "leaked.")
    monkeypatch.setenv("HOME_FOR_TEST", "kept")
    env = procs.env_without_vocflow(VOCFLOW_APP_ID="x")
    assert env["HOME_FOR_TEST"] == "kept"
    assert {k: v for k, v in env.items() if k.startswith("VOCFLOW_")} == {"VOCFLOW_APP_ID": "x"}
