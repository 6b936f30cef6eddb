"""Publishing a rules version to `config.rules` and a department model version to
`config.models`, the hot-reload channels."""

from __future__ import annotations

import zlib
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


MODEL_KEY = b"department"


def push_model(settings: Settings, path: Path) -> int:
    """Publish a department model file (zlib-compressed: a model is a few MB of
    text) and return its offset; the topic allows messages of that size."""
    ensure_topics(settings, (T.MODELS,))
    topic = T.Topics(settings).name(T.MODELS)
    try:
        producer = kafka_clients.producer(settings, max_request_size=T.MODELS.max_message_bytes)
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot publish the model: {exc}") from None
    try:
        future = producer.send(
            topic,
            key=MODEL_KEY,
            value=zlib.compress(path.read_bytes(), 9),
            headers=[("filename", path.name.encode())],
        )
        return future.get(timeout=60).offset
    finally:
        producer.close()
