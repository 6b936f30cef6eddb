"""Ingest request signing and the sources file: who may post what, and file:line errors."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import pytest

from vocflow.streams.sources.ingest import (
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TIMESTAMP_HEADER,
    AuthError,
    Source,
    SourcesError,
    load_sources,
    sign,
    signed_headers,
    verify,
)

SECRET = b"0123456789abcdef-secret"
SOURCES = {"cti-main": Source("cti-main", SECRET, frozenset({"cti", "freeswitch"}))}
NOW = 1_714_960_000.0
BODY = b'{"call_id": "C1"}'


def check(headers: dict[str, str], body: bytes = BODY, channel: str = "cti") -> Source:
    return verify(SOURCES, headers, body, channel, now=NOW, window_s=300)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1714960000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1714960000, BODY) == f"sha256={expected}"
    assert sign(SECRET.decode(), "1714960000", BODY) == f"sha256={expected}"


def test_a_correctly_signed_request_names_its_source() -> None:
    source = check(signed_headers("cti-main", SECRET, BODY, now=NOW))
    assert source.name == "cti-main"


def test_a_timestamp_within_the_window_is_accepted() -> None:
    assert check(signed_headers("cti-main", SECRET, BODY, now=NOW - 299)).name == "cti-main"
    assert check(signed_headers("cti-main", SECRET, BODY, now=NOW + 299)).name == "cti-main"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (signed_headers("cti-main", b"wrong-secret-0123456789", BODY, now=NOW), "bad_signature"),
        (signed_headers("cti-main", SECRET, BODY + b" ", now=NOW), "bad_signature"),
        (signed_headers("cti-main", SECRET, BODY, now=NOW - 301), "stale_timestamp"),
        (signed_headers("cti-main", SECRET, BODY, now=NOW + 301), "stale_timestamp"),
        (signed_headers("nobody", SECRET, BODY, now=NOW), "unknown_source"),
        ({SOURCE_HEADER: "cti-main"}, "missing_headers"),
    ],
    ids=["wrong-secret", "body-changed", "stale", "future", "unknown-source", "missing"],
)
def test_bad_requests_are_refused_with_401(headers: dict[str, str], code: str) -> None:
    with pytest.raises(AuthError) as info:
        check(headers)
    assert (info.value.status, info.value.code) == (401, code)


def test_changing_the_timestamp_header_breaks_the_signature() -> None:
    headers = signed_headers("cti-main", SECRET, BODY, now=NOW - 3600)
    headers[TIMESTAMP_HEADER] = str(int(NOW))  # replayed with a fresh-looking timestamp
    with pytest.raises(AuthError) as info:
        check(headers)
    assert info.value.code == "bad_signature"


def test_a_non_numeric_timestamp_is_refused() -> None:
    headers = signed_headers("cti-main", SECRET, BODY, now=NOW)
    headers[TIMESTAMP_HEADER] = "2024-05-06T09:00:00Z"
    with pytest.raises(AuthError) as info:
        check(headers)
    assert info.value.code == "bad_timestamp"


def test_a_channel_the_source_may_not_post_to_is_403_after_the_signature_check() -> None:
    with pytest.raises(AuthError) as info:
        check(signed_headers("cti-main", SECRET, BODY, now=NOW), channel="email")
    assert (info.value.status, info.value.code) == (403, "channel_not_allowed")
    assert "cti, freeswitch" in info.value.message
    # Without a valid signature the caller learns nothing about permissions.
    with pytest.raises(AuthError) as info:
        check(signed_headers("cti-main", b"x" * 20, BODY, now=NOW), channel="email")
    assert info.value.status == 401


def test_signature_header_is_compared_whole() -> None:
    headers = signed_headers("cti-main", SECRET, BODY, now=NOW)
    headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER][:-1]
    with pytest.raises(AuthError):
        check(headers)


# ---- sources file


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sources_file_is_loaded_with_secrets_from_file_or_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cti-main:\n"
        "  secret: 'abcdefghijklmnop-1'\n"
        "  channels: [cti, freeswitch]\n"
        "mailgw-hz:\n"
        "  secret: ${MAIL_SECRET}\n"
        "  channels:\n"
        "    - email\n",
    )
    sources = load_sources(path, environ={"MAIL_SECRET": "s" * 32})
    assert sources["cti-main"].secret == b"abcdefghijklmnop-1"
    assert sources["cti-main"].channels == {"cti", "freeswitch"}
    assert sources["mailgw-hz"].secret == b"s" * 32
    assert "secret" not in repr(sources["mailgw-hz"]).replace("secret=", "")


def test_secret_env_is_a_deprecated_alias_of_a_variable_reference(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "mailgw-hz:\n  secret_env: MAIL_SECRET\n  channels: [email]\n")
    with caplog.at_level(logging.WARNING, logger="vocflow.ingest"):
        sources = load_sources(path, environ={"MAIL_SECRET": "s" * 32})
    assert sources["mailgw-hz"].secret == b"s" * 32
    assert (
        f"{path}:2: source 'mailgw-hz': secret_env is deprecated; write secret: ${{MAIL_SECRET}}"
        in (caplog.text)
    )


def test_a_secret_from_the_environment_is_never_shown(tmp_path: Path) -> None:
    path = write(tmp_path, "a:\n  secret: ${A_SECRET}\n  channels: [cti]\n")
    with pytest.raises(SourcesError) as info:
        load_sources(path, environ={"A_SECRET": "tiny-secret"})
    assert f"{path}:2: source 'a': secret: 11 bytes is too short" in str(info.value)
    assert "tiny-secret" not in str(info.value)


def test_a_source_may_have_its_own_rate_limit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "fast:\n  secret: 'abcdefghijklmnop-1'\n  channels: [cti]\n  rate_per_s: 2.5\n"
        "  burst: 40\n"
        "paced:\n  secret: 'abcdefghijklmnop-2'\n  channels: [cti]\n  rate_per_s: 10\n"
        "default:\n  secret: 'abcdefghijklmnop-3'\n  channels: [cti]\n",
    )
    sources = load_sources(path, environ={})
    assert (sources["fast"].rate_per_s, sources["fast"].burst) == (2.5, 40)
    # burst None: 2 x rate when the app builds the bucket; rate None: the settings default
    assert (sources["paced"].rate_per_s, sources["paced"].burst) == (10, None)
    assert (sources["default"].rate_per_s, sources["default"].burst) == (None, None)


_SOURCE = "a:\n  secret: 'abcdefghijklmnopq'\n  channels: [cti]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _SOURCE + "  rate_per_s: 0\n",
            ":4: source 'a': rate_per_s: Input should be greater than 0",
        ),
        (
            _SOURCE + "  rate_per_s: -3\n",
            ":4: source 'a': rate_per_s: Input should be greater than",
        ),
        (_SOURCE + "  rate_per_s: .inf\n", ":4: source 'a': rate_per_s: Input should be a finite"),
        (_SOURCE + "  rate_per_s: fast\n", ":4: source 'a': rate_per_s: Input should be a valid"),
        (_SOURCE + "  rate_per_s: true\n", ":4: source 'a': rate_per_s: Input should be a valid"),
        (
            _SOURCE + "  rate_per_s: 5\n  burst: 0\n",
            ":5: source 'a': burst: Input should be greater than 0",
        ),
        (
            _SOURCE + "  rate_per_s: 5\n  burst: 2.5\n",
            ":5: source 'a': burst: Input should be a valid integer",
        ),
        (
            _SOURCE + "  rate_per_s: 5\n  burst: '20'\n",
            ":5: source 'a': burst: Input should be a valid integer",
        ),
        (
            _SOURCE + "  burst: 20\n",
            ":4: source 'a': burst: given without rate_per_s; give both, or rate_per_s alone",
        ),
        (_SOURCE + "  rate: 5\n", ":4: source 'a': rate: unknown key"),
        (
            "a:\n  secret: 'abcdefghijklmnopq'\n  channels: [cti, phon]\n",
            ":3: source 'a': channels[1]: unknown channel 'phon'; known: cti, freeswitch,",
        ),
        (
            "a:\n  secret: short\n  channels: [cti]\n",
            ":2: source 'a': secret: 5 bytes is too short",
        ),
        ("a:\n  channels: [cti]\n", ":1: source 'a': secret: missing (the source's HMAC key"),
        ("a:\n  secret: 'abcdefghijklmnopq'\n", ":1: source 'a': channels: missing (list of cti,"),
        (
            "a:\n  secret: 'abcdefghijklmnopq'\n  channels: []\n",
            ":3: source 'a': channels: must be a non-empty list of cti,",
        ),
        (
            "a:\n  secret: 'abcdefghijklmnopq'\n  channels: [cti]\n  chanels: [sms]\n",
            ":4: source 'a': chanels: unknown key (did you mean 'channels'?)",
        ),
        (
            "a:\n  secret: ${NOPE}\n  channels: [cti]\n",
            ":2: source 'a': secret: environment variable NOPE is not set",
        ),
        (
            "a:\n  secret_env: NOPE\n  channels: [cti]\n",
            ":2: source 'a': secret: environment variable 'NOPE' (secret_env) is not set",
        ),
        (
            "a:\n  secret: 'abcdefghijklmnopq'\n  secret_env: A\n  channels: [cti]\n",
            ":3: source 'a': secret_env: give 'secret' or the deprecated 'secret_env', not both",
        ),
        (
            "'bad name':\n  secret: 'abcdefghijklmnopq'\n  channels: [cti]\n",
            ":1: source 'bad name': a source name is 1-64 of A-Z a-z 0-9 . _ -",
        ),
        (
            "a:\n  secret: 'abcdefghijklmnopq'\n  channels: [cti]\n"
            "a:\n  secret: 'abcdefghijklmnopq'\n  channels: [sms]\n",
            ":4: duplicate key 'a' (first at line 1)",
        ),
        ("a: [\n", ":2: invalid YAML"),
        ("", ":1: no sources defined"),
        ("- a\n", ":1: the top level must be a mapping of source name -> settings"),
        ("{}\n", ":1: no sources defined"),
    ],
)
def test_sources_file_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SourcesError) as info:
        load_sources(path, environ={})
    assert f"{path}{message}" in str(info.value)


def test_every_problem_of_the_sources_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a:\n  secret: short\n  channels: [cti]\nb:\n  secret: 'abcdefghijklmnopq'\n"
        "  channels: [fax]\n",
    )
    with pytest.raises(SourcesError) as info:
        load_sources(path, environ={})
    assert f"{path}:2:" in str(info.value)
    assert f"{path}:6:" in str(info.value)


def test_a_missing_sources_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourcesError, match="cannot read the sources file"):
        load_sources(tmp_path / "absent.yaml")
