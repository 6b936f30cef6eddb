"""Read-only SQL for people (`/api/sql`, `vocflow sql`): one SELECT, bounded.

The embedded ClickHouse can be opened by one process only, so the process that
owns it answers other people's queries. Those queries must never change data,
read the host's files or starve the pipeline, so the guard is two-fold:

* **Here**, before ClickHouse sees it: exactly one statement, a ``SELECT`` or
  ``WITH ... SELECT``, with no ``FORMAT``, ``INTO OUTFILE`` or ``SETTINGS``
  clause. This gives a clear reason for the usual mistakes; it is not the
  security boundary (a tokenizer is not ClickHouse's parser).
* **In ClickHouse**, on every query: ``readonly=1`` (no writes, no DDL, no
  setting changes by the query itself, no ``file()``/``url()`` table
  functions), ``max_execution_time`` and ``max_result_rows`` with
  ``result_overflow_mode='break'``. Checked on chdb 4.4 (engine 26.9), see
  tests/unit/sinks/test_readonly_sql.py: all four are honoured; ``break`` stops
  at a block boundary (up to 65,536 rows), so the row limit is also cut exactly
  here. clickhouse-connect sends a query's settings as a ``SETTINGS`` clause to
  chdb, per query.

Queries run on a client handle of their own, never the sink's: chdb keeps
``SET`` state per handle (clickhouse-connect restores it after a command, and
cannot restore it once ``readonly`` is on), and a slow query must not hold the
store's lock that the sink's inserts and the KPI rounds take. One query at a
time: a second caller is told to retry (429), not queued behind a slow one.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from vocflow.sinks.clickhouse.store import ClickHouseStore, client_arguments

MAX_SQL_CHARS = 100_000
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CODE = re.compile(r"Code: (\d+)\.")
_CALL = re.compile(r"\s*\(")
_TIMEOUT_CODES = {"159", "160"}


class SqlRefused(ValueError):
    """Not one read-only SELECT; the message says why (HTTP 400)."""


class SqlFailed(Exception):
    """ClickHouse refused or stopped the query; the message says why (HTTP 400)."""


class SqlBusy(Exception):
    """Another query is running on the read-only handle (HTTP 429)."""


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": self.rows,
            "row_count": len(self.rows),
            "truncated": self.truncated,
            "elapsed_ms": self.elapsed_ms,
        }


def check_select(sql: str) -> str:
    """``sql`` without a trailing ``;`` if it is one SELECT / WITH ... SELECT;
    else SqlRefused with the reason."""
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused(f"the query is longer than {MAX_SQL_CHARS} characters")
    words, calls, end = _top_level(sql)
    body = sql[:end].rstrip() if end is not None else sql.strip()
    if not words:
        raise SqlRefused("no statement: give one SELECT")
    first = words[0].upper()
    if first not in ("SELECT", "WITH"):
        raise SqlRefused(
            f"only SELECT (or WITH ... SELECT) is served here, not {first}: "
            "the pipeline's data is read-only for queries"
        )
    upper = [w.upper() for w in words]
    for i, word in enumerate(upper):
        following = upper[i + 1] if i + 1 < len(upper) else ""
        call = calls[i]  # `format(...)` is a function, `FORMAT JSON` a clause
        if word == "INTO" and following == "OUTFILE":
            raise SqlRefused("INTO OUTFILE is not allowed: results come back in the answer")
        if word == "FORMAT" and not call:
            raise SqlRefused("FORMAT is chosen by the caller (table, --json, --csv), not in SQL")
        if word == "SETTINGS" and not call:
            raise SqlRefused("SETTINGS are fixed by the server (read-only, row and time limits)")
    return body.strip()


class ReadOnlySql:
    """Runs checked SELECTs on the store's database with a handle of its own."""

    def __init__(self, store: ClickHouseStore, max_rows: int, max_seconds: float) -> None:
        self.store = store
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._client: Client | None = None

    def settings(self) -> dict[str, Any]:
        """Per-query ClickHouse settings; ``readonly`` last, after the limits it freezes.

        ``join_use_nulls``: a view's own ``SETTINGS`` clause is silently ignored under
        ``readonly=1``, and `routed_items` needs NULLs for "not resolved" (without them
        a LEFT JOIN fills 1970-01-01 and every item reads as resolved). So every query
        here joins with NULLs, as SQL does."""
        return {
            "max_result_rows": self.max_rows + 1,
            "result_overflow_mode": "break",
            "max_execution_time": self.max_seconds,
            "join_use_nulls": 1,
            "readonly": 1,
        }

    def run(self, sql: str) -> SqlResult:
        """Check and run ``sql``; blocking (ClickHouse): call it on a thread."""
        statement = check_select(sql)
        if not self._lock.acquire(blocking=False):
            raise SqlBusy("another SQL query is running here; try again when it is done")
        try:
            client = self._connect()
            started = time.monotonic()
            try:
                result = client.query(statement, settings=self.settings())
            except Exception as exc:
                raise SqlFailed(self._reason(exc)) from None
            elapsed_ms = round((time.monotonic() - started) * 1000)
        finally:
            self._lock.release()
        rows = [list(r) for r in result.result_rows[: self.max_rows]]
        return SqlResult(
            columns=list(result.column_names),
            types=[t.name for t in result.column_types],
            rows=rows,
            truncated=len(result.result_rows) > self.max_rows,
            elapsed_ms=elapsed_ms,
        )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _connect(self) -> Client:
        if self._client is None:
            args = client_arguments(self.store.dsn, self.store.auth)
            self._client = clickhouse_connect.get_client(**args, database=self.store.database)
        return self._client

    def _reason(self, exc: Exception) -> str:
        text = self.store.redact(str(exc)).strip()
        code = _CODE.search(text)
        line = next((ln for ln in text.splitlines() if "DB::Exception" in ln), text)
        line = line[line.find("DB::Exception") :] if "DB::Exception" in line else line
        line = line.removeprefix("DB::Exception: ").strip()[:500]
        if code and code.group(1) in _TIMEOUT_CODES:
            return (
                f"the query ran longer than {self.max_seconds:g} s "
                f"(VOCFLOW_SQL_MAX_SECONDS) and was stopped"
            )
        return f"ClickHouse refused the query: {line}"


def _top_level(sql: str) -> tuple[list[str], list[bool], int | None]:
    """The words outside strings, quoted names and comments, whether each is
    followed by ``(`` (a function call), and where the statement ends (the
    index of a final ``;``). A ``;`` followed by more than space and comments
    is a second statement: SqlRefused."""
    words: list[str] = []
    calls: list[bool] = []
    end: int | None = None
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if end is not None and not ch.isspace() and not sql.startswith(("--", "/*", "#"), i):
            raise SqlRefused("one statement only: remove everything after the first ';'")
        if sql.startswith("--", i) or ch == "#":
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            if close < 0:
                raise SqlRefused("a /* comment is not closed")
            i = close + 2
        elif ch in "'\"`":
            i = _skip_quoted(sql, i)
        elif ch == ";":
            end = i if end is None else end
            i += 1
        elif ch.isalpha() or ch == "_":
            match = _WORD.match(sql, i)
            assert match is not None
            words.append(match.group())
            i = match.end()
            calls.append(_CALL.match(sql, i) is not None)
        else:
            i += 1
    return words, calls, end


def _skip_quoted(sql: str, start: int) -> int:
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:  # '' inside a string
                i += 2
                continue
            return i + 1
        i += 1
    raise SqlRefused(f"a {quote} quote is not closed")
