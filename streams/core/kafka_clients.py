"""The one place Kafka clients are built.

Every process (worker, sink, ingest, replay, simulator, CLI tools, benchmarks)
gets its clients here, with both libraries we use: aiokafka in the asyncio
services, kafka-python in the synchronous tools and the admin client. Limits
that must agree across clients (how large a record may be, how much one fetch
may bring) are set once below; connection settings that every client of a
cluster needs are set in `_connection` and nowhere else, so a secured cluster
(SASL/TLS) is one change here, not twelve.

A caller passes the `Settings` (production paths) or a bare bootstrap string
(tests and the local broker's own probes, always plaintext on loopback).
Anything a caller passes as a keyword overrides the defaults: per-client
tuning (linger, batch size, offsets policy) stays where its reason is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    from vocflow.streams.core.settings import Settings

# The largest record any vocflow producer sends: a dead letter carries the
# original bytes (up to 4 MiB, base64) plus its reason. Topics that may hold
# such records are created with max.message.bytes to match (core/admin.py).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# For consumers that read such records in bulk (the sink, replay): one fetch
# brings at least one whole record per partition.
MAX_PARTITION_FETCH_BYTES = MAX_MESSAGE_BYTES
MAX_FETCH_BYTES = 64 * 1024 * 1024


def bootstrap_servers(conn: Settings | str) -> list[str]:
    """`host:port` entries of a comma-separated bootstrap list."""
    raw = conn if isinstance(conn, str) else conn.bootstrap_servers
    return [s.strip() for s in raw.split(",") if s.strip()]


def _connection(conn: Settings | str) -> dict[str, Any]:
    """What every client of the cluster needs, in the keyword names both
    libraries share (bootstrap; security settings belong here too)."""
    return {"bootstrap_servers": bootstrap_servers(conn)}


def _client_id(conn: Settings | str, role: str | None) -> dict[str, Any]:
    if role is None:
        return {}
    app_id = "vocflow" if isinstance(conn, str) else conn.app_id
    return {"client_id": f"{app_id}-{role}"}


def producer(conn: Settings | str, role: str | None = None, **options: Any) -> KafkaProducer:
    """A kafka-python producer: acks from all in-sync replicas, records up to
    MAX_MESSAGE_BYTES. Raises kafka.errors.KafkaError when no broker answers."""
    from kafka import KafkaProducer

    config = {"acks": "all", "max_request_size": MAX_MESSAGE_BYTES}
    return KafkaProducer(**_connection(conn), **_client_id(conn, role), **{**config, **options})


def consumer(
    conn: Settings | str, *topics: str, role: str | None = None, **options: Any
) -> KafkaConsumer:
    """A kafka-python consumer that commits only when told to."""
    from kafka import KafkaConsumer

    config = {"enable_auto_commit": False}
    return KafkaConsumer(
        *topics, **_connection(conn), **_client_id(conn, role), **{**config, **options}
    )


def admin(conn: Settings | str, role: str | None = None, **options: Any) -> KafkaAdminClient:
    """A kafka-python admin client (topics, offsets, cluster metadata)."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**_connection(conn), **_client_id(conn, role), **options)


def aio_producer(conn: Settings | str, role: str | None = None, **options: Any) -> AIOKafkaProducer:
    """An aiokafka producer: idempotent, acks from all in-sync replicas, records
    up to MAX_MESSAGE_BYTES. Start it with ``await p.start()``."""
    from aiokafka import AIOKafkaProducer

    config = {"acks": "all", "enable_idempotence": True, "max_request_size": MAX_MESSAGE_BYTES}
    return AIOKafkaProducer(**_connection(conn), **_client_id(conn, role), **{**config, **options})


def aio_consumer(
    conn: Settings | str, *topics: str, role: str | None = None, **options: Any
) -> AIOKafkaConsumer:
    """An aiokafka consumer that commits only when told to."""
    from aiokafka import AIOKafkaConsumer

    config = {"enable_auto_commit": False}
    return AIOKafkaConsumer(
        *topics, **_connection(conn), **_client_id(conn, role), **{**config, **options}
    )


def faust_broker(settings: Settings) -> dict[str, Any]:
    """The Faust app's broker keywords: the same cluster and limits as above."""
    return {
        "broker": [f"kafka://{s}" for s in bootstrap_servers(settings)],
        "producer_max_request_size": MAX_MESSAGE_BYTES,
    }
