"""Read-only SQL (sinks/clickhouse/readonly.py): one SELECT, and ClickHouse itself
refuses writes, file access, setting changes, long runs and long results.

The checks in our code give the reasons; the ClickHouse-side settings are
tested by sending what the checks would refuse straight to the handle with
those settings (what chdb does, not what we hope it does).
"""

from __future__ import annotations

import pytest

from vocflow.sinks.clickhouse.readonly import (
    ReadOnlySql,
    SqlBusy,
    SqlFailed,
    SqlRefused,
    check_select,
)
from vocflow.sinks.clickhouse.store import ClickHouseStore


@pytest.fixture()
def ro(store: ClickHouseStore) -> ReadOnlySql:
    store.query(f"INSERT INTO {store.database}.schema_migrations (version, name) VALUES (999, 'x')")
    sql = ReadOnlySql(store, max_rows=5, max_seconds=1.0)
    yield sql
    sql.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select 1;",
        "  -- a note\nWITH 2 AS k SELECT k  ; -- done",
        "SELECT 'a; b', \"odd;name\" FROM t /* ; */",
        "SELECT format('{} x', 1), formatDateTime(now(), '%F')",
        "SELECT 'it''s', 'back\\'slash'",
    ],
)
def test_one_select_passes(sql: str) -> None:
    assert check_select(sql).split()[0].upper() in ("SELECT", "WITH", "--")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("", "no statement"),
        ("-- only a comment", "no statement"),
        ("INSERT INTO t VALUES (1)", "only SELECT .* not INSERT"),
        ("DROP TABLE contact_facts", "not DROP"),
        ("ALTER TABLE t DELETE WHERE 1", "not ALTER"),
        ("SET readonly = 0", "not SET"),
        ("SELECT 1; DROP TABLE t", "one statement only"),
        ("SELECT 1;;", "one statement only"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE is not allowed"),
        ("SELECT 1 FORMAT JSON", "FORMAT is chosen by the caller"),
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS are fixed by the server"),
        ("SELECT 'open", "quote is not closed"),
        ("SELECT 1 /* open", "comment is not closed"),
    ],
)
def test_anything_else_is_refused_with_a_reason(sql: str, reason: str) -> None:
    with pytest.raises(SqlRefused, match=reason):
        check_select(sql)


def test_rows_are_cut_at_the_limit_and_flagged(ro: ReadOnlySql) -> None:
    got = ro.run("SELECT number AS n, toString(number) AS s FROM numbers(100000)")
    assert got.columns == ["n", "s"]
    assert got.types == ["UInt64", "String"]
    assert got.rows == [[0, "0"], [1, "1"], [2, "2"], [3, "3"], [4, "4"]]
    assert got.truncated is True
    small = ro.run("SELECT version FROM schema_migrations WHERE version = 999")
    assert small.rows == [[999]] and small.truncated is False


def test_clickhouse_enforces_readonly_and_time(ro: ReadOnlySql, store: ClickHouseStore) -> None:
    client = ro._connect()
    db = store.database
    refused = [
        f"INSERT INTO {db}.schema_migrations (version, name) VALUES (1000, 'y')",
        f"DROP TABLE {db}.schema_migrations",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')",
        "SELECT 1 SETTINGS max_result_rows = 0",
    ]
    for sql in refused:
        with pytest.raises(Exception, match="READONLY"):
            client.query(sql, settings=ro.settings())
    # The handle is not left read-only for the store, nor the store's data changed.
    assert store.query(f"SELECT count() FROM {db}.schema_migrations WHERE version >= 999") == [(1,)]
    with pytest.raises(SqlFailed, match=r"ran longer than 1 s \(VOCFLOW_SQL_MAX_SECONDS\)"):
        ro.run("SELECT sleepEachRow(0.5) FROM numbers(5)")
    with pytest.raises(SqlFailed, match=r"ClickHouse refused the query: .*UNKNOWN_TABLE"):
        ro.run("SELECT * FROM no_such_table")


def test_an_outer_join_gives_nulls_as_the_views_expect(ro: ReadOnlySql) -> None:
    """routed_items' own SETTINGS join_use_nulls = 1 does not apply under readonly=1:
    without it here every unresolved item read as resolved through /api/sql."""
    result = ro.run(
        "SELECT a.x, b.y FROM (SELECT 1 AS x) AS a "
        "LEFT JOIN (SELECT 2 AS x, toDateTime('2026-01-01 00:00:00') AS y) AS b ON a.x = b.x"
    )
    assert result.rows == [[1, None]]


def test_one_query_at_a_time(ro: ReadOnlySql) -> None:
    assert ro._lock.acquire()
    try:
        with pytest.raises(SqlBusy, match="try again"):
            ro.run("SELECT 1")
    finally:
        ro._lock.release()
    assert ro.run("SELECT 1 AS one").rows == [[1]]
