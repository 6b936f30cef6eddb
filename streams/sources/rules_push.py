"""Publishing a rules version to `config.rules`, the hot-reload channel."""

from __future__ import annotations

from pathlib import Path

from kafka.errors import KafkaError

from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.admin import KafkaUnavailable, ensure_topics
from vocflow.streams.core.settings import Settings

RULES_KEY = b"rules"


def push_rules(settings: Settings, path: Path, departments: list[str]) -> int:
    """Publish the file (validated by the caller) and return its offset.

    Department topics are created first, so the first contact routed to a new
    department never waits on topic creation.
    """
    ensure_topics(settings, (T.RULES, *(T.department_spec(d) for d in departments)))
    topic = T.Topics(settings).name(T.RULES)
    try:
        producer = kafka_clients.producer(settings)
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot publish rules: {exc}") from None
    try:
        future = producer.send(
            topic,
            key=RULES_KEY,
            value=path.read_bytes(),
            headers=[("filename", path.name.encode())],
        )
        return future.get(timeout=30).offset
    finally:
        producer.close()
