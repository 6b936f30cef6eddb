"""Keyed pseudonyms: stable, channel-independent, not an unkeyed hash, and
applied to ids at the first stage."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from vocflow.schemas import ContactEvent, SourceRef
from vocflow.streams.core.settings import Settings
from vocflow.streams.privacy import pseudonyms
from vocflow.streams.privacy.pseudonyms import pseudonym, safe_id
from vocflow.streams.stages.normalize import normalize

SOURCE = SourceRef(topic="contacts.raw", partition=0, offset=7)


@pytest.fixture()
def restore_key() -> Iterator[None]:
    key = pseudonyms._key
    yield
    pseudonyms._key = key


def hmac20(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:20]


def test_configured_key_is_used_and_is_not_a_plain_hash(restore_key: None) -> None:
    pseudonyms.configure(Settings(pseudonym_key=SecretStr("s3cret")))
    assert pseudonym("tel", "13800138000") == "tel-" + hmac20(b"s3cret", "13800138000")
    assert (
        pseudonym("tel", "13800138000")
        != "tel-" + (hashlib.sha256(b"13800138000").hexdigest()[:20])
    )


def test_key_file_is_created_once_and_reused(tmp_path: Path, restore_key: None) -> None:
    pseudonyms.configure(Settings(data_dir=tmp_path))
    first = pseudonym("tel", "13800138000")
    key_file = tmp_path / pseudonyms.KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key_file.read_text())) == 32
    pseudonyms._key = pseudonyms.DEVELOPMENT_KEY
    pseudonyms.configure(Settings(data_dir=tmp_path))
    assert pseudonym("tel", "13800138000") == first
    assert first != "tel-" + hmac20(pseudonyms.DEVELOPMENT_KEY, "13800138000")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", ("tel", "13800138000")),
        ("+86 138-0013-8000", ("tel", "13800138000")),
        ("008613800138000", ("tel", "13800138000")),
        ("Wang.Li@Example.COM", ("mail", "wang.li@example.com")),
        ("cust-13800138000", ("p", "cust-13800138000")),
        ("11010519491231002X", ("p", "11010519491231002X")),
        ("6222021234567890128", ("p", "6222021234567890128")),
    ],
)
def test_personal_ids_get_a_pseudonym_by_kind(raw: str, expected: tuple[str, str]) -> None:
    assert safe_id(raw) == pseudonym(*expected)


@pytest.mark.parametrize("raw", ["C000123", "cust-42", "tel-0123abcd", "c2026112300001", "a@"])
def test_ordinary_ids_are_kept(raw: str) -> None:
    assert safe_id(raw) == raw


def test_normalize_replaces_personal_ids_before_anything_downstream() -> None:
    raw = orjson.dumps(
        {
            "schema_version": 1,
            "event_id": "e-1",
            "contact_id": "13900139000",
            "customer_id": "13800138000",
            "agent_id": "agent7@example.com",
            "channel": "chat",
            "event_type": "message",
            "occurred_at": "2026-11-23T08:00:00+08:00",
            "text": "hi",
        }
    )
    event = normalize(raw, SOURCE)
    assert isinstance(event, ContactEvent)
    assert event.event_id == "e-1"
    assert event.contact_id == pseudonym("tel", "13900139000")
    assert event.customer_id == pseudonym("tel", "13800138000")
    assert event.agent_id == pseudonym("mail", "agent7@example.com")
    dumped = event.model_dump_json()
    for secret in ("13900139000", "13800138000", "agent7"):
        assert secret not in dumped


def test_an_id_used_once_gets_the_same_answer_and_is_not_remembered() -> None:

    for raw in ("13812345678", "evt-13812345678-1", "bench-00000001-7"):
        pseudonyms._SAFE_IDS.pop(raw, None)
        once = safe_id(raw, remember=False)
        assert raw not in pseudonyms._SAFE_IDS
        assert once == safe_id(raw) and raw in pseudonyms._SAFE_IDS
