"""The ClickHouse store and sink tables, on the real embedded engine (chdb).

One process may open only one chdb path, so the whole test session shares one
path and each test uses its own database.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from vocflow.schemas import ContactEvent, SourceRef
from vocflow.sinks.clickhouse.store import ClickHouseStore, migrations
from vocflow.sinks.clickhouse.tables import CONTACT_EVENTS, DEAD_LETTERS
from vocflow.streams.stages.normalize import normalize


def event(n: int, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "contact_id": f"c{n}",
            "channel": "phone",
            "event_type": "answered",
            "occurred_at": "2026-11-23T10:00:00+08:00",
            "queue": "billing",
            "payload": {"wait_seconds": n},
            "text": "13812345678",
            **extra,
        }
    )


def test_migrations_are_numbered_and_idempotent(store: ClickHouseStore) -> None:
    versions = [v for v, _, _ in migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert store.migrate() == []
    tables = {r[0] for r in store.query(f"SHOW TABLES FROM {store.database}")}
    assert {"contact_events", "dead_letters", "schema_migrations"} <= tables


def test_contact_event_rows_round_trip_without_text(store: ClickHouseStore) -> None:
    rows = [CONTACT_EVENTS.to_row(event(n), 2, 100 + n) for n in range(3)]
    store.insert("contact_events", CONTACT_EVENTS.columns, rows, token="t1")
    got = store.query_dicts(
        f"SELECT event_id, occurred_at, queue, wait_seconds, text_chars, kafka_offset "
        f"FROM {store.database}.contact_events ORDER BY event_id"
    )
    assert [r["event_id"] for r in got] == ["e0", "e1", "e2"]
    assert got[1]["wait_seconds"] == 1.0
    assert got[1]["text_chars"] == 11
    assert got[1]["kafka_offset"] == 101
    assert got[0]["occurred_at"].replace(tzinfo=UTC) == datetime(2026, 11, 23, 2, tzinfo=UTC)
    dump = str(store.query(f"SELECT * FROM {store.database}.contact_events"))
    assert "13812345678" not in dump


def test_retried_batch_with_same_token_is_dropped(store: ClickHouseStore) -> None:
    rows = [CONTACT_EVENTS.to_row(event(n), 0, n) for n in range(5)]
    for _ in range(3):
        store.insert("contact_events", CONTACT_EVENTS.columns, rows, token="contact_events|p0/0-4")
    assert store.query(f"SELECT count() FROM {store.database}.contact_events")[0][0] == 5


def test_reproduced_event_collapses_with_final(store: ClickHouseStore) -> None:
    store.insert(
        "contact_events", CONTACT_EVENTS.columns, [CONTACT_EVENTS.to_row(event(1), 0, 1)], token="a"
    )
    store.insert(
        "contact_events",
        CONTACT_EVENTS.columns,
        [CONTACT_EVENTS.to_row(event(1), 4, 77)],
        token="b",
    )
    db = store.database
    assert store.query(f"SELECT count() FROM {db}.contact_events FINAL")[0][0] == 1


def test_dead_letter_row_has_no_original_bytes(store: ClickHouseStore) -> None:
    raw = b'{"phone": "13812345678", '
    letter = normalize(raw, SourceRef(topic="contacts.raw", partition=1, offset=9))
    assert not isinstance(letter, ContactEvent)
    row = DEAD_LETTERS.to_row(letter.model_dump_json().encode(), 0, 3)
    store.insert("dead_letters", DEAD_LETTERS.columns, [row], token="d")
    got = store.query_dicts(f"SELECT * FROM {store.database}.dead_letters")
    assert got[0]["reason"] == "bad_json"
    assert got[0]["source_offset"] == 9
    assert got[0]["original_size"] == len(raw)
    assert "13812345678" not in str(got)


def test_undecodable_record_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not a ContactEvent"):
        CONTACT_EVENTS.to_row(b"{}", 0, 0)
    with pytest.raises(ValueError, match="not a DeadLetter"):
        DEAD_LETTERS.to_row(b"[]", 0, 0)


def test_named_kpi_queries_are_printable_and_run(store: ClickHouseStore) -> None:
    from vocflow.sinks.kpi import queries as kpi_queries
    from vocflow.streams.cli import main

    codes: list[int] = []
    main(["sql", "--kpi", "nope"], exit=codes.append)
    assert codes == [2]
    sql = kpi_queries.sql("backlog", store.database)
    assert f"FROM {store.database}.contact_facts FINAL" in sql
    assert "{" + "at:DateTime64(3, 'UTC')}" in sql
    at = datetime(2026, 11, 23, tzinfo=UTC)
    assert kpi_queries.run(store, "backlog", {"at": at}) == {}
