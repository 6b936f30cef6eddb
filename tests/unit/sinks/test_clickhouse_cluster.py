"""The cluster form of the DDL (sinks/clickhouse/cluster.py), on every DDL file.

No ClickHouse cluster runs here, so the generated statements are checked as
text: golden output for one table and one materialized view, and for every
statement of every file, ClickHouse's own parser (chdb's `formatQuery`) reads
it and the normalized text has the expected shape (ON CLUSTER, a Replicated
engine with the shard/replica path, a Distributed table over it). Without a
cluster name the store runs the files unchanged, as the chdb tests do.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from vocflow.sinks.clickhouse import store as store_module
from vocflow.sinks.clickhouse.cluster import ClusterDDLError, cluster_statements
from vocflow.sinks.clickhouse.store import ClickHouseStore, _statements, migrations
from vocflow.streams.core.settings import ConfigError, load_settings

DB = "vocflow"
CLUSTER = "main"

EVERY_STATEMENT = [
    pytest.param(statement, id=f"{name}#{index}")
    for _, name, sql in migrations()
    for index, statement in enumerate(_statements(sql.replace("{db}", DB)))
]


def statement_of(file_prefix: str, starts: str) -> str:
    for _, name, sql in migrations():
        if name.startswith(file_prefix):
            for statement in _statements(sql.replace("{db}", DB)):
                if statement.startswith(starts):
                    return statement
    raise AssertionError(f"{file_prefix}: no statement starting {starts!r}")


def test_golden_contact_events() -> None:
    local, distributed = cluster_statements(
        statement_of("001", "CREATE TABLE IF NOT EXISTS vocflow.contact_events"), CLUSTER
    )
    assert local.startswith(
        "CREATE TABLE IF NOT EXISTS vocflow.contact_events_local ON CLUSTER main\n(\n"
        "    event_id           String,\n"
    )
    assert local.endswith(
        "    ingested_at        DateTime64(3, 'UTC') DEFAULT now64(3)\n"
        ")\n"
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/vocflow/contact_events_local', '{replica}')\n"
        "PARTITION BY toYYYYMM(occurred_at)\n"
        "ORDER BY (toStartOfHour(occurred_at), event_id)\n"
        "SETTINGS replicated_deduplication_window = 1000"
    )
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS vocflow.contact_events ON CLUSTER main "
        "AS vocflow.contact_events_local\n"
        "ENGINE = Distributed(main, vocflow, contact_events_local, "
        "cityHash64(toStartOfHour(occurred_at), event_id))"
    )


def test_golden_version_column_and_materialized_view() -> None:
    facts, _ = cluster_statements(
        statement_of("004", "CREATE TABLE IF NOT EXISTS vocflow.contact_facts"), CLUSTER
    )
    assert (
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/vocflow/contact_facts_local', '{replica}', version)\n"
    ) in facts
    view, distributed = cluster_statements(statement_of("004", "CREATE MATERIALIZED VIEW"), CLUSTER)
    assert view.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS vocflow.keyword_minutes_local ON CLUSTER main\n"
        "ENGINE = ReplicatedSummingMergeTree("
        "'/clickhouse/tables/{shard}/vocflow/keyword_minutes_local', '{replica}')\n"
    )
    assert view.endswith("FROM vocflow.routing_log_local")
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS vocflow.keyword_minutes ON CLUSTER main "
        "AS vocflow.keyword_minutes_local\n"
        "ENGINE = Distributed(main, vocflow, keyword_minutes_local)"
    )


def test_golden_alter_and_drop() -> None:
    alter = statement_of("005", "ALTER TABLE")
    rest = alter.removeprefix("ALTER TABLE vocflow.contact_facts")
    assert cluster_statements(alter, CLUSTER) == [
        f"ALTER TABLE vocflow.contact_facts_local ON CLUSTER main{rest}",
        f"ALTER TABLE vocflow.contact_facts ON CLUSTER main{rest}",
    ]
    assert cluster_statements("DROP TABLE IF EXISTS vocflow.kpi_minutes", CLUSTER) == [
        "DROP TABLE IF EXISTS vocflow.kpi_minutes ON CLUSTER main",
        "DROP TABLE IF EXISTS vocflow.kpi_minutes_local ON CLUSTER main",
    ]


def formatted(store: ClickHouseStore, sql: str) -> str:
    """`sql` as ClickHouse's parser normalizes it (fails on a syntax error)."""
    return str(store.query("SELECT formatQuerySingleLine({q:String})", {"q": sql})[0][0])


_REPLICATED = re.compile(
    r"ENGINE = Replicated(?:Replacing|Summing|Aggregating)?MergeTree\("
    r"'/clickhouse/tables/\{shard\}/vocflow/(\w+)_local', '\{replica\}'"
)


@pytest.mark.parametrize("statement", EVERY_STATEMENT)
def test_every_statement_has_a_cluster_form_that_parses(
    statement: str, store: ClickHouseStore
) -> None:
    generated = cluster_statements(statement, CLUSTER)
    shapes = [formatted(store, sql) for sql in generated]
    for shape in shapes:
        assert "non_replicated" not in shape
        assert not re.search(r"ENGINE = (?!Replicated|Distributed)\w*MergeTree", shape), shape
        if not shape.startswith("INSERT INTO"):
            assert "ON CLUSTER main" in shape, shape
    first = statement.split("(", 1)[0].split()
    if statement.startswith("CREATE TABLE"):
        table = first[-1].split(".")[1]
        local, distributed = shapes
        assert local.startswith(f"CREATE TABLE IF NOT EXISTS vocflow.{table}_local ON CLUSTER main")
        assert _REPLICATED.search(local)[1] == table  # type: ignore[index]
        assert distributed.startswith(
            f"CREATE TABLE IF NOT EXISTS vocflow.{table} ON CLUSTER main "
            f"AS vocflow.{table}_local ENGINE = Distributed(main, vocflow, {table}_local, "
            "cityHash64("
        )
    elif statement.startswith("CREATE MATERIALIZED VIEW") and " TO " in statement.split("\n")[0]:
        (view,) = shapes
        assert re.search(r" TO vocflow\.\w+_local AS SELECT .* FROM vocflow\.\w+_local ", view)
    elif statement.startswith("CREATE MATERIALIZED VIEW"):
        view, distributed = shapes
        assert _REPLICATED.search(view)
        assert " FROM vocflow." in view and "_local" in view.split(" FROM vocflow.", 1)[1]
        assert "ENGINE = Distributed(main, vocflow, " in distributed
    elif statement.startswith("INSERT INTO"):
        assert generated == [statement]
    else:
        assert len(shapes) in (1, 2)


def test_every_sorting_key_is_the_sharding_key() -> None:
    """Rows a Replacing/Summing/Aggregating merge must collapse share a sorting key,
    so sharding by it keeps them on one shard, where merges and FINAL see them."""
    checked = 0
    for param in EVERY_STATEMENT:
        statement = param.values[0]
        if not isinstance(statement, str) or not statement.startswith("CREATE TABLE"):
            continue
        order = re.search(r"ORDER BY \((.*)\)\n", statement) or re.search(
            r"ORDER BY (\w+)", statement
        )
        assert order is not None
        _, distributed = cluster_statements(statement, CLUSTER)
        assert distributed.endswith(f"cityHash64({order[1]}))")
        checked += 1
    assert checked >= 10


def test_an_unknown_statement_shape_is_refused() -> None:
    with pytest.raises(ClusterDDLError, match="no cluster form for the statement starting"):
        cluster_statements("RENAME TABLE vocflow.a TO vocflow.b", CLUSTER)
    with pytest.raises(ClusterDDLError, match="no MergeTree engine"):
        cluster_statements("CREATE TABLE IF NOT EXISTS vocflow.t (a String) ENGINE = Log", CLUSTER)


def test_without_a_cluster_the_ddl_runs_as_written(store: ClickHouseStore) -> None:
    assert store.cluster is None
    for param in EVERY_STATEMENT:
        statement = param.values[0]
        assert isinstance(statement, str)
        assert store.ddl(statement) == [statement]


class RecordingClient:
    """A server that accepts every command: what the store would send a cluster."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.inserts: list[tuple[str, dict[str, Any]]] = []

    def command(self, sql: str) -> None:
        self.commands.append(sql)

    def query(self, sql: str, parameters: Any = None) -> Any:
        self.commands.append(sql)
        return type("Result", (), {"result_rows": [], "column_names": ()})()

    def insert(self, table: str, rows: Any, **kwargs: Any) -> None:
        self.inserts.append((table, kwargs.get("settings") or {}))

    def close(self) -> None:
        pass


def test_the_store_migrates_a_cluster_with_on_cluster_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = RecordingClient()
    monkeypatch.setattr(store_module.clickhouse_connect, "get_client", lambda **_: client)
    settings = load_settings(
        environ={"VOCFLOW_CLICKHOUSE_URL": "https://ch:8443", "VOCFLOW_CLICKHOUSE_CLUSTER": CLUSTER}
    )
    store = ClickHouseStore.from_settings(settings)
    applied = store.migrate()
    assert applied == [name for _, name, _ in migrations()]
    assert client.commands[0] == "CREATE DATABASE IF NOT EXISTS vocflow ON CLUSTER main"
    assert client.commands[1].startswith(
        "CREATE TABLE IF NOT EXISTS vocflow.schema_migrations_local ON CLUSTER main"
    )
    for sql in client.commands:
        if not sql.startswith(("SELECT", "INSERT")):
            assert "ON CLUSTER main" in sql, sql
    store.insert("contact_events", ["event_id"], [["e1"]], token="t-1")
    assert client.inserts[-1] == (
        "contact_events",
        {"insert_deduplication_token": "t-1", "insert_distributed_sync": 1},
    )


def test_a_cluster_with_embedded_chdb_is_refused() -> None:
    with pytest.raises(ConfigError, match="clickhouse_cluster set, but ClickHouse is the embedded"):
        load_settings(environ={"VOCFLOW_CLICKHOUSE_CLUSTER": CLUSTER})
