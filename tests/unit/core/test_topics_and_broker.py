from __future__ import annotations

import re
from pathlib import Path

import pytest

from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import load_settings
from vocflow.streams.tools.broker import DEPLOY_DIR, KAFKA_VERSION, LocalBroker


def test_topic_names_take_the_prefix() -> None:
    topics = T.Topics(load_settings(environ={"VOCFLOW_TOPIC_PREFIX": "x."}))
    assert topics.name(T.RAW) == "x.contacts.raw"
    assert topics.partitions(T.RAW) == 6
    assert topics.partitions(T.RULES) == 1
    assert topics.configs(T.PROFILES) == {"cleanup.policy": "compact"}
    assert topics.configs(T.EVENTS) == {}
    assert len({spec.name for spec in T.ALL}) == len(T.ALL)


def test_pom_pins_the_same_kafka_version() -> None:
    pom = (DEPLOY_DIR / "pom.xml").read_text()
    assert re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1) == KAFKA_VERSION
    assert KAFKA_VERSION.startswith("3.9.")


def test_server_properties_render_on_loopback(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path, port=19500)
    text = broker._render_config().read_text()
    assert "listeners=PLAINTEXT://127.0.0.1:19500,CONTROLLER://127.0.0.1:19501" in text
    assert f"log.dirs={tmp_path / 'data'}" in text
    assert "process.roles=broker,controller" in text
    assert "auto.create.topics.enable=false" in text
    assert "$" not in "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def test_status_of_a_broker_that_never_ran(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path, port=1)
    assert broker.status()["running"] is False
    assert broker.down() is False


def test_deleting_topics_needs_a_prefix() -> None:
    from vocflow.streams.core.admin import delete_topics_with_prefix

    with pytest.raises(ValueError, match="empty prefix"):
        delete_topics_with_prefix(load_settings(environ={}), "")
