"""ClickHouse access: one client from one URL, versioned DDL, idempotent batch inserts.

`chdb:///path` is the embedded engine (only one process may open a path, so
the process that owns it serves the data to others over HTTP);
`http(s)://host:8123` is a server, reached with the credentials and TLS
settings of `ServerAuth`. The chdb backend is synchronous: callers on an event
loop run these methods in a thread.

`client_arguments` is the one place a URL and its credentials become
clickhouse-connect's keywords. It does not hand the URL over as a `dsn`:
clickhouse-connect ignores a DSN's scheme (`https://host:8123` would be plain
HTTP to port 8123) and reads credentials, a database and server settings out
of it; spelled out, the scheme decides TLS and the password only travels in
its secret setting.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from vocflow.sinks.clickhouse.cluster import cluster_statements
from vocflow.streams.core.faults import clickhouse_reachable

if TYPE_CHECKING:
    from vocflow.streams.core.settings import Settings

log = logging.getLogger(__name__)

_DDL_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class ClickHouseError(Exception):
    """ClickHouse is unreachable, locked by another process, or refused a statement."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every DDL file, in version order."""
    found = []
    for entry in resources.files("vocflow.sinks.clickhouse").joinpath("ddl").iterdir():
        match = _DDL_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


@dataclass(frozen=True)
class ServerAuth:
    """Who the store is to a ClickHouse server and whom it trusts (http(s):// only).

    The password stays a SecretStr up to the client call, so this object's repr,
    and any log or error that shows it, prints asterisks.
    """

    user: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    verify: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerAuth:
        return cls(
            user=settings.clickhouse_user,
            password=settings.clickhouse_password,
            ca_file=settings.clickhouse_ca_file,
            verify=settings.clickhouse_verify,
        )


def client_arguments(dsn: str, auth: ServerAuth | None = None) -> dict[str, Any]:
    """The keywords of `clickhouse_connect.get_client` for `dsn` and `auth`.

    chdb:// passes through as a DSN (the embedded engine has no credentials).
    http(s):// is taken apart here: the scheme chooses TLS, the port defaults
    to ClickHouse's (8123 / 8443), and certificate checks (chain and host name,
    done by urllib3 when `verify` is on) are explicit. A URL holding
    credentials, a path or a query is refused (settings refuse it first); the
    message does not repeat the URL, which may hold a password.
    """
    auth = auth or ServerAuth()
    if dsn.startswith("chdb://"):
        return {"dsn": dsn}
    parts = urlsplit(dsn)
    if parts.scheme not in ("http", "https"):
        raise ClickHouseError("a ClickHouse URL starts with chdb://, http:// or https://")
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or not parts.hostname:
        raise ClickHouseError(
            "a ClickHouse server URL is http(s)://host[:port]; credentials go in "
            "clickhouse_user and clickhouse_password, the database in clickhouse_database"
        )
    secure = parts.scheme == "https"
    arguments: dict[str, Any] = {
        "interface": parts.scheme,
        "host": parts.hostname,
        "port": parts.port or (8443 if secure else 8123),
        "username": auth.user,
        "password": auth.password.get_secret_value() if auth.password else "",
    }
    if secure:
        arguments["verify"] = auth.verify
        arguments["ca_cert"] = str(auth.ca_file) if auth.ca_file else None
    return arguments


class ClickHouseStore:
    """A client bound to one database; thread-safe for the sink's single writer thread."""

    def __init__(
        self,
        dsn: str,
        database: str,
        auth: ServerAuth | None = None,
        cluster: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.database = database
        self.auth = auth or ServerAuth()
        # None: one server or the embedded engine, the DDL files as written; a
        # name: their ON CLUSTER / Replicated / Distributed form (cluster.py).
        self.cluster = cluster
        # Reentrant: a caller may hold `lock` around its own insert or query
        # to make a bookkeeping step atomic with it (the live KPIs, sinks/kpi/live.py).
        self._lock = threading.RLock()
        try:
            self._client: Client = clickhouse_connect.get_client(**client_arguments(dsn, self.auth))
        except ClickHouseError:
            raise
        except Exception as exc:
            message = self.redact(str(exc))
            if embedded_path_locked(dsn):
                raise ClickHouseError(
                    f"the embedded ClickHouse at {dsn} is open in another process (a running "
                    "worker or `vocflow sink`); ask that process's HTTP API or stop it first"
                ) from None
            raise ClickHouseError(
                f"cannot connect to ClickHouse at {dsn}: {message[:300]}"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> ClickHouseStore:
        """The store every process opens: URL, database and credentials from settings."""
        return cls(
            settings.clickhouse_dsn,
            settings.clickhouse_database,
            ServerAuth.from_settings(settings),
            settings.clickhouse_cluster,
        )

    def __repr__(self) -> str:
        return f"ClickHouseStore({self.dsn!r}, {self.database!r}, user={self.auth.user!r})"

    def redact(self, text: str) -> str:
        """`text` without the password: a server or proxy may echo a request's
        credentials in an error, and these errors reach logs and the terminal."""
        secret = self.auth.password.get_secret_value() if self.auth.password else ""
        return text.replace(secret, "**********") if secret else text

    def migrate(self) -> list[str]:
        """Apply DDL files not yet recorded; safe to run at every start-up and concurrently."""
        db = self.database
        with self._lock:
            on_cluster = f" ON CLUSTER {self.cluster}" if self.cluster else ""
            self._client.command(f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster}")
            for statement in self.ddl(
                f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
                "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
                "ENGINE = ReplacingMergeTree ORDER BY version"
            ):
                self._client.command(statement)
            done = {
                row[0]
                for row in self._client.query(
                    f"SELECT version FROM {db}.schema_migrations FINAL"
                ).result_rows
            }
            applied = []
            for version, name, sql in migrations():
                if version in done:
                    continue
                for statement in _statements(sql.replace("{db}", db)):
                    for command in self.ddl(statement):
                        self._client.command(command)
                self._client.insert(
                    "schema_migrations",
                    [[version, name]],
                    database=db,
                    column_names=["version", "name"],
                )
                applied.append(name)
        if applied:
            log.info("applied ClickHouse DDL: %s", ", ".join(applied))
        return applied

    @property
    def lock(self) -> threading.RLock:
        """Held by every insert and query: hold it around a call and a step of your own
        so no other insert or query comes between them."""
        return self._lock

    def ddl(self, statement: str) -> list[str]:
        """`statement` as this store runs it: unchanged on one server, its cluster
        form when `cluster` is set."""
        return cluster_statements(statement, self.cluster) if self.cluster else [statement]

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], token: str
    ) -> None:
        """Insert one batch; a retry with the same `token` is dropped by ClickHouse."""
        clickhouse_reachable()
        settings: dict[str, Any] = {"insert_deduplication_token": token}
        if self.cluster:
            # Into the Distributed table synchronously: the sink commits its Kafka
            # offsets after this returns, so the rows must be on the shards by
            # then, not queued on this node's disk (the old name of
            # distributed_foreground_insert, which servers before 23.x lack).
            settings["insert_distributed_sync"] = 1
        with self._lock:
            self._client.insert(
                table,
                rows,
                database=self.database,
                column_names=list(columns),
                settings=settings,
            )

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        clickhouse_reachable()
        with self._lock:
            return list(self._client.query(sql, parameters=parameters).result_rows)

    def query_dicts(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict]:
        clickhouse_reachable()
        with self._lock:
            result = self._client.query(sql, parameters=parameters)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def close(self) -> None:
        with self._lock:
            self._client.close()


def embedded_path_locked(dsn: str) -> bool:
    """True when another process holds the embedded engine's lock on `<path>/status`.

    chdb prints the lock error to stderr and raises a generic one, so ask the
    lock itself (ClickHouse takes an exclusive flock on that file).
    """
    if not dsn.startswith("chdb://"):
        return False
    status = Path(dsn.removeprefix("chdb://").split("?", 1)[0]) / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _statements(sql: str) -> list[str]:
    """Split a DDL file on ';' at line ends, dropping comment-only pieces."""
    parts = []
    for chunk in re.split(r";\s*(?:\n|$)", sql):
        body = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--"))
        if body.strip():
            parts.append(body.strip())
    return parts
