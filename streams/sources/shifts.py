"""`vocflow shifts load FILE...`: schedules exported by the WFM system -> agents.shifts.

All or nothing: every row of every file is validated, and one agent's
segments must not overlap, before the first record is sent, so a broken
export never leaves half a schedule in Kafka. Loading again is safe: the key
``agent_id|start`` makes a re-published segment replace the old one in the
compacted topic and in ClickHouse. A corrected segment that *moved* gets a
new key; readers let the later published segment win where two overlap
(``published_at``, set here for the whole load).
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from kafka.errors import KafkaError
from pydantic import ValidationError

from vocflow.schemas.source.shift import ShiftRecord
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.admin import KafkaUnavailable
from vocflow.streams.core.settings import Settings
from vocflow.streams.sources.replay import Line, ReplayError, data_format, parse_jsonl

FILE_COLUMNS = ("agent_id", "team", "start", "end", "activity")
REQUIRED_COLUMNS = ("agent_id", "start", "end")
MAX_REPORTED = 50
SEND_TIMEOUT_S = 30.0


class ShiftFileError(Exception):
    """Nothing was published; ``problems`` are ``file:line: reason`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        super().__init__(
            f"{len(problems)} problem(s) in the schedule, nothing was published:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )


@dataclass(frozen=True)
class LoadedShift:
    where: str  # file:line, for error messages
    record: ShiftRecord


def parse_csv(stream: IO[str]) -> Iterator[Line]:
    """Header row of FILE_COLUMNS (any order, team and activity optional);
    an empty cell means "not set"."""
    reader = csv.DictReader(stream)
    columns = list(reader.fieldnames or [])
    if not columns:
        yield Line(1, error="empty file (no header line)")
        return
    unknown = [c for c in columns if c not in FILE_COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or missing or duplicated:
        problems = [
            f"{label} column(s) {', '.join(names)}"
            for label, names in (
                ("unknown", unknown),
                ("missing", missing),
                ("duplicated", duplicated),
            )
            if names
        ]
        yield Line(1, error=f"{'; '.join(problems)}; the columns are {', '.join(FILE_COLUMNS)}")
        return
    for row in reader:
        if None in row:
            yield Line(reader.line_num, error="more cells than header columns")
            continue
        data = {k: v for k, v in row.items() if v not in (None, "")}
        if data:  # a row of empty cells is a blank line
            yield Line(reader.line_num, data)


def _lines(path: Path) -> Iterator[Line]:
    kind = data_format(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as stream:
        if kind == "csv":
            yield from parse_csv(stream)
            return
        for line in parse_jsonl(stream):
            extra = sorted(set(line.data or {}) - set(FILE_COLUMNS))
            if extra:
                yield Line(line.number, error=f"unknown field(s) {', '.join(extra)}")
            else:
                yield line


def _validation_problem(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False, include_input=False):
        message = e["msg"].removeprefix("Value error, ")
        parts.append(f"{'.'.join(map(str, e['loc']))}: {message}" if e["loc"] else message)
    return "; ".join(parts)


def read_shifts(paths: Sequence[Path], timezone: str, published_at: datetime) -> list[LoadedShift]:
    """Every segment of every file, validated; naive times are ``timezone``
    wall-clock time. Raises ShiftFileError with all problems found."""
    problems: list[str] = []
    loaded: list[LoadedShift] = []
    context = {"timezone": timezone}
    for path in paths:
        try:
            for line in _lines(path):
                where = f"{path}:{line.number}"
                if line.error is not None:
                    problems.append(f"{where}: {line.error}")
                    continue
                data = {**(line.data or {}), "published_at": published_at}
                try:
                    record = ShiftRecord.model_validate(data, context=context)
                except ValidationError as exc:
                    problems.append(f"{where}: {_validation_problem(exc)}")
                    continue
                loaded.append(LoadedShift(where, record))
        except ReplayError as exc:
            problems.append(str(exc))
        except UnicodeDecodeError as exc:
            problems.append(f"{path}: not UTF-8 text ({exc.reason})")
        except (OSError, EOFError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
    problems.extend(_overlaps(loaded))
    if problems:
        raise ShiftFileError(problems)
    return loaded


def _overlaps(loaded: list[LoadedShift]) -> list[str]:
    """Within one load, overlapping segments of one agent are a mistake in the
    export, not a correction: report them instead of letting one win."""
    by_agent: dict[str, list[LoadedShift]] = {}
    for item in loaded:
        by_agent.setdefault(item.record.agent_id, []).append(item)
    problems = []
    for agent, items in sorted(by_agent.items()):
        items.sort(key=lambda i: (i.record.start, i.record.end))
        latest = items[0]
        for item in items[1:]:
            if item.record.start < latest.record.end:
                problems.append(
                    f"{item.where}: agent {agent}: segment from {item.record.start.isoformat()} "
                    f"overlaps the segment of {latest.where} (until "
                    f"{latest.record.end.isoformat()})"
                )
            if item.record.end > latest.record.end:
                latest = item
    return problems


def shift_key(record: ShiftRecord) -> bytes:
    """``agent_id|start`` with start in UTC, so the same instant written with
    another offset still replaces the segment."""
    start = record.start.astimezone(UTC).isoformat(timespec="milliseconds")
    return f"{record.agent_id}|{start}".encode()


def publish_shifts(
    settings: Settings,
    records: Sequence[ShiftRecord],
    on_acked: Callable[[int], object] = lambda n: None,
) -> None:
    """Send every record and wait for Kafka's acknowledgements (acks=all)."""
    topic = T.Topics(settings).name(T.SHIFTS)
    try:
        producer = kafka_clients.producer(settings, enable_idempotence=True, linger_ms=5)
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot publish shifts: {exc}") from None
    try:
        futures = [
            producer.send(
                topic,
                key=shift_key(r),
                value=r.model_dump_json(exclude_none=True).encode(),
            )
            for r in records
        ]
        producer.flush(timeout=SEND_TIMEOUT_S)
        for future in futures:
            try:
                future.get(timeout=SEND_TIMEOUT_S)
            except KafkaError as exc:
                raise KafkaUnavailable(
                    f"Kafka did not acknowledge a shift segment ({type(exc).__name__}: {exc}); "
                    "load the file again: re-published segments replace themselves"
                ) from None
            on_acked(1)
    finally:
        producer.close(timeout=SEND_TIMEOUT_S)
