"""Hot reload on the real broker: `vocflow rules push` changes routing on a running
worker; an invalid version is rejected and the rules in force stay."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.conftest import read_topic, running_worker, vocflow, wait_for, worker_env
from vocflow.schemas import RoutingEnvelope
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import DEFAULT_RULES_FILE

pytestmark = pytest.mark.integration

NEW_RULE = """rules:
  - id: vip_care.gold_card
    priority: 2000
    when: {any: [金卡专席]}
    set: {department: vip_care, category: vip_care, urgency: P2}
"""


def contact(n: int, text: str) -> bytes:
    return json.dumps(
        {
            "event_id": f"r{n}",
            "contact_id": f"R{n}",
            "customer_id": f"C{n}",
            "channel": "chat",
            "event_type": "message",
            "occurred_at": datetime.now(UTC).isoformat(),
            "text": text,
        }
    ).encode()


def metric(url: str, name: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        return "\n".join(
            line for line in response.read().decode().splitlines() if line.startswith(name)
        )


def test_push_valid_then_invalid_rules(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"rl{uuid.uuid4().hex[:8]}."
    env = worker_env(kafka_bootstrap, prefix, tmp_path)
    rules_text = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    new = tmp_path / "rules-v2.yaml"
    new.write_text(
        rules_text.replace('version: "2026.11-1"', 'version: "2026.11-2"')
        .replace(
            "departments:\n", "departments:\n  - {id: vip_care, name: 金卡服务, sla_hours: 2}\n", 1
        )
        .replace("rules:\n", NEW_RULE, 1),
        encoding="utf-8",
    )
    producer = kafka_clients.producer(kafka_bootstrap)
    raw = f"{prefix}contacts.raw"
    with running_worker(env, tmp_path / "worker.log") as url:
        producer.send(raw, key=b"R1", value=contact(1, "金卡专席怎么转人工，宽带断网了"))
        producer.flush()
        wait_for(
            lambda: "vocflow_routed_total" in metric(url, "vocflow_routed_total"),
            60,
            "the first routing",
        )

        pushed = vocflow("rules", "push", str(new), env=env)
        assert pushed.returncode == 0, pushed.stderr
        assert f"{new}: valid, version 2026.11-2" in pushed.stdout
        wait_for(
            lambda: (
                'vocflow_rules_info{version="2026.11-2"} 1.0' in metric(url, "vocflow_rules_info")
            ),
            60,
            "rules 2026.11-2 in force",
        )
        producer.send(raw, key=b"R2", value=contact(2, "金卡专席怎么转人工，宽带断网了"))
        producer.flush()
        wait_for(
            lambda: len(read_topic(kafka_bootstrap, f"{prefix}dept.vip_care")) == 1,
            60,
            "a contact in dept.vip_care",
        )

        # A broken version straight onto the topic (bypassing the CLI's own check).
        broken = (
            new.read_text(encoding="utf-8")
            .replace('version: "2026.11-2"', 'version: "2026.11-3"')
            .replace("when: {any: [金卡专席]}", "when: {regex: '金卡('}")
        )
        producer.send(
            f"{prefix}config.rules",
            key=b"rules",
            value=broken.encode(),
            headers=[("filename", b"rules-v3.yaml")],
        )
        producer.flush()
        wait_for(
            lambda: (
                'vocflow_rules_reloads_total{result="rejected"} 1.0'
                in metric(url, "vocflow_rules_reloads_total")
            ),
            60,
            "the rejection",
        )
        assert 'vocflow_rules_info{version="2026.11-2"} 1.0' in metric(url, "vocflow_rules_info")
        producer.send(raw, key=b"R3", value=contact(3, "金卡专席怎么转人工，宽带断网了"))
        producer.flush()
        wait_for(
            lambda: len(read_topic(kafka_bootstrap, f"{prefix}dept.vip_care")) == 2,
            60,
            "the second vip_care contact under the kept rules",
        )
    producer.close()

    first = [
        RoutingEnvelope.model_validate_json(r.value)
        for r in read_topic(kafka_bootstrap, f"{prefix}dept.network")
    ]
    assert [(e.contact_id, e.rules_version) for e in first] == [("R1", "2026.11-1")]
    vip = [
        RoutingEnvelope.model_validate_json(r.value)
        for r in read_topic(kafka_bootstrap, f"{prefix}dept.vip_care")
    ]
    assert [(e.contact_id, e.rules_version, e.tags.department.rule_id) for e in vip] == [
        ("R2", "2026.11-2", "vip_care.gold_card"),
        ("R3", "2026.11-2", "vip_care.gold_card"),
    ]
    log = (tmp_path / "worker.log").read_text()
    assert re.search(
        r"rules version rejected, keeping 2026\.11-2: rules-v3\.yaml "
        r"\(config\.rules@\d+\):\d+: ",
        log,
    ), log[-2000:]


def test_push_refuses_an_invalid_file_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DEFAULT_RULES_FILE.read_text(encoding="utf-8").replace(
            "rules:\n",
            "rules:\n  - id: oops\n    when: {regex: '('}\n    set: {department: billing}\n",
            1,
        ),
        encoding="utf-8",
    )
    line = bad.read_text(encoding="utf-8").splitlines().index("  - id: oops") + 1
    result = vocflow("rules", "push", str(bad), env=worker_env("127.0.0.1:1", "x.", tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"vocflow: error: invalid rules file: {bad}:")
    assert re.search(rf"{re.escape(str(bad))}:({line}|{line + 1}):", result.stderr)
    assert "Traceback" not in result.stderr
