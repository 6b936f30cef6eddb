"""The Python publishing API: validation before sending, keys, the fixed delivery settings."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
import pytest

from vocflow.schemas import ContactEvent
from vocflow.streams.sources import publisher as P


class FakeFuture:
    def __init__(self, meta: str) -> None:
        self.meta = meta

    def get(self, timeout: float | None = None) -> str:
        return self.meta


class FakeKafkaProducer:
    instances: ClassVar[list[FakeKafkaProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[dict[str, Any]] = []
        self.flushed = self.closed = 0
        FakeKafkaProducer.instances.append(self)

    def send(self, topic: str, **kwargs: Any) -> FakeFuture:
        self.sent.append({"topic": topic, **kwargs})
        return FakeFuture(f"meta-{len(self.sent)}")

    def flush(self, timeout: float | None = None) -> None:
        self.flushed += 1

    def close(self, timeout: float | None = None) -> None:
        self.closed += 1


@pytest.fixture()
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeKafkaProducer]:
    FakeKafkaProducer.instances = []
    monkeypatch.setattr("kafka.KafkaProducer", FakeKafkaProducer)
    return FakeKafkaProducer


EVENT = {
    "event_id": "crm-7f3a",
    "contact_id": "C-1001",
    "channel": "phone",
    "event_type": "answered",
    "occurred_at": "2024-05-06T09:15:42+08:00",
    "payload": {"wait_seconds": 12},
}


def test_publish_sends_validated_json_keyed_by_contact_id(fake_kafka: Any) -> None:
    with P.Publisher("k1:9092,k2:9092", topic_prefix="x.") as pub:
        assert pub.publish(EVENT) == "meta-1"
    producer = fake_kafka.instances[0]
    [sent] = producer.sent
    assert sent["topic"] == "x.contacts.raw"
    assert sent["key"] == b"C-1001"
    value = orjson.loads(sent["value"])
    assert value["payload"] == {"wait_seconds": 12.0}
    assert "text" not in value  # None fields are left out, as the adapters do
    assert ContactEvent.model_validate(value).event_id == "crm-7f3a"
    assert producer.closed == 1
    assert producer.config["bootstrap_servers"] == ["k1:9092", "k2:9092"]


def test_delivery_settings_cannot_be_weakened(fake_kafka: Any) -> None:
    P.Publisher("k:9092", acks=1, enable_idempotence=False, linger_ms=50)
    config = fake_kafka.instances[0].config
    assert config["acks"] == "all" and config["enable_idempotence"] is True
    assert config["linger_ms"] == 50


def test_an_invalid_event_raises_a_clear_error_and_sends_nothing(fake_kafka: Any) -> None:
    pub = P.Publisher("k:9092")
    with pytest.raises(P.EventValidationError) as info:
        pub.publish({**EVENT, "customer_id": "13800138000 in clear", "channel": "fax"})
    message = str(info.value)
    assert message.startswith("event is not a valid ContactEvent:")
    assert "customer_id: String should match pattern" in message
    assert "; channel: Input should be 'phone'" in message
    assert "13800138000" not in message  # values are never echoed
    assert isinstance(info.value, ValueError)
    assert info.value.errors[0][0] == "customer_id"
    with pytest.raises(P.EventValidationError, match="needs payload field"):
        pub.publish({**EVENT, "payload": None})
    assert fake_kafka.instances[0].sent == []


def test_publish_many_validates_everything_before_sending_anything(fake_kafka: Any) -> None:
    pub = P.Publisher("k:9092")
    events = [{**EVENT, "event_id": f"e{i}", "contact_id": f"C{i}"} for i in range(3)] + [
        {**EVENT, "channel": "fax"}
    ]
    with pytest.raises(P.EventValidationError, match=r"event \[3\] is not a valid"):
        pub.publish_many(events)
    assert fake_kafka.instances[0].sent == []
    assert pub.publish_many(events[:3]) == ["meta-1", "meta-2", "meta-3"]
    assert [s["key"] for s in fake_kafka.instances[0].sent] == [b"C0", b"C1", b"C2"]


def test_model_instances_are_accepted_as_they_are(fake_kafka: Any) -> None:
    pub = P.Publisher("k:9092")
    pub.publish(ContactEvent.model_validate(EVENT))
    pub.flush()
    assert fake_kafka.instances[0].flushed == 1
