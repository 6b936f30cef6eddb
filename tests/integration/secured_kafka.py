"""A local KRaft broker with secured listeners, for the Kafka security tests.

The project's own LocalBroker (plaintext, as `vocflow broker up` runs it) plus
`tests/fixtures/kafka/secured-listeners.properties`: a SASL_SSL listener
(SCRAM-SHA-512, SCRAM-SHA-256, PLAIN) and an SSL listener that requires a
client certificate, with certificates from `tests/pki.py`. SCRAM users are
created with Kafka's own kafka-configs (`kafka.admin.ConfigCommand`, on the
broker's classpath). `settings()` and `env()` give a vocflow process the
configuration an operator would write for each way in.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Literal

from kafka.errors import KafkaError

from tests.conftest import ROOT, free_port
from tests.pki import CLIENT_KEY_PASSWORD, STORE_PASSWORD, Pki, make_pki
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import Settings, load_settings
from vocflow.streams.tools import broker as local

TEMPLATE = ROOT / "tests" / "fixtures" / "kafka" / "secured-listeners.properties"
SCRAM_USER = "vocflow-scram"
SCRAM_PASSWORD = "Scram-pw-7f3a9c1e"
PLAIN_USER = "vocflow-plain"
PLAIN_PASSWORD = "Plain-pw-2b8d4e60"

Way = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "mTLS"]


@dataclass(frozen=True)
class SecuredKafka:
    broker: local.LocalBroker
    pki: Pki
    sasl_ssl_port: int
    ssl_port: int

    @property
    def plaintext_bootstrap(self) -> str:
        """The broker's own plaintext listener (never what the tests under test use)."""
        return self.broker.bootstrap

    def env(self, way: Way, *, password: str | None = None, **extra: str) -> dict[str, str]:
        """``VOCFLOW_*`` variables for `way`; the password comes from a file
        (VOCFLOW_KAFKA_SASL_PASSWORD_FILE), as a mounted secret would."""
        if way == "mTLS":
            key_password = self.pki.path("client-key.password")
            key_password.write_text(CLIENT_KEY_PASSWORD + "\n")
            values = {
                "VOCFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.ssl_port}",
                "VOCFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
                "VOCFLOW_KAFKA_SSL_CAFILE": str(self.pki.ca),
                "VOCFLOW_KAFKA_SSL_CERTFILE": str(self.pki.client_cert),
                "VOCFLOW_KAFKA_SSL_KEYFILE": str(self.pki.client_key),
                "VOCFLOW_KAFKA_SSL_KEY_PASSWORD_FILE": str(key_password),
            }
        else:
            user, default = (
                (PLAIN_USER, PLAIN_PASSWORD) if way == "PLAIN" else (SCRAM_USER, SCRAM_PASSWORD)
            )
            secret = self.pki.path(f"{way}.password")
            secret.write_text((password or default) + "\n")
            values = {
                "VOCFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.sasl_ssl_port}",
                "VOCFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "VOCFLOW_KAFKA_SASL_MECHANISM": way,
                "VOCFLOW_KAFKA_SASL_USERNAME": user,
                "VOCFLOW_KAFKA_SASL_PASSWORD_FILE": str(secret),
                "VOCFLOW_KAFKA_SSL_CAFILE": str(self.pki.ca),
            }
        return values | extra

    def settings(self, way: Way, **overrides: Any) -> Settings:
        """The Settings a process configured by `env(way)` would load."""
        return load_settings(environ=self.env(way), **overrides)


@contextmanager
def secured_kafka(home: Path) -> Iterator[SecuredKafka]:
    """Start the broker (BrokerError with the reason if it cannot: the test
    fails, never skips), create the SCRAM user, stop the broker at exit."""
    pki = make_pki(home / "pki")
    port = free_port(pairs=True)
    sasl_ssl_port, ssl_port = free_port(), free_port()
    extra = Template(TEMPLATE.read_text()).substitute(
        port=port,
        controller_port=port + 1,
        sasl_ssl_port=sasl_ssl_port,
        ssl_port=ssl_port,
        keystore=pki.keystore,
        truststore=pki.truststore,
        store_password=STORE_PASSWORD,
        plain_user=PLAIN_USER,
        plain_password=PLAIN_PASSWORD,
    )
    broker = local.LocalBroker(home=home / "kafka", port=port, extra_config=extra)
    broker.up()
    try:
        kafka = SecuredKafka(broker, pki, sasl_ssl_port, ssl_port)
        _add_scram_user(kafka)
        yield kafka
    finally:
        broker.down()


def _add_scram_user(kafka: SecuredKafka) -> None:
    """kafka-configs --alter --add-config SCRAM-SHA-<n>=[password=...] (one
    mechanism per call: Kafka refuses two changes of one user in one request),
    then wait until the SASL_SSL listener accepts the user (credentials reach
    the listener through the cluster metadata, a moment after the command)."""
    java = shutil.which("java")
    assert java is not None, "java is not on PATH"
    deadline = time.monotonic() + 120
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        result = subprocess.run(
            [
                java,
                "-Xmx256m",
                "-cp",
                str(local.fetch() / "*"),
                "kafka.admin.ConfigCommand",
                "--bootstrap-server",
                kafka.plaintext_bootstrap,
                "--alter",
                "--add-config",
                f"{mechanism}=[password={SCRAM_PASSWORD}]",
                "--entity-type",
                "users",
                "--entity-name",
                SCRAM_USER,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"kafka-configs failed: {result.stdout}{result.stderr}"
        settings = kafka.settings(mechanism)  # type: ignore[arg-type]
        while True:
            try:
                kafka_clients.admin(settings, request_timeout_ms=5000).close()
                break
            except KafkaError:
                assert time.monotonic() < deadline, f"the {mechanism} user never worked"
                time.sleep(0.5)
