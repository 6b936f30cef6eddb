"""Kafka security settings and what the client factory makes of them.

The settings must fail at start, naming the variable, for half a
configuration or a missing file; secrets come from env or files and never
show in a repr, `--help` or an error. The factory must hand the same TLS
context and SASL keywords to every client library and to Faust.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faust
import pytest
from kafka.errors import KafkaError

from tests.conftest import free_port
from tests.pki import CLIENT_KEY_PASSWORD, Pki, make_pki
from vocflow.streams import cli
from vocflow.streams.core import kafka_clients, kafka_diagnosis
from vocflow.streams.core.settings import ConfigError, Settings, load_settings

PASSWORD = "Unit-secret-4c2f9e"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def sasl_env(pki: Pki, **extra: str) -> dict[str, str]:
    return {
        "VOCFLOW_KAFKA_BOOTSTRAP": "k1:9093,k2:9093",
        "VOCFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "VOCFLOW_KAFKA_SASL_USERNAME": "svc-vocflow",
        "VOCFLOW_KAFKA_SASL_PASSWORD": PASSWORD,
        "VOCFLOW_KAFKA_SSL_CAFILE": str(pki.ca),
        **extra,
    }


def problem(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    return str(caught.value)


# ---- settings


def test_defaults_are_plaintext_with_hostname_checks_on() -> None:
    settings = load_settings(environ={})
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_ssl_check_hostname is True
    assert kafka_clients.security(settings) == {}


def test_password_from_a_file_keeps_inner_spaces_and_drops_the_newline(
    pki: Pki, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(" two words \n")
    env = sasl_env(pki, VOCFLOW_KAFKA_SASL_PASSWORD_FILE=str(secret))
    del env["VOCFLOW_KAFKA_SASL_PASSWORD"]
    settings = load_settings(environ=env)
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == " two words "


def test_password_file_in_the_config_file(pki: Pki, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    config = tmp_path / "vocflow.yaml"
    config.write_text(f"kafka_sasl_password_file: {secret}\n")
    env = sasl_env(pki)
    del env["VOCFLOW_KAFKA_SASL_PASSWORD"]
    settings = load_settings(config, environ=env)
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == PASSWORD


def test_a_missing_password_file_is_named_with_its_variable(pki: Pki, tmp_path: Path) -> None:
    env = sasl_env(pki, VOCFLOW_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "nope"))
    del env["VOCFLOW_KAFKA_SASL_PASSWORD"]
    assert (
        "environment variable VOCFLOW_KAFKA_SASL_PASSWORD_FILE: kafka_sasl_password_file: "
        f"no such file: {tmp_path / 'nope'}"
    ) in problem(env)


def test_secret_and_its_file_together_are_refused(pki: Pki, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    message = problem(sasl_env(pki, VOCFLOW_KAFKA_SASL_PASSWORD_FILE=str(secret)))
    assert "kafka_sasl_password is set too: give the secret or its file, not both" in message
    assert PASSWORD not in message


def test_an_empty_password_file_is_refused(pki: Pki, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("\n")
    env = sasl_env(pki, VOCFLOW_KAFKA_SASL_PASSWORD_FILE=str(secret))
    del env["VOCFLOW_KAFKA_SASL_PASSWORD"]
    assert f"kafka_sasl_password_file: {secret} is empty" in problem(env)


@pytest.mark.parametrize(
    "variable",
    ["VOCFLOW_KAFKA_SSL_CAFILE", "VOCFLOW_KAFKA_SSL_CERTFILE", "VOCFLOW_KAFKA_SSL_KEYFILE"],
)
def test_a_certificate_path_that_does_not_exist_fails_at_start(
    pki: Pki, tmp_path: Path, variable: str
) -> None:
    missing = tmp_path / "missing.pem"
    env = sasl_env(pki, VOCFLOW_KAFKA_SSL_CERTFILE=str(pki.client_cert))
    env[variable] = str(missing)
    setting = variable.removeprefix("VOCFLOW_").lower()
    assert f"environment variable {variable}: {setting}: no such file: {missing}" in problem(env)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"VOCFLOW_KAFKA_SASL_USERNAME": ""},
            "kafka_sasl_username: String should have at least 1 character",
        ),
        (
            {"VOCFLOW_KAFKA_SECURITY_PROTOCOL": "SSL"},
            "kafka_sasl_username and kafka_sasl_password set, but kafka_security_protocol "
            "is SSL: set it to SASL_SSL",
        ),
        (
            {"VOCFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            "kafka_security_protocol: Input should be 'PLAINTEXT', 'SSL' or 'SASL_SSL'",
        ),
        (
            {"VOCFLOW_KAFKA_SASL_MECHANISM": "GSSAPI"},
            "kafka_sasl_mechanism: Input should be 'SCRAM-SHA-512', 'SCRAM-SHA-256' or 'PLAIN'",
        ),
        (
            {"VOCFLOW_KAFKA_BOOTSTRAP": ""},
            "kafka_security_protocol SASL_SSL needs kafka_bootstrap: the local broker "
            "(`vocflow broker up`) is plaintext",
        ),
    ],
)
def test_half_a_configuration_is_refused(pki: Pki, change: dict[str, str], message: str) -> None:
    text = problem(sasl_env(pki) | change)
    assert message in text
    assert PASSWORD not in text


def test_sasl_needs_both_user_and_password(pki: Pki) -> None:
    env = sasl_env(pki)
    del env["VOCFLOW_KAFKA_SASL_PASSWORD"]
    assert (
        "kafka_security_protocol SASL_SSL needs kafka_sasl_username and kafka_sasl_password "
        "(or VOCFLOW_KAFKA_SASL_PASSWORD_FILE)"
    ) in problem(env)


def test_tls_files_with_plaintext_are_refused(pki: Pki) -> None:
    assert (
        "kafka_ssl_cafile, kafka_ssl_check_hostname set, but kafka_security_protocol is "
        "PLAINTEXT: set it to SSL or SASL_SSL"
    ) in problem(
        {
            "VOCFLOW_KAFKA_BOOTSTRAP": "k:9093",
            "VOCFLOW_KAFKA_SSL_CAFILE": str(pki.ca),
            "VOCFLOW_KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    )


def test_a_key_without_its_certificate_is_refused(pki: Pki) -> None:
    env = sasl_env(pki, VOCFLOW_KAFKA_SSL_KEYFILE=str(pki.client_key))
    assert "kafka_ssl_keyfile and its password need kafka_ssl_certfile" in problem(env)


def test_secrets_are_not_in_repr_or_str(pki: Pki) -> None:
    env = sasl_env(pki, VOCFLOW_PSEUDONYM_KEY="Pseudonym-key-0a1b2c")
    settings = load_settings(environ=env)
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert PASSWORD not in text
        assert "Pseudonym-key-0a1b2c" not in text
    assert "kafka_sasl_password=SecretStr('**********')" in repr(settings)


@pytest.mark.parametrize("argv", [["--help"], ["worker", "--help"], ["ingest", "--help"]])
def test_help_shows_no_secret(
    argv: list[str], pki: Pki, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in sasl_env(pki).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        cli.main(argv)
    out = capsys.readouterr()
    assert "usage: vocflow" in out.out
    assert PASSWORD not in out.out + out.err


# ---- the client factory


@pytest.mark.usefixtures("recorded")
def test_every_client_gets_the_same_tls_context_and_sasl(pki: Pki) -> None:
    settings = load_settings(environ=sasl_env(pki, VOCFLOW_KAFKA_SASL_MECHANISM="SCRAM-SHA-256"))
    built = [
        kafka_clients.producer(settings),
        kafka_clients.consumer(settings, "t"),
        kafka_clients.admin(settings),
        kafka_clients.aio_producer(settings),
        kafka_clients.aio_consumer(settings, "t"),
    ]
    context = kafka_clients.ssl_context(settings)
    for client in built:
        config = client.config  # type: ignore[attr-defined]
        assert config["bootstrap_servers"] == ["k1:9093", "k2:9093"]
        assert config["security_protocol"] == "SASL_SSL"
        assert config["ssl_context"] is context
        assert config["sasl_mechanism"] == "SCRAM-SHA-256"
        assert config["sasl_plain_username"] == "svc-vocflow"
        assert config["sasl_plain_password"] == PASSWORD
        assert PASSWORD not in repr(config)
    assert context.check_hostname is True


@pytest.mark.usefixtures("recorded")
def test_bare_bootstrap_strings_stay_plaintext() -> None:
    assert kafka_clients.admin("127.0.0.1:9092").config == {"bootstrap_servers": ["127.0.0.1:9092"]}


def test_mutual_tls_loads_the_encrypted_client_key(pki: Pki, tmp_path: Path) -> None:
    key_password = tmp_path / "key.pw"
    key_password.write_text(CLIENT_KEY_PASSWORD)
    settings = load_settings(
        environ={
            "VOCFLOW_KAFKA_BOOTSTRAP": "k:9093",
            "VOCFLOW_KAFKA_SECURITY_PROTOCOL": "SSL",
            "VOCFLOW_KAFKA_SSL_CAFILE": str(pki.ca),
            "VOCFLOW_KAFKA_SSL_CERTFILE": str(pki.client_cert),
            "VOCFLOW_KAFKA_SSL_KEYFILE": str(pki.client_key),
            "VOCFLOW_KAFKA_SSL_KEY_PASSWORD_FILE": str(key_password),
            "VOCFLOW_KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    )
    auth = kafka_clients.security(settings)
    assert set(auth) == {"security_protocol", "ssl_context"}
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].check_hostname is False
    broker = kafka_clients.faust_broker(settings)["broker_credentials"]
    assert isinstance(broker, faust.SSLCredentials)
    assert broker.context is auth["ssl_context"]


def test_a_wrong_key_password_is_a_config_error_without_the_password(pki: Pki) -> None:
    settings = Settings(
        kafka_bootstrap="k:9093",
        kafka_security_protocol="SSL",
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.client_key,
        kafka_ssl_key_password="Not-the-key-password",  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError) as caught:
        kafka_clients.ssl_context(settings)
    message = str(caught.value)
    assert message.startswith(
        f"kafka_ssl_certfile {pki.client_cert}: cannot load the client certificate and its key"
    )
    assert "Not-the-key-password" not in message


def test_a_ca_file_that_is_not_pem_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    settings = Settings(
        kafka_bootstrap="k:9093", kafka_security_protocol="SSL", kafka_ssl_cafile=bogus
    )
    with pytest.raises(ConfigError, match=r"^kafka_ssl_cafile .*: not a PEM bundle of CA"):
        kafka_clients.ssl_context(settings)


def test_faust_gets_sasl_credentials_over_the_same_context(pki: Pki) -> None:
    settings = load_settings(environ=sasl_env(pki))
    credentials = kafka_clients.faust_broker(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.username == "svc-vocflow"
    assert credentials.password == PASSWORD
    assert credentials.ssl_context is kafka_clients.ssl_context(settings)
    assert PASSWORD not in repr(credentials)


def test_kafka_python_debug_log_of_its_configuration_hides_the_password(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """kafka-python's admin client logs every keyword at DEBUG before it connects."""
    settings = load_settings(environ=sasl_env(pki, VOCFLOW_KAFKA_BOOTSTRAP="127.0.0.1:1"))
    caplog.set_level(logging.DEBUG, logger="kafka")
    with pytest.raises(KafkaError):  # nothing listens there
        kafka_clients.admin(settings, bootstrap_timeout_ms=200, request_timeout_ms=200)
    assert "Starting KafkaAdminClient with configuration" in caplog.text
    assert "'sasl_plain_password': '**********'" in caplog.text
    assert PASSWORD not in caplog.text


def test_no_diagnosis_when_nothing_listens() -> None:
    """Then the caller's own message (start the local broker, check the bootstrap) stands."""
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    assert kafka_diagnosis.diagnose(settings, timeout_s=2) is None
