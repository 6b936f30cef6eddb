"""Fixtures of the core tests: client classes replaced by recorders."""

from __future__ import annotations

from typing import Any

import pytest


class Recorder:
    """Stands in for a client class: keeps the keywords it was built with."""

    def __init__(self, *topics: str, **config: Any) -> None:
        self.topics = topics
        self.config = config


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    for target in (
        "kafka.KafkaProducer",
        "kafka.KafkaConsumer",
        "kafka.KafkaAdminClient",
        "aiokafka.AIOKafkaProducer",
        "aiokafka.AIOKafkaConsumer",
    ):
        monkeypatch.setattr(target, Recorder)
