"""The cluster form of the DDL, derived from the one definition in ddl/*.sql.

The DDL files are written for one server (and the embedded chdb, which is how
the tests run them). With `clickhouse_cluster` set, the store passes every
statement through `cluster_statements` instead of keeping a second copy of
the schema that would drift from the first. Pure string functions: no
ClickHouse server new enough installs here, so the unit tests compare the
output with golden text and have chdb's own parser (`formatQuery`) read every
statement.

The layout, for a table `T` of database `db` on cluster `c`:

- `db.T_local ON CLUSTER c`: the data, with `Replicated<X>MergeTree` and the
  ZooKeeper/Keeper path `/clickhouse/tables/{shard}/db/T_local` and
  `{replica}` (the servers' macros), the rest of the definition unchanged;
  `non_replicated_deduplication_window` becomes
  `replicated_deduplication_window`, so a retried batch (same insert
  deduplication token) is still dropped.
- `db.T ON CLUSTER c`: a `Distributed` table with the original name, so every
  insert and query of the code reads and writes the cluster unchanged. Its
  sharding key is `cityHash64` of the sorting key: rows that Replacing/
  Aggregating/Summing merges must collapse have equal sorting keys, so they
  land on the same shard, where those merges (and FINAL) can see them.
- Materialized views read the local source table and write the local target,
  on every node; views, ALTERs and DROPs get `ON CLUSTER`.

A statement of a shape this module does not know raises ClusterDDLError: a
new DDL file must be taught here, never applied to one node only.
"""

from __future__ import annotations

import re

LOCAL_SUFFIX = "_local"


class ClusterDDLError(ValueError):
    """A DDL statement whose cluster form this module cannot derive."""


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_CREATE_TABLE = re.compile(
    rf"^CREATE TABLE IF NOT EXISTS (?P<db>{_NAME})\.(?P<table>{_NAME})\s*\(", re.DOTALL
)
_ENGINE = re.compile(rf"\bENGINE = (?P<kind>{_NAME})?MergeTree\b(?P<args>\([^()]*\))?")
_MV_ENGINE = re.compile(
    rf"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<db>{_NAME})\.(?P<view>{_NAME})\s+ENGINE\b"
)
_MV_TO = re.compile(
    rf"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<db>{_NAME})\.(?P<view>{_NAME}) "
    rf"TO (?P<tdb>{_NAME})\.(?P<target>{_NAME}) AS\b"
)
_VIEW = re.compile(rf"^CREATE VIEW IF NOT EXISTS (?P<db>{_NAME})\.(?P<view>{_NAME}) AS\b")
_ALTER = re.compile(rf"^ALTER TABLE (?P<db>{_NAME})\.(?P<table>{_NAME})\b")
_DROP = re.compile(rf"^DROP (?P<kind>VIEW|TABLE) IF EXISTS (?P<db>{_NAME})\.(?P<name>{_NAME})$")
_INSERT_SELECT = re.compile(rf"^INSERT INTO {_NAME}\.{_NAME}\s+SELECT\b")
_FROM = re.compile(rf"\bFROM (?P<db>{_NAME})\.(?P<table>{_NAME})\b")
_ORDER_BY = re.compile(r"\bORDER BY ")


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """The statement(s) that do on every node of `cluster` what `statement` does
    on one server. `statement` is one DDL statement with its database filled in
    (as `store._statements` yields it)."""
    sql = statement.strip()
    on = f"ON CLUSTER {cluster}"
    if match := _CREATE_TABLE.match(sql):
        return _table(sql, match, cluster)
    if match := _MV_ENGINE.match(sql):
        db, view = match["db"], match["view"]
        local = view + LOCAL_SUFFIX
        head = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{local} {on}"
        body = _replicated(sql[match.end() - len("ENGINE") :], db, local)
        return [
            head + "\n" + _local_sources(body),
            f"CREATE TABLE IF NOT EXISTS {db}.{view} {on} AS {db}.{local}\n"
            f"ENGINE = Distributed({cluster}, {db}, {local})",
        ]
    if match := _MV_TO.match(sql):
        db, view, tdb, target = match["db"], match["view"], match["tdb"], match["target"]
        rest = sql[match.end() :]
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{view} {on} "
            f"TO {tdb}.{target}{LOCAL_SUFFIX} AS" + _local_sources(rest)
        ]
    if match := _VIEW.match(sql):
        return [
            f"CREATE VIEW IF NOT EXISTS {match['db']}.{match['view']} {on} AS" + sql[match.end() :]
        ]
    if match := _ALTER.match(sql):
        db, table, rest = match["db"], match["table"], sql[match.end() :]
        return [
            f"ALTER TABLE {db}.{table}{LOCAL_SUFFIX} {on}{rest}",
            f"ALTER TABLE {db}.{table} {on}{rest}",
        ]
    if match := _DROP.match(sql):
        kind, db, name = match["kind"], match["db"], match["name"]
        if kind == "VIEW":
            return [f"DROP VIEW IF EXISTS {db}.{name} {on}"]
        return [
            f"DROP TABLE IF EXISTS {db}.{name} {on}",
            f"DROP TABLE IF EXISTS {db}.{name}{LOCAL_SUFFIX} {on}",
        ]
    if _INSERT_SELECT.match(sql):
        return [sql]  # once, through the Distributed tables: the data is cluster-wide
    raise ClusterDDLError(f"no cluster form for the statement starting {sql.splitlines()[0]!r}")


def _table(sql: str, match: re.Match[str], cluster: str) -> list[str]:
    db, table = match["db"], match["table"]
    local = table + LOCAL_SUFFIX
    opening = match.end() - 1
    closing = _closing_paren(sql, opening)
    columns, rest = sql[opening : closing + 1], sql[closing + 1 :]
    replicated = _replicated(rest, db, local)
    key = _sorting_key(rest, f"{db}.{table}")
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster}\n{columns}{replicated}",
        f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{local}\n"
        f"ENGINE = Distributed({cluster}, {db}, {local}, cityHash64({key}))",
    ]


def _replicated(definition: str, db: str, local: str) -> str:
    """`definition` (from ENGINE on) with its MergeTree engine replicated."""
    engine = _ENGINE.search(definition)
    if engine is None:
        raise ClusterDDLError(f"{db}.{local}: no MergeTree engine to replicate")
    args = engine["args"]
    inner = args[1:-1].strip() if args else ""
    path = f"'/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'"
    replicated = (
        f"ENGINE = Replicated{engine['kind'] or ''}MergeTree({path}{', ' + inner if inner else ''})"
    )
    out = definition[: engine.start()] + replicated + definition[engine.end() :]
    return out.replace("non_replicated_deduplication_window", "replicated_deduplication_window")


def _sorting_key(definition: str, table: str) -> str:
    """The ORDER BY expression list, without its outer parentheses."""
    found = _ORDER_BY.search(definition)
    if found is None:
        raise ClusterDDLError(f"{table}: a table without ORDER BY has no sharding key")
    start = found.end()
    if definition[start] == "(":
        return definition[start + 1 : _closing_paren(definition, start)].strip()
    return re.split(r"\s", definition[start:], maxsplit=1)[0]


def _local_sources(select: str) -> str:
    """A materialized view's SELECT reading the local table: it fires on the
    inserts a node's local table receives, not on the Distributed one's."""
    return _FROM.sub(lambda m: f"FROM {m['db']}.{m['table']}{LOCAL_SUFFIX}", select, count=1)


def _closing_paren(text: str, opening: int) -> int:
    """Index of the parenthesis closing the one at `opening` (DDL has no
    parentheses inside string literals that this would miscount: the tests
    run it on every file)."""
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    raise ClusterDDLError("unbalanced parentheses")
