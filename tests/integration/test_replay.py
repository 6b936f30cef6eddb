"""`vocflow replay` against the real broker: kill -9 in the middle, rerun, every line once."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import read_topic, vocflow, wait_for, worker_env
from vocflow.streams.tools import procs

pytestmark = pytest.mark.integration

LINES = 6000
INVALID = {100, 2500, 5999}  # line numbers


def event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"rp-{i}",
        "contact_id": f"C-{i % 97}",
        "channel": "phone",
        "event_type": "offered",
        "occurred_at": f"2024-05-06T{9 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}+08:00",
    }


def write_jsonl(path: Path) -> set[str]:
    valid = set()
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for line in range(1, LINES + 1):
            if line in INVALID:
                f.write('{"event_id": "broken", "channel": "fax"}\n')
            else:
                f.write(json.dumps(event(line)) + "\n")
                valid.add(f"rp-{line}")
    return valid


def checkpoint_line(directory: Path) -> int:
    lines = [json.loads(p.read_text())["line"] for p in directory.glob("*.json")]
    return max(lines, default=0)


def stored_ids(bootstrap: str, topic: str) -> Counter[str]:
    return Counter(json.loads(r.value)["event_id"] for r in read_topic(bootstrap, topic))


def test_replay_killed_midway_resumes_and_every_line_is_in_kafka_once(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    data = tmp_path / "day.jsonl.gz"
    valid = write_jsonl(data)
    env = worker_env(kafka_bootstrap, prefix, tmp_path / "state")
    checkpoints = tmp_path / "state" / "replay"
    log = tmp_path / "replay.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*procs.CLI, "replay", str(data), "--rate", "1500"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                lambda: proc.poll() is None and checkpoint_line(checkpoints) >= 1500,
                120,
                f"replay progress: {log.read_text()[-2000:] if log.exists() else ''}",
            )
            proc.send_signal(signal.SIGKILL)  # no clean-up, no last checkpoint
        finally:
            proc.wait(30)
    interrupted_at = checkpoint_line(checkpoints)
    assert 1500 <= interrupted_at < LINES
    first = stored_ids(kafka_bootstrap, f"{prefix}contacts.raw")
    assert 0 < len(first) < len(valid)

    result = vocflow("replay", str(data), "--no-progress", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "resuming after line" in result.stderr
    assert f"{data}:5999: invalid:" in result.stderr  # only lines after the checkpoint

    stored = stored_ids(kafka_bootstrap, f"{prefix}contacts.raw")
    assert set(stored) == valid
    assert max(stored.values()) == 1, stored.most_common(3)

    again = vocflow("replay", str(data), "--no-progress", env=env)
    assert again.returncode == 0
    assert "already replayed" in again.stderr
    assert sum(stored_ids(kafka_bootstrap, f"{prefix}contacts.raw").values()) == len(valid)


def test_replay_csv_with_max_events_then_rest_and_a_bad_line_counted(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    data = tmp_path / "calls.csv"
    rows = ["event_id,contact_id,channel,event_type,occurred_at,queue,payload.wait_seconds"]
    for i in range(1, 51):
        rows.append(f"cv-{i},C-{i % 5},phone,answered,2024-05-06T09:15:{i % 60:02d}+08:00,q,{i}")
    rows[20] = "cv-20,C-0,phone,answered,2024-05-06T09:15:20+08:00,q,"  # answered, no wait
    data.write_text("\n".join(rows) + "\n")
    env = worker_env(kafka_bootstrap, prefix, tmp_path / "state")
    first = vocflow("replay", str(data), "--max-events", "10", env=env)
    assert first.returncode == 0, first.stderr
    assert "replayed 10 events" in first.stdout and "stopped at --max-events" in first.stdout
    rest = vocflow("replay", str(data), env=env)
    assert rest.returncode == 0, rest.stderr
    assert "replayed 39 events" in rest.stdout and "1 invalid line(s) (invalid 1)" in rest.stdout
    assert f"{data}:21: invalid: event_type 'answered' needs payload" in rest.stderr.replace(
        "Value error, ", ""
    )
    stored = stored_ids(kafka_bootstrap, f"{prefix}contacts.raw")
    assert set(stored) == {f"cv-{i}" for i in range(1, 51) if i != 20}
    assert max(stored.values()) == 1


def test_replay_user_errors_are_one_clear_line(tmp_path: Path) -> None:
    env = worker_env("127.0.0.1:1", "none.", tmp_path)
    result = vocflow("replay", str(tmp_path / "absent.jsonl"), env=env)
    assert result.returncode == 2 and "absent.jsonl: no such file" in result.stderr
    odd = tmp_path / "a.xlsx"
    odd.write_text("x")
    result = vocflow("replay", str(odd), env=env)
    assert result.returncode == 2 and "unknown format" in result.stderr
    result = vocflow("replay", str(odd), "--rate", "0", env=env)
    assert result.returncode == 2 and "--rate must be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr
