"""ClickHouse server mode: settings, and what reaches clickhouse-connect.

No ClickHouse server new enough for the DDL installs here (Debian ships
18.16), so the server path is tested where vocflow ends: the keywords of
`clickhouse_connect.get_client`. These must carry the scheme's TLS choice,
the user, the password (from env or a file), the CA bundle and the
certificate checks; the password must never show in a repr, a log or an
error; half a configuration must fail at settings validation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from vocflow.sinks.clickhouse import store as store_module
from vocflow.sinks.clickhouse.store import ClickHouseError, ClickHouseStore, client_arguments
from vocflow.streams import cli
from vocflow.streams.core.settings import ConfigError, Settings, load_settings

PASSWORD = "Ch-secret-7d1e0b"


class FakeClient:
    def close(self) -> None:
        pass


@pytest.fixture
def get_client(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replaces clickhouse_connect.get_client; the list holds each call's keywords."""
    calls: list[dict[str, Any]] = []

    def fake(**kwargs: Any) -> FakeClient:
        calls.append(kwargs)
        return FakeClient()

    monkeypatch.setattr(store_module.clickhouse_connect, "get_client", fake)
    return calls


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return path


def opened(environ: dict[str, str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    ClickHouseStore.from_settings(load_settings(environ=environ))
    assert len(calls) == 1
    return calls[0]


def problem(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    return str(caught.value)


# ---- the clickhouse-connect boundary


def test_plain_http_with_user_and_password(get_client: list[dict[str, Any]]) -> None:
    env = {
        "VOCFLOW_CLICKHOUSE_URL": "http://ch.internal:8123",
        "VOCFLOW_CLICKHOUSE_USER": "vocflow",
        "VOCFLOW_CLICKHOUSE_PASSWORD": PASSWORD,
    }
    assert opened(env, get_client) == {
        "interface": "http",
        "host": "ch.internal",
        "port": 8123,
        "username": "vocflow",
        "password": PASSWORD,
    }


def test_https_with_a_ca_file_and_certificate_checks(
    get_client: list[dict[str, Any]], ca_file: Path
) -> None:
    env = {
        "VOCFLOW_CLICKHOUSE_URL": "https://abc.eu-west-1.aws.clickhouse.cloud",
        "VOCFLOW_CLICKHOUSE_USER": "vocflow",
        "VOCFLOW_CLICKHOUSE_PASSWORD": PASSWORD,
        "VOCFLOW_CLICKHOUSE_CA_FILE": str(ca_file),
    }
    assert opened(env, get_client) == {
        "interface": "https",
        "host": "abc.eu-west-1.aws.clickhouse.cloud",
        "port": 8443,
        "username": "vocflow",
        "password": PASSWORD,
        "verify": True,
        "ca_cert": str(ca_file),
    }


def test_https_on_its_own_port_is_still_tls() -> None:
    """clickhouse-connect alone reads `https://h:8123` as plain HTTP (it ignores a
    DSN's scheme); spelled out, the scheme decides."""
    arguments = client_arguments("https://h:8123")
    assert arguments["interface"] == "https"
    assert arguments["port"] == 8123
    assert arguments["verify"] is True
    assert arguments["ca_cert"] is None


def test_password_from_a_file(get_client: list[dict[str, Any]], tmp_path: Path) -> None:
    secret = tmp_path / "ch.password"
    secret.write_text(PASSWORD + "\n")
    env = {
        "VOCFLOW_CLICKHOUSE_URL": "https://ch.internal:8443",
        "VOCFLOW_CLICKHOUSE_USER": "vocflow",
        "VOCFLOW_CLICKHOUSE_PASSWORD_FILE": str(secret),
    }
    assert opened(env, get_client) == {
        "interface": "https",
        "host": "ch.internal",
        "port": 8443,
        "username": "vocflow",
        "password": PASSWORD,
        "verify": True,
        "ca_cert": None,
    }


def test_verification_off_is_passed_as_such(get_client: list[dict[str, Any]]) -> None:
    env = {"VOCFLOW_CLICKHOUSE_URL": "https://ch:8443", "VOCFLOW_CLICKHOUSE_VERIFY": "false"}
    assert opened(env, get_client)["verify"] is False


def test_embedded_keeps_its_dsn(get_client: list[dict[str, Any]], tmp_path: Path) -> None:
    env = {"VOCFLOW_DATA_DIR": str(tmp_path)}
    assert opened(env, get_client) == {"dsn": f"chdb://{tmp_path.resolve() / 'clickhouse'}"}


# ---- settings validation


def test_a_missing_ca_file_fails_at_settings_validation(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    text = problem(
        {"VOCFLOW_CLICKHOUSE_URL": "https://ch:8443", "VOCFLOW_CLICKHOUSE_CA_FILE": str(missing)}
    )
    assert "environment variable VOCFLOW_CLICKHOUSE_CA_FILE" in text
    assert f"no such file: {missing}" in text


def test_a_missing_password_file_is_named(tmp_path: Path) -> None:
    text = problem(
        {
            "VOCFLOW_CLICKHOUSE_URL": "https://ch:8443",
            "VOCFLOW_CLICKHOUSE_PASSWORD_FILE": str(tmp_path / "none"),
        }
    )
    assert "VOCFLOW_CLICKHOUSE_PASSWORD_FILE" in text and "no such file" in text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"VOCFLOW_CLICKHOUSE_PASSWORD": PASSWORD},
            "clickhouse_password set, but ClickHouse is the embedded chdb",
        ),
        (
            {"VOCFLOW_CLICKHOUSE_URL": "chdb:///tmp/x", "VOCFLOW_CLICKHOUSE_USER": "u"},
            "clickhouse_user set, but ClickHouse is the embedded chdb",
        ),
        (
            {"VOCFLOW_CLICKHOUSE_URL": "http://ch:8123", "VOCFLOW_CLICKHOUSE_VERIFY": "false"},
            "clickhouse_verify set, but clickhouse_url is plain http://: use https://",
        ),
        (
            {"VOCFLOW_CLICKHOUSE_URL": f"https://vocflow:{PASSWORD}@ch:8443"},
            "holds credentials: set clickhouse_user and clickhouse_password",
        ),
        (
            {"VOCFLOW_CLICKHOUSE_URL": "https://ch:8443/vocflow"},
            "must be http(s)://host[:port]: the database is clickhouse_database",
        ),
        ({"VOCFLOW_CLICKHOUSE_URL": "https://ch:port"}, "the port is not a number"),
    ],
)
def test_settings_a_url_would_ignore_are_refused(env: dict[str, str], message: str) -> None:
    text = problem(env)
    assert message in text
    assert PASSWORD not in text


def test_a_ca_file_with_plain_http_is_refused(ca_file: Path) -> None:
    text = problem(
        {"VOCFLOW_CLICKHOUSE_URL": "http://ch:8123", "VOCFLOW_CLICKHOUSE_CA_FILE": str(ca_file)}
    )
    assert "clickhouse_ca_file set, but clickhouse_url is plain http://" in text


# ---- the password stays secret


def test_password_not_in_repr_of_settings_auth_or_store(get_client: list[dict[str, Any]]) -> None:
    settings = load_settings(
        environ={
            "VOCFLOW_CLICKHOUSE_URL": "https://ch:8443",
            "VOCFLOW_CLICKHOUSE_USER": "vocflow",
            "VOCFLOW_CLICKHOUSE_PASSWORD": PASSWORD,
        }
    )
    store = ClickHouseStore.from_settings(settings)
    for text in (repr(settings), str(settings.model_dump()), repr(store.auth), repr(store)):
        assert PASSWORD not in text
    assert "clickhouse_password=SecretStr('**********')" in repr(settings)


def test_a_connection_error_that_echoes_the_password_is_redacted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise OSError(f"proxy said: bad Authorization for vocflow:{kwargs['password']}")

    monkeypatch.setattr(store_module.clickhouse_connect, "get_client", refuse)
    settings = Settings(
        clickhouse_url="https://ch:8443",
        clickhouse_user="vocflow",
        clickhouse_password=PASSWORD,  # type: ignore[arg-type]
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ClickHouseError) as caught:
        ClickHouseStore.from_settings(settings)
    assert "cannot connect to ClickHouse at https://ch:8443" in str(caught.value)
    assert "vocflow:**********" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert caught.value.__suppress_context__  # a traceback does not show the original
    assert PASSWORD not in caplog.text


def test_a_url_with_credentials_is_refused_by_the_store_without_echoing_it() -> None:
    with pytest.raises(ClickHouseError) as caught:
        ClickHouseStore(f"http://u:{PASSWORD}@ch:8123", "vocflow")
    assert PASSWORD not in str(caught.value)


def test_help_shows_no_clickhouse_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOCFLOW_CLICKHOUSE_URL", "https://ch:8443")
    monkeypatch.setenv("VOCFLOW_CLICKHOUSE_PASSWORD", PASSWORD)
    for argv in (["--help"], ["worker", "--help"], ["sink", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        out = capsys.readouterr()
        assert "usage: vocflow" in out.out
        assert PASSWORD not in out.out + out.err
