"""Every sink table spec writes exactly the columns its DDL declares, by name.

The sink inserts with an explicit column list (``TableSpec.columns``) and a
positional row built from each record's named values. These tests hold the
three together against the schema ClickHouse itself reports after running the
real migrations (``system.columns``, so ``ALTER ... ADD COLUMN ... AFTER`` in a
later DDL file counts exactly as ClickHouse applies it, which a regex over the
.sql files would have to re-implement):

* the column list is the table's columns in DDL order, minus only the columns a
  spec declares the server fills itself (``server_filled``, which must have a
  DEFAULT): a new DDL column with no field, or two columns swapped, fails;
* a builder names every column, no more and no fewer, in the same order;
* the positional row is the named values in column order, and ClickHouse
  accepts it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from vocflow.schemas import AgentEvent, ContactEvent, Resolution, SourceRef
from vocflow.schemas.source.shift import ShiftRecord
from vocflow.sinks.clickhouse import tables
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import ALL, TableSpec
from vocflow.streams.kpi.contributions import delta
from vocflow.streams.kpi.fold import annotate, fold_all
from vocflow.streams.stages.normalize import normalize

# Recent, so no table's TTL drops the sample rows; whole hours, so nothing depends on the hour.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)


def _at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


def contact_event() -> bytes:
    return orjson.dumps(
        {
            "event_id": "e-1",
            "contact_id": "c-1",
            "customer_id": "cust-1",
            "channel": "phone",
            "event_type": "ended",
            "occurred_at": _at(5),
            "queue": "billing",
            "agent_id": "a-1",
            "text": "我的账单不对，请回电 13812345678",
            "payload": {
                "wait_seconds": 12.5,
                "talk_seconds": 180.0,
                "hold_seconds": 20.0,
                "after_work_seconds": 30.0,
                "csat": 4,
                "nps": 9,
                "fcr": True,
            },
            "source": "cti",
        }
    )


def dead_letter() -> bytes:
    letter = normalize(
        b'{"phone": "13812345678", ', SourceRef(topic="contacts.raw", partition=1, offset=9)
    )
    assert not isinstance(letter, ContactEvent)
    return letter.model_dump_json().encode()


def routing_envelope() -> bytes:
    return orjson.dumps(
        {
            "envelope_id": "env-c-1",
            "contact_id": "c-1",
            "customer_id": "cust-1",
            "channel": "email",
            "event_type": "received",
            "queue": "billing_mail",
            "occurred_at": _at(0),
            "routed_at": _at(1),
            "department": "billing",
            "text": "发票怎么开？上次的问题还没解决",
            "language": "zh",
            "keywords": ["发票", "问题"],
            "sentiment": -0.4,
            "customer_tier": "gold",
            "customer_city": "上海",
            "customer_known": True,
            "repeat_contact": True,
            "previous_contact_id": "c-0",
            "tags": {
                "business_type": {"value": "billing", "rule_id": "r-bt"},
                "support_system": {"value": "none", "rule_id": "default"},
                "bearer_network": {"value": "none", "rule_id": "default"},
                "department": {"value": "billing", "rule_id": "r-dep"},
                "category": {"value": "invoice", "rule_id": "r-cat"},
                "urgency": "P2",
                "urgency_rule_id": "r-urg",
            },
            "reason": "keyword 发票 -> billing",
            "sla_due_at": _at(60 * 24),
            "rules_version": "v7",
        }
    )


def resolution() -> bytes:
    return (
        Resolution(
            event_id="res-1",
            contact_id="c-1",
            department="billing",
            resolved_at=NOW + timedelta(hours=3),
            note="refunded, customer on 13812345678 informed",
            source="crm",
        )
        .model_dump_json()
        .encode()
    )


def contact_fact() -> bytes:
    """One folded phone contact with its KPI deltas, as the worker emits it."""
    base = {"contact_id": "c-1", "customer_id": "cust-1", "channel": "phone", "queue": "billing"}
    steps: list[tuple[str, float, dict[str, Any]]] = [
        ("offered", 0, {}),
        ("queued", 0.1, {}),
        ("answered", 0.5, {"wait_seconds": 24}),
        ("ended", 4, {"talk_seconds": 210}),
        ("wrapup_done", 5, {"after_work_seconds": 60}),
    ]
    events = [
        ContactEvent.model_validate(
            {
                **base,
                "event_id": f"e-{n}",
                "event_type": kind,
                "occurred_at": _at(minute),
                "agent_id": "a-1" if kind != "offered" else None,
                "payload": payload or None,
            }
        )
        for n, (kind, minute, payload) in enumerate(steps)
    ]
    fact = fold_all(events)["c-1"]
    fact = annotate(fact, department="billing", category="invoice") or fact
    body = fact.to_dict()
    body["kpi_deltas"] = [[*key, counters] for key, counters in delta(None, fact)]
    return orjson.dumps(body)


def agent_event() -> bytes:
    return (
        AgentEvent(
            event_id="ae-1",
            agent_id="a-1",
            team="billing_team",
            state="not_ready",
            reason="break",
            occurred_at=NOW,
        )
        .model_dump_json()
        .encode()
    )


def shift_record() -> bytes:
    return (
        ShiftRecord(
            agent_id="a-1",
            team="billing_team",
            start=NOW,
            end=NOW + timedelta(hours=8),
            activity="work",
            published_at=NOW - timedelta(days=1),
        )
        .model_dump_json()
        .encode()
    )


# One realistic record per sink table, as its topic carries it.
SAMPLES: dict[str, bytes] = {
    "contact_events": contact_event(),
    "dead_letters": dead_letter(),
    "routing_log": routing_envelope(),
    "resolutions": resolution(),
    "contact_facts": contact_fact(),
    "agent_events": agent_event(),
    "agent_shifts": shift_record(),
}

SPECS = pytest.mark.parametrize("spec", ALL, ids=[s.table for s in ALL])


@pytest.fixture(scope="module")
def ddl(chdb_path: str) -> Iterator[dict[str, list[tuple[str, str]]]]:
    """(column, default_kind) per table, in table order, after all migrations."""
    store = ClickHouseStore(chdb_path, f"t_{uuid.uuid4().hex[:12]}")
    store.migrate()
    rows = store.query(
        "SELECT table, name, default_kind FROM system.columns "
        "WHERE database = {db:String} ORDER BY table, position",
        {"db": store.database},
    )
    found: dict[str, list[tuple[str, str]]] = {}
    for table, name, default_kind in rows:
        found.setdefault(table, []).append((name, default_kind))
    yield found
    store.query(f"DROP DATABASE IF EXISTS {store.database}")


def test_every_sink_table_has_a_sample_and_a_ddl(ddl: dict[str, list[tuple[str, str]]]) -> None:
    names = [s.table for s in ALL]
    assert len(set(names)) == len(names)
    assert set(SAMPLES) == set(names)
    assert set(names) <= set(ddl), f"no DDL for {sorted(set(names) - set(ddl))}"


@SPECS
def test_columns_are_the_ddl_columns_in_order(
    spec: TableSpec, ddl: dict[str, list[tuple[str, str]]]
) -> None:
    declared = ddl[spec.table]
    filled = {name for name, kind in declared if name in spec.server_filled}
    assert filled == set(spec.server_filled), (
        f"{spec.table}: server_filled names columns the DDL lacks: "
        f"{sorted(set(spec.server_filled) - filled)}"
    )
    for name, kind in declared:
        if name in spec.server_filled:
            assert kind, f"{spec.table}.{name} is left to the server but has no DEFAULT"
    expected = [name for name, _ in declared if name not in spec.server_filled]
    assert list(spec.columns) == expected, (
        f"{spec.table}: the spec's columns differ from the DDL "
        f"(missing {sorted(set(expected) - set(spec.columns))}, "
        f"extra {sorted(set(spec.columns) - set(expected))}, or out of order)"
    )


@SPECS
def test_builder_names_every_column_once_in_order(spec: TableSpec) -> None:
    named = spec.build(SAMPLES[spec.table], 3, 42)
    assert list(named) == list(spec.columns), (
        f"{spec.table}: builder fields differ from the columns "
        f"(missing {sorted(set(spec.columns) - set(named))}, "
        f"extra {sorted(set(named) - set(spec.columns))}, or out of order)"
    )
    assert named["kafka_partition"] == 3 and named["kafka_offset"] == 42


@SPECS
def test_row_is_the_named_values_in_column_order(spec: TableSpec) -> None:
    value = SAMPLES[spec.table]
    named = spec.build(value, 3, 42)
    row = spec.to_row(value, 3, 42)
    assert isinstance(row, list)
    assert row == [named[c] for c in spec.columns]


@SPECS
def test_sample_row_inserts_and_reads_back_by_name(spec: TableSpec, store: ClickHouseStore) -> None:
    value = SAMPLES[spec.table]
    rows = [spec.to_row(value, 3, 42)]
    if spec.before_insert is not None:
        rows = spec.before_insert(store, rows)
    store.insert(spec.table, spec.columns, rows, token=f"{spec.table}-sample")
    got = store.query_dicts(f"SELECT * FROM {store.database}.{spec.table}")
    assert len(got) == 1
    # Values that round-trip exactly (strings, integers, booleans, NULL) land in
    # the column of their name; floats and times change representation.
    named = spec.build(value, 3, 42)
    exact = {c: v for c, v in named.items() if v is None or isinstance(v, str | int)}
    assert {"kafka_partition", "kafka_offset"} <= set(exact)
    assert {c: got[0][c] for c in exact} == exact


def test_a_builder_that_misses_or_adds_a_name_fails_loudly() -> None:
    """A builder out of step with its columns is a code bug: it must stop the sink,
    not be dead-lettered as an undecodable record (that is what ValueError means)."""
    spec = tables.RESOLUTIONS
    value = SAMPLES[spec.table]

    def missing(v: bytes, p: int, o: int) -> dict[str, Any]:
        named = spec.build(v, p, o)
        del named["note"]
        return named

    def extra(v: bytes, p: int, o: int) -> dict[str, Any]:
        return {**spec.build(v, p, o), "surprise": 1}

    for build in (missing, extra):
        broken = TableSpec(spec.table, spec.source, spec.columns, build)
        with pytest.raises(tables.RowShapeError, match="resolutions"):
            broken.to_row(value, 0, 0)
        assert not issubclass(tables.RowShapeError, ValueError)


def test_a_spec_with_a_repeated_column_is_refused() -> None:
    spec = tables.AGENT_SHIFTS
    with pytest.raises(ValueError, match="team"):
        TableSpec(spec.table, spec.source, (*spec.columns, "team"), spec.build)
