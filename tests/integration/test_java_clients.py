"""Third-party Kafka clients: Kafka's own Java console producer and consumer.

Contact-center systems that publish to vocflow are rarely Python. A Java (or Go,
librdkafka) producer usually compresses its batches, and every codec Kafka
defines must be readable by the worker: one codec it cannot decode would stop
the partition for good. Here the Java console producer writes the raw topic
with each codec (gzip, snappy, lz4, zstd) and a few lines that are not events;
the worker must normalize every event and dead-letter every bad line. Then the
Java console consumer reads what vocflow wrote, as a department system would:
keys and JSON values that match the published JSON Schema.
"""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.integration.conftest import get_json, running_worker, vocflow, wait_for, worker_env
from vocflow.schemas.publish import JSON_DIR
from vocflow.streams.tools.bench import java_tool
from vocflow.streams.tools.traffic import generate

pytestmark = pytest.mark.integration

CODECS = ("gzip", "snappy", "lz4", "zstd")
PER_CODEC = 200
BAD_LINES = ("{not json", '{"event_id": "x"}', "[1, 2, 3]")


def test_java_producers_with_every_codec_and_a_java_consumer(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"java{uuid.uuid4().hex[:8]}."
    env = worker_env(kafka_bootstrap, prefix, tmp_path / "data")
    created = vocflow("topics", "--create", env=env)
    assert created.returncode == 0, created.stderr

    # Valid events only (the console producer sends one line per record, so the
    # generator's binary and multi-line malformed records are replaced by BAD_LINES).
    records = list(itertools.islice(generate(seed=5, malformed_ratio=0.0), PER_CODEC * 4))
    for n, codec in enumerate(CODECS):
        chunk = records[n * PER_CODEC : (n + 1) * PER_CODEC]
        lines = [f"{r.key.decode()}\t{r.value.decode()}" for r in chunk]
        lines += [f"bad-{codec}-{i}\t{line}" for i, line in enumerate(BAD_LINES)]
        java_tool(
            "kafka.tools.ConsoleProducer",
            [
                "--bootstrap-server", kafka_bootstrap,
                "--topic", f"{prefix}contacts.raw",
                "--compression-codec", codec,
                "--property", "parse.key=true",
                "--property", "key.separator=\t",
                "--producer-property", "acks=all",
            ],
            stdin="\n".join(lines) + "\n",
        )  # fmt: skip
    total = len(records) + len(CODECS) * len(BAD_LINES)

    with running_worker(env, tmp_path / "worker.log") as url:

        def all_in() -> bool:
            stats = get_json(f"{url}/api/stats")
            rows = stats.get("clickhouse", {})
            return (
                stats["stages"].get("normalize", {}).get("in") == total
                and rows.get("contact_events") == len(records)
                and rows.get("dead_letters") == len(CODECS) * len(BAD_LINES)
            )

        wait_for(all_in, 180, "every Java-produced record through normalize and in ClickHouse")
        normalize = get_json(f"{url}/api/stats")["stages"]["normalize"]
        assert normalize["dlq"] == len(CODECS) * len(BAD_LINES), normalize

    out = java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        [
            "--bootstrap-server", kafka_bootstrap,
            "--topic", f"{prefix}contacts.events",
            "--from-beginning",
            "--max-messages", str(len(records)),
            "--timeout-ms", "60000",
            "--property", "print.key=true",
            "--property", "key.separator=\t",
        ],
    )  # fmt: skip
    schema = json.loads((JSON_DIR / "contact_event.v1.json").read_text("utf-8"))
    validator = Draft202012Validator(schema)
    consumed = [line.split("\t", 1) for line in out.splitlines() if line]
    assert len(consumed) == len(records)
    sent = {json.loads(r.value)["event_id"] for r in records}
    got = set()
    for key, value in consumed:
        event = json.loads(value)
        assert not list(validator.iter_errors(event)), event
        assert key == event["contact_id"]
        got.add(event["event_id"])
    assert got == sent
