"""A throw-away certificate authority for the Kafka security tests, made with
the real `openssl` (and `keytool` for the broker's truststore), so the tests
exercise the same PEM and PKCS12 files an operator gets from their own CA.

Files (all in one directory): ``ca.pem`` (the CA), ``server.pem`` +
``server.key`` (for 127.0.0.1 and localhost, by subjectAltName),
``client.pem`` + ``client.key`` (a client certificate for mutual TLS; the key
is encrypted with ``CLIENT_KEY_PASSWORD``), ``server.p12`` (the broker's
keystore) and ``truststore.p12`` (the CA, as the broker's truststore). A
missing `openssl` or `keytool` fails the test with the tool's name.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

STORE_PASSWORD = "test-store-pass"
CLIENT_KEY_PASSWORD = "client-key-pass"
_DAYS = "3"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


@dataclass(frozen=True)
class Pki:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def ca(self) -> Path:
        return self.path("ca.pem")

    @property
    def client_cert(self) -> Path:
        return self.path("client.pem")

    @property
    def client_key(self) -> Path:
        return self.path("client.key")

    @property
    def keystore(self) -> Path:
        return self.path("server.p12")

    @property
    def truststore(self) -> Path:
        return self.path("truststore.p12")


def make_pki(directory: Path) -> Pki:
    """A CA, a server and a client certificate signed by it, and the broker's stores."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    openssl = _tool("openssl")
    _run(
        openssl, "req", "-x509", *_EC, "-nodes", "-days", _DAYS,
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=vocflow test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _issue(pki, "server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
           "extendedKeyUsage=serverAuth\n")  # fmt: skip
    _issue(pki, "client", "/CN=vocflow-client", "extendedKeyUsage=clientAuth\n")
    # The client key encrypted, as kafka_ssl_key_password expects it.
    _run(
        openssl, "pkey", "-in", "client.key.plain", "-out", "client.key", "-aes256",
        "-passout", f"pass:{CLIENT_KEY_PASSWORD}",
        cwd=directory,
    )  # fmt: skip
    _run(
        openssl, "pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key.plain",
        "-certfile", "ca.pem", "-name", "broker", "-out", "server.p12",
        "-passout", f"pass:{STORE_PASSWORD}",
        cwd=directory,
    )  # fmt: skip
    _run(
        _tool("keytool"), "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem",
        "-keystore", "truststore.p12", "-storetype", "PKCS12", "-storepass", STORE_PASSWORD,
        cwd=directory,
    )  # fmt: skip
    return pki


def _issue(pki: Pki, name: str, subject: str, extensions: str) -> None:
    openssl = _tool("openssl")
    (pki.directory / f"{name}.ext").write_text(extensions)
    _run(
        openssl, "req", *_EC, "-nodes", "-keyout", f"{name}.key.plain",
        "-out", f"{name}.csr", "-subj", subject,
        cwd=pki.directory,
    )  # fmt: skip
    _run(
        openssl, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", _DAYS, "-extfile", f"{name}.ext", "-out", f"{name}.pem",
        cwd=pki.directory,
    )  # fmt: skip


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"'{name}' is not on PATH: the Kafka security tests need it")
    return path


def _run(*cmd: str, cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {result.stderr.strip()[-800:]}")
