"""The one Kafka client factory: shared limits and connection, per-site overrides."""

from __future__ import annotations

import pytest

from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import Settings


def test_bootstrap_list_is_trimmed() -> None:
    assert kafka_clients.bootstrap_servers(" a:1, b:2 ,") == ["a:1", "b:2"]


@pytest.mark.usefixtures("recorded")
def test_producers_share_the_record_limit_and_acks() -> None:
    settings = Settings(kafka_bootstrap="k1:9092,k2:9092", app_id="cc")
    sync = kafka_clients.producer(settings, "tool", linger_ms=7)
    aio = kafka_clients.aio_producer(settings)
    assert sync.config == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "client_id": "cc-tool",
        "acks": "all",
        "max_request_size": 8 * 1024 * 1024,
        "linger_ms": 7,
    }
    assert aio.config == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "acks": "all",
        "enable_idempotence": True,
        "max_request_size": 8 * 1024 * 1024,
        "max_batch_size": 512 * 1024,
        "partitioner": kafka_clients.key_partitioner,
    }


@pytest.mark.usefixtures("recorded")
def test_a_site_overrides_a_default() -> None:
    p = kafka_clients.aio_producer("h:1", max_request_size=2_000_000)
    assert p.config["max_request_size"] == 2_000_000


@pytest.mark.usefixtures("recorded")
def test_consumers_commit_only_when_told_and_keep_their_topics() -> None:
    c = kafka_clients.aio_consumer("h:1", "t1", "t2", group_id=None)
    assert c.topics == ("t1", "t2")
    assert c.config == {"bootstrap_servers": ["h:1"], "enable_auto_commit": False, "group_id": None}
    s = kafka_clients.consumer("h:1")
    assert s.config == {"bootstrap_servers": ["h:1"], "enable_auto_commit": False}
    assert kafka_clients.admin("h:1", "admin").config == {
        "bootstrap_servers": ["h:1"],
        "client_id": "vocflow-admin",
    }


def test_faust_broker_uses_the_same_cluster_and_limit() -> None:
    settings = Settings(kafka_bootstrap="k1:9092,k2:9092")
    assert kafka_clients.faust_broker(settings) == {
        "broker": ["kafka://k1:9092", "kafka://k2:9092"],
        "producer_max_request_size": 8 * 1024 * 1024,
    }


def test_key_partitioner_agrees_with_aiokafka_default() -> None:
    """Same partition as aiokafka's (and the Java client's) murmur2 for every key,
    asked twice (the second answer comes from the memo)."""
    from aiokafka.partitioner import DefaultPartitioner

    default = DefaultPartitioner()
    for n in (1, 6, 12):
        parts = list(range(n))
        for i in range(2_000):
            key = f"c-{i:05d}-联系".encode()
            expected = default(key, parts, parts)
            assert kafka_clients.key_partitioner(key, parts, parts) == expected
            assert kafka_clients.key_partitioner(key, parts, parts) == expected


def test_key_partitioner_spreads_keyless_records_over_available_partitions() -> None:
    seen = {kafka_clients.key_partitioner(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert seen == {1, 3}
