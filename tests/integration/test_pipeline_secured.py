"""The whole pipeline over SASL_SSL with SCRAM-SHA-512, configured as an operator
would: VOCFLOW_* variables, the password in a file, the CA bundle of the test's
own CA. Contacts go in through the Publisher, a `vocflow worker` process (Faust
agents, the voc loop, the in-process ClickHouse sink, the lag monitor) carries
them to contacts.events, the department topics and ClickHouse, and the tests
read the topics back over the same secured listener. The broker's plaintext
listener is never used by anything under test.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import (
    get_json,
    read_topic,
    running_worker,
    vocflow,
    wait_for,
    worker_env,
)
from tests.integration.secured_kafka import SCRAM_PASSWORD, SecuredKafka
from vocflow.schemas import ContactEvent, RoutingEnvelope
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import load_settings
from vocflow.streams.sources.publisher import Publisher

pytestmark = pytest.mark.integration

CONTACTS = 60


def contacts() -> list[ContactEvent]:
    """E-mails with the labelled texts (each routes to a department), ten seconds apart."""
    lines = (ROOT / "tests/data/voc_labelled.jsonl").read_text(encoding="utf-8").splitlines()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return [
        ContactEvent(
            event_id=f"S{n:04d}-1",
            contact_id=f"S{n:04d}",
            customer_id=f"C{n % 17:03d}",
            channel="email",
            event_type="received",
            occurred_at=start + timedelta(seconds=10 * n),
            queue="general",
            source="secured-test",
            text=json.loads(lines[n])["text"],
        )
        for n in range(CONTACTS)
    ]


@pytest.fixture(scope="module")
def secured_run(secured: SecuredKafka, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    prefix = f"sec{uuid.uuid4().hex[:8]}."
    data = tmp_path_factory.mktemp("secured-pipeline")
    secured_env = secured.env("SCRAM-SHA-512")
    env = worker_env(secured_env["VOCFLOW_KAFKA_BOOTSTRAP"], prefix, data) | secured_env
    settings = load_settings(environ=env)
    assert settings.bootstrap_servers == f"127.0.0.1:{secured.sasl_ssl_port}"
    created = vocflow("topics", "--create", env=env)
    assert created.returncode == 0, created.stderr

    events = contacts()
    with Publisher(settings, settings.topic_prefix) as publisher:
        publisher.publish_many(events)
    log = data / "worker.log"
    with running_worker(env, log) as url:

        def all_in() -> bool:
            rows = get_json(f"{url}/api/stats").get("clickhouse", {})
            return rows.get("contact_events") == CONTACTS and rows.get("routing_log") == CONTACTS

        wait_for(all_in, 300, "every contact in ClickHouse and routing_log")
        admin = kafka_clients.admin(settings)
        dept_topics = sorted(t for t in admin.list_topics() if t.startswith(f"{prefix}dept."))
        admin.close()
        routed = [r for topic in dept_topics for r in read_topic(settings, topic)]
    return {
        "settings": settings,
        "prefix": prefix,
        "events": events,
        "dept_topics": dept_topics,
        "routed": routed,
        "log": log,
    }


def test_every_contact_reaches_contacts_events_over_sasl_ssl(secured_run: dict[str, Any]) -> None:
    out = read_topic(secured_run["settings"], f"{secured_run['prefix']}contacts.events")
    assert sorted(json.loads(r.value)["event_id"] for r in out) == sorted(
        e.event_id for e in secured_run["events"]
    )


def test_every_contact_is_routed_to_a_department_topic(secured_run: dict[str, Any]) -> None:
    envelopes = [RoutingEnvelope.model_validate_json(r.value) for r in secured_run["routed"]]
    assert sorted(e.contact_id for e in envelopes) == sorted(
        e.contact_id for e in secured_run["events"]
    )
    assert len(secured_run["dept_topics"]) > 1


def test_the_worker_log_holds_no_password(secured_run: dict[str, Any]) -> None:
    text = Path(secured_run["log"]).read_text(errors="replace")
    assert "vocflow worker: kafka 127.0.0.1:" in text
    assert SCRAM_PASSWORD not in text
