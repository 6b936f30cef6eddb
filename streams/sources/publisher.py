"""Publish ContactEvents to vocflow from any Python system (sync, kafka-python).

For systems that already hold canonical events (a CRM, a batch job, a
replay): no HTTP, no adapter, straight to ``contacts.raw``::

    from vocflow.streams.core.settings import load_settings
    from vocflow.streams.sources.publisher import Publisher

    with Publisher(load_settings()) as pub:  # or a bare "kafka1:9092,kafka2:9092"
        meta = pub.publish({
            "event_id": "crm-7f3a", "contact_id": "C-1001", "channel": "phone",
            "event_type": "offered", "occurred_at": "2024-05-06T09:15:42+08:00",
        })
        print(meta.partition, meta.offset)

Delivery guarantee
------------------
``publish`` returns only after the event is acknowledged by every in-sync
replica of its partition (``acks="all"``). The producer is idempotent, so its
own retries after a lost connection never write an event twice. When
``publish`` raises (``KafkaTimeoutError`` or another ``KafkaError``) the event
may or may not have been written: send it again. That is safe because the
pipeline drops duplicates by ``event_id`` -- so choose a stable ``event_id``
(derived from your own record id), never a random one per attempt. Net
effect: **at-least-once into Kafka, exactly-once by event_id downstream.**

Events are validated with the published pydantic model before anything is
sent, so a bad event fails in the caller's code with a clear message instead
of landing in the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import orjson
from kafka.producer.future import FutureRecordMetadata, RecordMetadata
from pydantic import ValidationError

from vocflow.schemas import ContactEvent
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings

DEFAULT_TIMEOUT_S = 30.0


class EventValidationError(ValueError):
    """An event does not match ContactEvent; ``errors`` lists ``(loc, message)`` pairs.

    A ValueError (not pydantic's own ValidationError) so that callers need not
    import pydantic, and with a message that never echoes the event's values
    (they may hold customer text).
    """

    def __init__(self, errors: list[tuple[str, str]], index: int | None = None) -> None:
        self.errors = errors
        self.index = index
        where = f"event [{index}]" if index is not None else "event"
        details = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in errors)
        super().__init__(f"{where} is not a valid ContactEvent: {details}")


def validate_event(
    event: ContactEvent | Mapping[str, Any], index: int | None = None
) -> ContactEvent:
    """The event as a ContactEvent, or EventValidationError saying which fields are wrong."""
    if isinstance(event, ContactEvent):
        return event
    try:
        return ContactEvent.model_validate(event)
    except ValidationError as exc:
        errors = [
            (".".join(str(p) for p in err["loc"]), err["msg"])
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise EventValidationError(errors, index) from None


def encode_event(event: ContactEvent) -> tuple[bytes, bytes]:
    """Kafka key (contact_id, so one contact stays in order in one partition) and value.

    The value is the same JSON the channel adapters publish (None fields left out).
    """
    value = orjson.dumps(event.model_dump(mode="json", exclude_none=True))
    return event.contact_id.encode("utf-8"), value


class Publisher:
    """A synchronous, idempotent producer of ContactEvents to ``<prefix>contacts.raw``.

    Thread-safe (kafka-python's producer is). Use as a context manager, or call
    :meth:`close`, so that queued events are delivered before the process exits.
    Give it the Settings (a secured cluster's TLS and SASL come with them) or a
    bare bootstrap string for a plaintext broker.
    """

    def __init__(
        self,
        conn: Settings | str,
        topic_prefix: str = "",
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client_id: str = "vocflow-publisher",
        **producer_config: Any,
    ) -> None:
        self.topic = f"{topic_prefix}{T.RAW.name}"
        self.timeout_s = timeout_s
        config: dict[str, Any] = {
            "linger_ms": 5,
            # Retries are bounded by time (delivery_timeout_ms), not by count.
            "delivery_timeout_ms": int(timeout_s * 1000),
            "request_timeout_ms": max(1000, min(30_000, int(timeout_s * 1000) - 100)),
            **producer_config,
            # Not overridable: they are the delivery guarantee documented above.
            "enable_idempotence": True,
            "acks": "all",
        }
        self._producer = kafka_clients.producer(conn, client_id=client_id, **config)

    def send(
        self,
        event: ContactEvent | Mapping[str, Any],
        headers: list[tuple[str, bytes]] | None = None,
    ) -> FutureRecordMetadata:
        """Validate and queue one event; the returned future resolves on Kafka's ack.

        For callers that pipeline many events and wait later (as ``vocflow
        replay`` does); :meth:`publish` is the simple blocking form.
        """
        key, value = encode_event(validate_event(event))
        return self._producer.send(self.topic, key=key, value=value, headers=headers)

    def publish(self, event: ContactEvent | Mapping[str, Any]) -> RecordMetadata:
        """Validate, send and wait until Kafka acknowledged the event.

        Raises EventValidationError before sending anything for an invalid
        event, and kafka.errors.KafkaError when Kafka did not confirm it within
        ``timeout_s`` (then it may or may not be stored: publish it again).
        """
        return self.send(event).get(timeout=self.timeout_s)

    def publish_many(
        self, events: Iterable[ContactEvent | Mapping[str, Any]]
    ) -> list[RecordMetadata]:
        """Validate all, then send all and wait for every ack; metadata in input order.

        Validation comes first so that one bad event sends nothing, rather
        than leaving the caller to find out which half of a batch went out.
        """
        checked = [validate_event(event, index=i) for i, event in enumerate(events)]
        futures = [self.send(event) for event in checked]
        self._producer.flush(timeout=self.timeout_s)
        return [f.get(timeout=self.timeout_s) for f in futures]

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every queued event is acknowledged (or failed)."""
        self._producer.flush(timeout=self.timeout_s if timeout_s is None else timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is queued, then release the connections."""
        self._producer.close(timeout=self.timeout_s if timeout_s is None else timeout_s)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
