"""Every way into a secured cluster, through the one client factory, on a real
broker (tests/integration/secured_kafka.py): SCRAM-SHA-512, SCRAM-SHA-256 and
PLAIN over TLS, and mutual TLS. Each produces and consumes a record with
kafka-python and with aiokafka, and creates its topic with the admin client.
Then the mistakes an operator makes, as the CLI reports them: one line naming
the cause and the setting, exit code 2, no traceback, no secret.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka.admin import NewTopic

from tests.integration.conftest import read_topic, vocflow
from tests.integration.secured_kafka import (
    PLAIN_PASSWORD,
    SCRAM_PASSWORD,
    SecuredKafka,
    Way,
)
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import Settings
from vocflow.streams.tools import procs

pytestmark = pytest.mark.integration

WAYS: tuple[Way, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "mTLS")


async def aio_round_trip(settings: Settings, topic: str, value: bytes) -> list[bytes]:
    """Send `value` with the aiokafka producer; every value the aiokafka consumer reads."""
    producer = kafka_clients.aio_producer(settings, "security-test")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = kafka_clients.aio_consumer(
        settings, topic, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        return [r.value for records in batches.values() for r in records]
    finally:
        await consumer.stop()


@pytest.mark.parametrize("way", WAYS)
def test_each_way_in_produces_and_consumes_with_both_libraries(
    secured: SecuredKafka, way: Way
) -> None:
    settings = secured.settings(way)
    topic = f"sec{uuid.uuid4().hex[:8]}.{way.lower()}"
    admin = kafka_clients.admin(settings, "security-test")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        assert topic in admin.list_topics()
    finally:
        admin.close()

    producer = kafka_clients.producer(settings, "security-test")
    producer.send(topic, key=b"k", value=f"kafka-python over {way}".encode()).get(timeout=30)
    producer.close()
    aio_values = asyncio.run(aio_round_trip(settings, topic, f"aiokafka over {way}".encode()))

    want = {f"kafka-python over {way}".encode(), f"aiokafka over {way}".encode()}
    assert set(aio_values) == want
    assert {r.value for r in read_topic(settings, topic)} == want


def cli_error(env: dict[str, str]) -> str:
    """`vocflow topics --create` with `env`: its one error line (and that it is only that)."""
    result = vocflow("topics", "--create", env=procs.env_without_vocflow(**env))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for secret in (SCRAM_PASSWORD, PLAIN_PASSWORD, "Wrong-pw-91e0"):
        assert secret not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_wrong_password_is_named_as_such(secured: SecuredKafka) -> None:
    env = secured.env("SCRAM-SHA-512", password="Wrong-pw-91e0")
    assert cli_error(env) == (
        f"vocflow: error: cannot connect to Kafka: 127.0.0.1:{secured.sasl_ssl_port} refused "
        "SASL user 'vocflow-scram' (SCRAM-SHA-512): wrong password, or no such user for this "
        "mechanism; check VOCFLOW_KAFKA_SASL_USERNAME and VOCFLOW_KAFKA_SASL_PASSWORD(_FILE)"
    )


def test_an_untrusted_certificate_asks_for_the_ca_bundle(secured: SecuredKafka) -> None:
    env = secured.env("SCRAM-SHA-512")
    del env["VOCFLOW_KAFKA_SSL_CAFILE"]  # the system trust store does not know the test CA
    assert cli_error(env) == (
        f"vocflow: error: cannot connect to Kafka: the TLS certificate of "
        f"127.0.0.1:{secured.sasl_ssl_port} is not trusted (self-signed certificate in "
        "certificate chain): set VOCFLOW_KAFKA_SSL_CAFILE to the CA bundle that signed it"
    )


def test_a_plaintext_client_on_a_tls_port_is_told_to_use_tls(secured: SecuredKafka) -> None:
    env = {"VOCFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{secured.sasl_ssl_port}"}
    assert cli_error(env) == (
        f"vocflow: error: cannot connect to Kafka: 127.0.0.1:{secured.sasl_ssl_port} is a TLS "
        "listener, but kafka_security_protocol is PLAINTEXT: set "
        "VOCFLOW_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL"
    )


def test_a_missing_client_certificate_on_a_mutual_tls_port(secured: SecuredKafka) -> None:
    env = secured.env("mTLS")
    for name in ("CERTFILE", "KEYFILE", "KEY_PASSWORD_FILE"):
        del env[f"VOCFLOW_KAFKA_SSL_{name}"]
    assert cli_error(env) == (
        f"vocflow: error: cannot connect to Kafka: 127.0.0.1:{secured.ssl_port} requires a "
        "client certificate (mutual TLS): set VOCFLOW_KAFKA_SSL_CERTFILE and "
        "VOCFLOW_KAFKA_SSL_KEYFILE"
    )
