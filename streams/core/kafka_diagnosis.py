"""Why a Kafka connection failed, in one sentence an operator can act on.

Both client libraries hide the cause of a failed bootstrap: kafka-python
raises "Unable to bootstrap", aiokafka "Unable to bootstrap from [...]", for a
wrong password, an untrusted certificate and a wrong port alike (aiokafka logs
the cause, kafka-python does not). So when start-up cannot reach the cluster,
`diagnose` connects once more to the first bootstrap server the way aiokafka
does (TCP, TLS with the same `ssl.SSLContext`, SASL, one metadata request)
and turns the exception it gets into the cause and the setting to change.

It never names a secret: messages hold hosts, ports, the user name, the
mechanism and file paths only. It never raises; None means the probe found
nothing specific (the caller keeps its general message).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
from typing import TYPE_CHECKING, Any

from vocflow.streams.core import kafka_clients

if TYPE_CHECKING:
    from vocflow.streams.core.settings import Settings

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH = {62, 64}


def diagnose(settings: Settings, timeout_s: float = 10.0) -> str | None:
    """The cause of a failed connection to the configured cluster, or None.

    Runs its probe on a thread of its own, so it works from synchronous code
    and from inside a running event loop alike."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(asyncio.run, _diagnose(settings, timeout_s)).result()
        except Exception:  # a diagnosis must never hide the original failure
            return None


async def _diagnose(settings: Settings, timeout_s: float) -> str | None:
    """Probe the first bootstrap server that accepts a TCP connection. When
    none does, the caller's "no Kafka broker answered" (with its hint to
    start the local broker or check the bootstrap list) already says it all."""
    for server in kafka_clients.bootstrap_servers(settings):
        host, _, port_text = server.rpartition(":")
        port = int(port_text)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError):
            continue
        writer.close()
        if settings.kafka_security_protocol == "PLAINTEXT":
            return await _plaintext(host, port, timeout_s)
        return await _secured(settings, host, port, timeout_s)
    return None


async def _plaintext(host: str, port: int, timeout_s: float) -> str | None:
    """A plaintext client on a TLS listener sees the connection closed; the
    cause shows only by trying TLS on that port."""
    probe = ssl.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=probe), timeout_s
        )
    except (OSError, TimeoutError):
        return None  # not TLS: the failure is something else
    writer.close()
    return (
        f"{host}:{port} is a TLS listener, but kafka_security_protocol is PLAINTEXT: "
        "set VOCFLOW_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL"
    )


async def _secured(settings: Settings, host: str, port: int, timeout_s: float) -> str | None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import (
        KafkaError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )
    from aiokafka.protocol.metadata import MetadataRequest

    where = f"{host}:{port}"
    auth: dict[str, Any] = kafka_clients.security(settings)
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **auth),
            timeout_s,
        )
        try:
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
        finally:
            conn.close()
    except ssl.SSLCertVerificationError as exc:
        return _untrusted(settings, where, host, exc)
    except SaslAuthenticationFailed:
        return (
            f"{where} refused SASL user '{settings.kafka_sasl_username}' "
            f"({settings.kafka_sasl_mechanism}): wrong password, or no such user for this "
            "mechanism; check VOCFLOW_KAFKA_SASL_USERNAME and VOCFLOW_KAFKA_SASL_PASSWORD(_FILE)"
        )
    except UnsupportedSaslMechanismError:
        return (
            f"{where} does not offer SASL mechanism {settings.kafka_sasl_mechanism}: "
            "set VOCFLOW_KAFKA_SASL_MECHANISM to one the cluster enables"
        )
    except (ssl.SSLError, OSError, KafkaError, TimeoutError) as exc:
        return _handshake_failure(settings, where, exc)
    return None


def _untrusted(settings: Settings, where: str, host: str, exc: ssl.SSLCertVerificationError) -> str:
    reason = exc.verify_message or "certificate verify failed"
    if exc.verify_code in _NAME_MISMATCH:
        return (
            f"the TLS certificate of {where} does not name {host} ({reason}): connect by a "
            "name the certificate holds, or set VOCFLOW_KAFKA_SSL_CHECK_HOSTNAME=false"
        )
    if settings.kafka_ssl_cafile is None:
        return (
            f"the TLS certificate of {where} is not trusted ({reason}): set "
            "VOCFLOW_KAFKA_SSL_CAFILE to the CA bundle that signed it"
        )
    return (
        f"the TLS certificate of {where} is not trusted ({reason}): "
        f"{settings.kafka_ssl_cafile} (VOCFLOW_KAFKA_SSL_CAFILE) holds no CA that signed it"
    )


def _handshake_failure(settings: Settings, where: str, exc: BaseException) -> str | None:
    """Failures after the broker's certificate was accepted: its TLS alerts
    (it wants a client certificate, or refuses ours; aiokafka keeps the
    alert as the cause of its "connection closed"), a port that does not
    speak TLS, or a listener that expects another protocol."""
    text = f"{exc} {exc.__cause__ or ''}".lower()
    alert = any(
        word in text
        for word in ("bad certificate", "certificate required", "handshake failure", "unknown ca")
    )
    if alert and settings.kafka_ssl_certfile is None:
        return (
            f"{where} requires a client certificate (mutual TLS): set "
            "VOCFLOW_KAFKA_SSL_CERTFILE and VOCFLOW_KAFKA_SSL_KEYFILE"
        )
    if alert or "certificate unknown" in text:
        return (
            f"{where} refused the client certificate {settings.kafka_ssl_certfile}: it is not "
            "signed by a CA the broker trusts"
        )
    if "wrong version number" in text or isinstance(exc, ssl.SSLEOFError | ConnectionResetError):
        return (
            f"{where} does not speak TLS (a PLAINTEXT listener?): check "
            "VOCFLOW_KAFKA_BOOTSTRAP and VOCFLOW_KAFKA_SECURITY_PROTOCOL"
        )
    if "closed" in text:
        return (
            f"{where} closed the connection after the TLS handshake: check that "
            f"VOCFLOW_KAFKA_SECURITY_PROTOCOL ({settings.kafka_security_protocol}) is what this "
            "listener expects (SASL_SSL: TLS and a SASL user; SSL: TLS alone)"
        )
    return None
