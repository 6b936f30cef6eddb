"""raw -> contacts.events / contacts.dlq -> ClickHouse, on the real broker and embedded chdb."""

from __future__ import annotations

import base64
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.integration.conftest import (
    get_json,
    read_topic,
    running_worker,
    vocflow,
    wait_for,
    worker_env,
)
from vocflow.schemas import DeadLetter
from vocflow.schemas.publish import JSON_DIR
from vocflow.streams.core import kafka_clients
from vocflow.streams.tools.traffic import EXPECTED_REASON, generate

pytestmark = pytest.mark.integration

TOTAL = 10_000
MALFORMED_RATIO = 0.05
MAX_BYTES = 200_000


@pytest.fixture(scope="module")
def pipeline_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Produce 10,000 raw records (5 % broken in eight ways), run a worker until all are in."""
    import uuid

    prefix = f"it{uuid.uuid4().hex[:8]}."
    data = tmp_path_factory.mktemp("pipeline")
    env = worker_env(kafka_bootstrap, prefix, data, VOCFLOW_MAX_EVENT_BYTES=str(MAX_BYTES))
    created = vocflow("topics", "--create", env=env)
    assert created.returncode == 0, created.stderr

    records = list(
        itertools.islice(
            generate(seed=11, malformed_ratio=MALFORMED_RATIO, max_bytes=MAX_BYTES), TOTAL
        )
    )
    producer = kafka_clients.producer(kafka_bootstrap, linger_ms=10)
    for r in records:
        producer.send(f"{prefix}contacts.raw", key=r.key, value=r.value)
    producer.flush()
    producer.close()
    valid = [r for r in records if r.valid]
    broken = [r for r in records if not r.valid]

    with running_worker(env, data / "worker.log") as url:

        def all_in() -> bool:
            stats = get_json(f"{url}/api/stats")
            rows = stats.get("clickhouse", {})
            return (
                stats["stages"].get("normalize", {}).get("in") == TOTAL
                and rows.get("contact_events") == len(valid)
                and rows.get("dead_letters") == len(broken)
            )

        wait_for(all_in, 240, "all records in ClickHouse")
        stats = get_json(f"{url}/api/stats")
        metrics_text = Path(data) / "m.txt"
        import urllib.request

        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            metrics_text.write_bytes(response.read())
    return {
        "prefix": prefix,
        "env": env,
        "valid": valid,
        "broken": broken,
        "stats": stats,
        "bootstrap": kafka_bootstrap,
        "metrics": metrics_text.read_text(),
    }


def test_scenario_has_every_kind_of_broken_input(pipeline_run: dict[str, Any]) -> None:
    kinds = Counter(r.event_id for r in pipeline_run["broken"])
    assert set(kinds) == set(EXPECTED_REASON)
    assert 0.04 < len(pipeline_run["broken"]) / TOTAL < 0.06


def test_every_valid_event_reaches_contacts_events_exactly_once(
    pipeline_run: dict[str, Any],
) -> None:
    out = read_topic(pipeline_run["bootstrap"], f"{pipeline_run['prefix']}contacts.events")
    ids = Counter(json.loads(r.value)["event_id"] for r in out)
    assert len(out) == len(pipeline_run["valid"])
    assert set(ids) == {r.event_id for r in pipeline_run["valid"]}
    assert max(ids.values()) == 1
    for record in out:
        assert record.key.decode() == json.loads(record.value)["contact_id"]


def test_every_broken_record_is_in_the_dlq_with_its_reason(pipeline_run: dict[str, Any]) -> None:
    out = read_topic(pipeline_run["bootstrap"], f"{pipeline_run['prefix']}contacts.dlq")
    letters = [DeadLetter.model_validate_json(r.value) for r in out]
    assert len(letters) == len(pipeline_run["broken"])
    by_original = {(letter.original_bytes(), letter.source.key): letter for letter in letters}
    for record in pipeline_run["broken"]:
        letter = by_original[(record.value, record.key.decode())]
        assert letter.reason.value == EXPECTED_REASON[record.event_id]
        assert letter.source.topic == f"{pipeline_run['prefix']}contacts.raw"
        assert letter.source.offset >= 0
        assert letter.errors, letter
    offsets = {(x.source.partition, x.source.offset) for x in letters}
    assert len(offsets) == len(letters)


def test_clickhouse_holds_each_valid_event_exactly_once(pipeline_run: dict[str, Any]) -> None:
    env = pipeline_run["env"]
    result = vocflow(
        "sql",
        "--json",
        "SELECT event_id, count() AS n FROM vocflow.contact_events GROUP BY event_id",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["event_id"] for r in rows} == {r.event_id for r in pipeline_run["valid"]}
    assert {r["n"] for r in rows} == {1}
    reasons = vocflow(
        "sql",
        "--json",
        "SELECT reason, count() AS n FROM vocflow.dead_letters GROUP BY reason",
        env=env,
    )
    got = {r["reason"]: r["n"] for r in json.loads(reasons.stdout)}
    want = Counter(EXPECTED_REASON[r.event_id] for r in pipeline_run["broken"])
    assert got == dict(want)


def test_downstream_kafka_python_consumer_validates_against_published_schema(
    pipeline_run: dict[str, Any],
) -> None:
    schema = json.loads((JSON_DIR / "contact_event.v1.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    out = read_topic(pipeline_run["bootstrap"], f"{pipeline_run['prefix']}contacts.events")
    assert len(out) == len(pipeline_run["valid"])
    for record in out:
        errors = list(validator.iter_errors(json.loads(record.value)))
        assert errors == [], (record.value[:300], errors[0].message)
    dlq_schema = json.loads((JSON_DIR / "dead_letter.v1.json").read_text(encoding="utf-8"))
    dlq_validator = Draft202012Validator(dlq_schema)
    for record in read_topic(pipeline_run["bootstrap"], f"{pipeline_run['prefix']}contacts.dlq"):
        letter = json.loads(record.value)
        assert list(dlq_validator.iter_errors(letter)) == []
        base64.b64decode(letter["original_b64"], validate=True)


def test_metrics_count_what_happened(pipeline_run: dict[str, Any]) -> None:
    text = pipeline_run["metrics"]
    valid, broken = len(pipeline_run["valid"]), len(pipeline_run["broken"])
    assert f'vocflow_stage_events_in_total{{stage="normalize"}} {float(TOTAL)}' in text
    assert (
        f'vocflow_stage_events_out_total{{stage="normalize",topic="contacts.events"}} '
        f"{float(valid)}"
    ) in text
    for reason, n in Counter(EXPECTED_REASON[r.event_id] for r in pipeline_run["broken"]).items():
        assert f'vocflow_dlq_events_total{{reason="{reason}",stage="normalize"}} {float(n)}' in text
    assert f'vocflow_sink_rows_total{{table="contact_events"}} {float(valid)}' in text
    assert f'vocflow_sink_rows_total{{table="dead_letters"}} {float(broken)}' in text
    assert "vocflow_sink_flush_duration_seconds_count" in text
    assert "vocflow_worker_up 1.0" in text
