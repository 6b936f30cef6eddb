"""The one place Kafka clients are built.

Every process (worker, sink, ingest, replay, simulator, CLI tools, benchmarks)
gets its clients here, with both libraries we use: aiokafka in the asyncio
services, kafka-python in the synchronous tools and the admin client. Limits
that must agree across clients (how large a record may be, how much one fetch
may bring) are set once below; connection settings that every client of a
cluster needs are set in `_connection` and nowhere else, so a secured cluster
(SASL/TLS) is one change here, not twelve.

A caller passes the `Settings` (production paths) or a bare bootstrap string
(tests and the local broker's own probes, always plaintext on loopback). With
Settings, `_connection` adds the cluster's security (docs/security.md): TLS
through one `ssl.SSLContext` per configuration, shared by aiokafka,
kafka-python and Faust, and SASL (SCRAM-SHA-512/256 or PLAIN) over it. The
password goes to the libraries as a `str` that prints as asterisks, because
kafka-python's admin client logs all its keywords at DEBUG.
Anything a caller passes as a keyword overrides the defaults: per-client
tuning (linger, batch size, offsets policy) stays where its reason is.
"""

from __future__ import annotations

import asyncio
import functools
import random
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vocflow.streams.core.settings import ConfigError

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    from vocflow.streams.core.settings import Settings

# The largest record any vocflow producer sends: a dead letter carries the
# original bytes (up to 4 MiB, base64) plus its reason. Topics that may hold
# such records are created with max.message.bytes to match (core/admin.py).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# For consumers that read such records in bulk (the sink): one fetch brings at
# least one whole record per partition. (1 MiB / 16 MiB fetches in the sink saved
# ~9 MB of the ClickHouse worker's peak and cost CPU: 0.56 instead of 0.49 CPU s
# per 1,000 events over a simulated day. Not kept.)
MAX_PARTITION_FETCH_BYTES = MAX_MESSAGE_BYTES
MAX_FETCH_BYTES = 64 * 1024 * 1024
# What the stage loops' consumers ask per partition. A consumer keeps each
# partition's fetched bytes until its loop has taken every record (aiokafka
# prefetches), so reading a backlog at 8 MiB a partition held 60-100 MB of
# fetched record batches in a worker (tracemalloc, a simulated day). A bigger
# record still arrives whole: since fetch v3 (KIP-74; aiokafka sends v4+) the
# broker returns the first record batch of the first non-empty partition
# whatever its size, and leaves out an incomplete one elsewhere (fetched again,
# not an error; checked with 3 MiB records in three of six partitions).
# 256 KiB (smaller fetches, more of them; CPU did not rise, A B B A in
# docs/benchmarks.md) took 19 MB off the peak of a worker without ClickHouse over
# a simulated day (305 -> 286 MiB; at 1 MiB fetched bytes were 17-30 MB of its heap).
LOOP_PARTITION_FETCH_BYTES = 256 * 1024


def bootstrap_servers(conn: Settings | str) -> list[str]:
    """`host:port` entries of a comma-separated bootstrap list."""
    raw = conn if isinstance(conn, str) else conn.bootstrap_servers
    return [s.strip() for s in raw.split(",") if s.strip()]


def security(settings: Settings) -> dict[str, Any]:
    """The security keywords aiokafka and kafka-python share (the same names
    in both); empty for PLAINTEXT. Raises ConfigError when the certificate
    files cannot be loaded."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config: dict[str, Any] = {"security_protocol": protocol, "ssl_context": ssl_context(settings)}
    if protocol == "SASL_SSL":
        assert settings.kafka_sasl_password is not None  # Settings checked it
        config |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": MaskedStr(settings.kafka_sasl_password.get_secret_value()),
        }
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of the cluster: the CA bundle (else the system's trust
    store), the client certificate for mutual TLS, hostname checking unless
    turned off. Built once per configuration and shared by every client."""
    key_password = settings.kafka_ssl_key_password
    return _ssl_context(
        settings.kafka_ssl_cafile,
        settings.kafka_ssl_certfile,
        settings.kafka_ssl_keyfile,
        None if key_password is None else key_password.get_secret_value(),
        settings.kafka_ssl_check_hostname,
    )


class MaskedStr(str):
    """A secret as a library needs it (a `str`) that shows as asterisks in a
    repr, which is how a logged configuration mapping prints its values."""

    def __repr__(self) -> str:
        return "'**********'"


def _connection(conn: Settings | str) -> dict[str, Any]:
    """What every client of the cluster needs, in the keyword names both
    libraries share: bootstrap, and for Settings the security keywords."""
    if isinstance(conn, str):
        return {"bootstrap_servers": bootstrap_servers(conn)}
    return {"bootstrap_servers": bootstrap_servers(conn), **security(conn)}


@functools.lru_cache(maxsize=8)
def _ssl_context(
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    key_password: str | None,
    check_hostname: bool,
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"kafka_ssl_cafile {cafile}: not a PEM bundle of CA certificates ({_ssl_reason(exc)})"
        ) from None
    context.check_hostname = check_hostname
    if certfile is not None:
        try:
            context.load_cert_chain(certfile, keyfile, password=key_password)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"kafka_ssl_certfile {certfile}: cannot load the client certificate and its "
                "key (PEM certificate, its private key in kafka_ssl_keyfile or the same file, "
                f"and kafka_ssl_key_password if the key is encrypted): {_ssl_reason(exc)}"
            ) from None
    return context


def _ssl_reason(exc: ssl.SSLError | OSError) -> str:
    return str(getattr(exc, "reason", None) or exc.strerror or type(exc).__name__)


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


# One record batch a topic partition in `send_batched`: below the broker's default
# max.message.bytes (1 MiB), which caps a record batch on topics without an override.
MAX_BATCH_BYTES = 512 * 1024

# (topic, key, value, partition or None for the key partitioner)
Record = tuple[str, bytes | None, bytes | None, int | None]


@functools.lru_cache(maxsize=16_384)
def _key_hash(key: bytes) -> int:
    from aiokafka.partitioner import murmur2

    return int(murmur2(key)) & 0x7FFFFFFF


def key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default partitioner (murmur2 of the key, as the Java client and
    every other client, so a third-party producer puts a contact on the same
    partition), with each key's hash remembered: aiokafka's murmur2 is pure
    Python, and a contact's id is hashed for every record of it (its events,
    fact versions, routing), ~3 % of the worker's CPU before. Keyless records
    go to a random partition, as before."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_key_hash(key) % len(all_partitions)]


def aio_producer(conn: Settings | str, role: str | None = None, **options: Any) -> AIOKafkaProducer:
    """An aiokafka producer: idempotent, acks from all in-sync replicas, records
    up to MAX_MESSAGE_BYTES, the key partitioner above. Start it with
    ``await p.start()``."""
    from aiokafka import AIOKafkaProducer

    config = {
        "acks": "all",
        "enable_idempotence": True,
        "max_request_size": MAX_MESSAGE_BYTES,
        "max_batch_size": MAX_BATCH_BYTES,
        "partitioner": key_partitioner,
    }
    return AIOKafkaProducer(**_connection(conn), **_client_id(conn, role), **{**config, **options})


async def send_batched(
    producer: AIOKafkaProducer,
    records: Iterable[Record],
    sent: Callable[[], None] | None = None,
) -> list[asyncio.Future[Any]]:
    """Send `records` as one record batch per topic partition (aiokafka's
    `create_batch` / `send_batch`), in order within each partition; the futures
    of the batches, done when each is acknowledged.

    Why: `producer.send` pays in Python per record (a coroutine, a metadata wait,
    the partitioner, a future); a batch pays it once per topic partition. Measured
    (docs/benchmarks.md, history): the plain aiokafka loop went from ~0.35-0.38 to
    0.25 CPU s per 1,000 events; the worker's loops, whose transactions hold a few
    hundred records, showed no measurable change. Inside a transaction
    the batches join it as `send` would (aiokafka adds each partition to the
    transaction when the batch is queued). Keys pick partitions as
    `key_partitioner` does, so a record lands where `send` would have put it.
    `sent` is called once per record after its batch was queued (the fault
    suite's crash points count records on their way).
    """
    builders: dict[tuple[str, int], tuple[Any, int]] = {}
    partitions: dict[str, list[int]] = {}
    futures: list[asyncio.Future[Any]] = []

    async def flush(topic: str, partition: int, builder: Any, count: int) -> None:
        builder.close()
        futures.append(await producer.send_batch(builder, topic, partition=partition))
        if sent is not None:
            for _ in range(count):
                sent()

    for topic, key, value, partition in records:
        if partition is None:
            known = partitions.get(topic)
            if known is None:
                known = partitions[topic] = sorted(await producer.partitions_for(topic))
            partition = key_partitioner(key, known, known)
        slot = builders.get((topic, partition))
        builder, count = slot if slot is not None else (producer.create_batch(), 0)
        if builder.append(timestamp=None, key=key, value=value) is None:
            await flush(topic, partition, builder, count)  # full: queue it, start the next
            builder, count = producer.create_batch(), 0
            builder.append(timestamp=None, key=key, value=value)  # the first always fits
        builders[(topic, partition)] = (builder, count + 1)
    for (topic, partition), (builder, count) in builders.items():
        await flush(topic, partition, builder, count)
    return futures


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
    """The Faust app's broker keywords: the same cluster, limits and security as
    above. Faust takes security as `broker_credentials` and hands it to every
    aiokafka client it makes (faust/transport/drivers/aiokafka.py,
    credentials_to_aiokafka_auth): SSLCredentials for TLS alone,
    SASLCredentials with the ssl_context for SASL_SSL."""
    config: dict[str, Any] = {
        "broker": [f"kafka://{s}" for s in bootstrap_servers(settings)],
        "producer_max_request_size": MAX_MESSAGE_BYTES,
    }
    auth = security(settings)
    if not auth:
        return config
    import faust

    if settings.kafka_security_protocol == "SSL":
        config["broker_credentials"] = faust.SSLCredentials(auth["ssl_context"])
    else:
        config["broker_credentials"] = faust.SASLCredentials(
            username=auth["sasl_plain_username"],
            password=auth["sasl_plain_password"],
            ssl_context=auth["ssl_context"],
            mechanism=auth["sasl_mechanism"],
        )
    return config
