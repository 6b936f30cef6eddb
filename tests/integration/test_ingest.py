"""`vocflow ingest` and the Publisher against a real broker.

The durability test kills a broker of its own (never the shared session one)
under load and checks that every item answered 202 is in Kafka afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.integration.conftest import (
    read_topic,
    running_command,
    vocflow,
    wait_for,
    worker_env,
)
from vocflow.streams.sources.ingest import signed_headers
from vocflow.streams.sources.publisher import EventValidationError, Publisher
from vocflow.streams.tools.broker import LocalBroker

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "channels"
SECRET = "integration-secret-0123456789"
SOURCES_YAML = f"cti-main:\n  secret: '{SECRET}'\n  channels: [cti, sms, email, wechat]\n"


def ingest_env(bootstrap: str, prefix: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    sources = tmp_path / "sources.yaml"
    sources.write_text(SOURCES_YAML)
    return worker_env(
        bootstrap,
        prefix,
        tmp_path,
        VOCFLOW_INGEST_PORT=str(free_port()),
        VOCFLOW_INGEST_SOURCES_FILE=str(sources),
        **extra,
    )


def running_ingest(env: dict[str, str], log: Path):  # type: ignore[no-untyped-def]
    """A `vocflow ingest` child process (see running_command)."""
    return running_command("ingest", env, log, "VOCFLOW_INGEST_PORT")


def post(url: str, channel: str, body: bytes, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/v1/events/{channel}",
        data=body,
        headers=signed_headers("cti-main", SECRET, body),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def cti(call: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "call_id": call,
        "event": "offered",
        "timestamp": "2024-05-06T09:15:00+08:00",
        "event_id": f"acd-{call}-{n}",
        "queue": "billing",
        **extra,
    }


def test_accepted_items_are_in_contacts_raw_exactly_once_with_their_keys(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    env = ingest_env(kafka_bootstrap, prefix, tmp_path)
    accepted: list[str] = []
    with running_ingest(env, tmp_path / "ingest.log") as url:
        batch = [cti(f"CALL-{i}", i) for i in range(40)]
        batch[7] = cti("CALL-7", 7, event="answered")  # no wait_seconds
        batch[21] = cti("CALL-21", 21, surprise=True)  # unknown field
        status, body = post(url, "cti", json.dumps(batch).encode())
        assert status == 207
        assert (body["accepted"], body["rejected"]) == (38, 2)
        for item in body["items"]:
            accepted += item.get("event_ids", [])
        for channel, name in [("sms", "sms/inbound.json"), ("email", "email/gbk_base64.eml")]:
            status, body = post(url, channel, (FIXTURES / name).read_bytes())
            assert status == 202, body
            accepted += body["items"][0]["event_ids"]
        # The same batch again (a sender's retry): accepted again, same event ids.
        status, body = post(url, "sms", (FIXTURES / "sms" / "inbound.json").read_bytes())
        assert status == 202
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'vocflow_ingest_requests_total{channel="cti",status="207"} 1.0' in metrics
    records = read_topic(kafka_bootstrap, f"{prefix}contacts.raw")
    events = [json.loads(r.value) for r in records]
    counts = Counter(e["event_id"] for e in events)
    assert set(counts) == set(accepted)
    sms_ids = {e["event_id"] for e in events if e["channel"] == "sms"}
    assert all(n == (2 if eid in sms_ids else 1) for eid, n in counts.items())
    for record, event in zip(records, events, strict=True):
        assert record.key == event["contact_id"].encode()
    assert {e["contact_id"] for e in events if e["channel"] == "phone"} == {
        f"CALL-{i}" for i in range(40) if i not in (7, 21)
    }


def test_ingest_refuses_to_start_with_a_bad_sources_file(tmp_path: Path) -> None:
    env = ingest_env("127.0.0.1:1", "bad.", tmp_path)
    Path(env["VOCFLOW_INGEST_SOURCES_FILE"]).write_text(
        f"cti-main:\n  secret: '{SECRET}'\n  channels: [cti, fax]\n"
    )
    result = vocflow("ingest", env=env)
    assert result.returncode == 2
    where = f"{env['VOCFLOW_INGEST_SOURCES_FILE']}:3: source 'cti-main': channels[1]"
    assert f"{where}: unknown channel 'fax'" in result.stderr
    assert "Traceback" not in result.stderr
    del env["VOCFLOW_INGEST_SOURCES_FILE"]
    result = vocflow("ingest", env=env)
    assert result.returncode == 2 and "no sources file" in result.stderr


class Load:
    """Threads posting unique CTI calls (one event each, never resent); records each answer."""

    def __init__(self, url: str, threads: int = 6) -> None:
        self.url = url
        self.answers: dict[str, str] = {}  # call id -> "202" | "503/unavailable" | "error" | ...
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)

    def count(self, *answers: str) -> int:
        with self.lock:
            return sum(1 for a in self.answers.values() if a in answers)

    def _run(self, thread: int) -> None:
        n = 0
        while not self.stop.is_set():
            size = 1 + n % 3  # single items and small batches
            items = [cti(f"LOAD-{thread}-{n + k}", n + k) for k in range(size)]
            n += size
            calls = [item["call_id"] for item in items]
            body = json.dumps(items if size > 1 else items[0]).encode()
            try:
                status, answer = post(self.url, "cti", body, timeout=30)
            except OSError:  # connection refused/reset, timeout: not confirmed
                results = dict.fromkeys(calls, "error")
            else:
                states = [item["status"] for item in answer.get("items", [])] or [""] * size
                results = {
                    call: "202" if status == 202 else f"{status}/{state}"
                    for call, state in zip(calls, states, strict=True)
                }
            with self.lock:
                self.answers.update(results)


def test_202_means_durable_when_the_broker_is_killed_under_load(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path / "own-kafka", port=free_port(pairs=True))
    broker.up()
    try:
        env = ingest_env(
            broker.bootstrap,
            "durable.",
            tmp_path,
            VOCFLOW_PARTITIONS="3",
            VOCFLOW_INGEST_PRODUCE_TIMEOUT_S="2",
            VOCFLOW_INGEST_MAX_IN_FLIGHT="200",
            VOCFLOW_INGEST_RETRY_AFTER_S="1",
        )
        with running_ingest(env, tmp_path / "ingest.log") as url:
            with Load(url) as load:
                wait_for(lambda: load.count("202") >= 300, 120, "300 accepted items")
                pid = broker.pid()
                assert pid is not None
                os.kill(pid, signal.SIGKILL)  # no clean shutdown, no flush
                wait_for(
                    lambda: load.count("503/unavailable", "error") >= 20,
                    120,
                    "items refused while the broker is down",
                )
            broker.down()  # reaps the killed process
            broker.up()
            # Ingest recovers on its own once the broker is back.
            wait_for(
                lambda: post(url, "cti", json.dumps(cti("AFTER", 1)).encode())[0] == 202,
                180,
                "a 202 after the broker restart",
            )
        answers = load.answers
        # A batch can be half confirmed: its 503 then marks some items "accepted", and
        # those are as durable as a 202.
        assert set(answers.values()) <= {"202", "503/accepted", "503/unavailable", "error"}, (
            Counter(answers.values())
        )
        accepted = {call for call, a in answers.items() if a in ("202", "503/accepted")}
        assert len(accepted) >= 300
        records = read_topic(broker.bootstrap, "durable.contacts.raw")
        stored = Counter(json.loads(r.value)["contact_id"] for r in records)
        missing = sorted(accepted - set(stored))
        assert not missing, f"{len(missing)} items confirmed are not in Kafka: {missing[:5]}"
        # Each call was posted once: the idempotent producer's retries made no copies
        # (a 503 item may still have arrived later; that is allowed, once).
        assert max(stored.values()) == 1, stored.most_common(3)
    finally:
        broker.down()


def test_publisher_delivers_validated_events(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    env = worker_env(kafka_bootstrap, prefix, tmp_path)
    assert vocflow("topics", "--create", env=env).returncode == 0
    events = [
        {
            "event_id": f"crm-{i}",
            "contact_id": f"C-{i % 3}",
            "channel": "phone",
            "event_type": "offered",
            "occurred_at": "2024-05-06T09:15:42+08:00",
        }
        for i in range(10)
    ]
    with Publisher(kafka_bootstrap, topic_prefix=prefix) as pub:
        meta = pub.publish(events[0])
        assert meta.topic == f"{prefix}contacts.raw" and meta.offset >= 0
        metas = pub.publish_many(events[1:])
        assert len(metas) == 9
        with pytest.raises(EventValidationError):
            pub.publish({**events[0], "event_type": "answered"})
    records = read_topic(kafka_bootstrap, f"{prefix}contacts.raw")
    assert sorted(json.loads(r.value)["event_id"] for r in records) == sorted(
        e["event_id"] for e in events
    )
    assert all(r.key == json.loads(r.value)["contact_id"].encode() for r in records)
