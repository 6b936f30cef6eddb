"""`vocflow replay FILE...`: publish recorded ContactEvents (JSONL / CSV, optionally .gz).

Used to back-fill history, to load-test with real traffic shapes, and to
re-run a day after a fix. Reference: docs/ingest.md (section "Replay").

Exactly once into Kafka, also after ``kill -9``
------------------------------------------------
A checkpoint per (file, topic, cluster) lives in ``<data dir>/replay/``. It
holds the file's path, size and mtime (a changed file is refused instead of
resumed at the wrong line), the last line whose events Kafka acknowledged,
and the topic's end offsets at that moment. Every record carries two
headers, ``vocflow-replay`` (the checkpoint key) and ``vocflow-replay-line``.

The checkpoint alone would give at-least-once: a crash after Kafka's ack but
before the checkpoint write would resend those lines. So on resume the
records written since the checkpoint's offsets are read back, and lines
found there (by the two headers) are skipped. Kafka's own log is the truth;
the checkpoint only says where to start looking. Within a run the producer
is idempotent (``acks=all``), so its internal retries add no copies either.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.producer.future import FutureRecordMetadata
from tqdm import tqdm

from vocflow.schemas import ContactEvent, Payload
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import Settings
from vocflow.streams.sources.publisher import EventValidationError, Publisher, validate_event

log = logging.getLogger("vocflow.replay")

HEADER_KEY = "vocflow-replay"
HEADER_LINE = "vocflow-replay-line"
COMMIT_EVERY_EVENTS = 1000
COMMIT_EVERY_S = 1.0
MAX_REPORTED_INVALID = 50
"""Per file; the rest are counted, so a wholly broken file does not flood the terminal."""

EVENT_COLUMNS = frozenset(ContactEvent.model_fields) - {"payload"}
PAYLOAD_COLUMNS = frozenset(f"payload.{name}" for name in Payload.model_fields)


class ReplayError(Exception):
    """Replay cannot go on; the message says which file and what to do."""


class Interrupted(Exception):
    """SIGINT/SIGTERM: stop after checkpointing what Kafka has acknowledged."""


# --------------------------------------------------------------------- reading


def data_format(path: Path) -> str:
    """``jsonl`` or ``csv`` from the file name (``.gz`` is looked through)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    raise ReplayError(
        f"{path}: unknown format; name it .jsonl, .ndjson, .json or .csv (optionally .gz)"
    )


@dataclass
class Line:
    """One input record: its line number (the record's last line for CSV) and content."""

    number: int
    data: dict[str, Any] | None = None
    error: str | None = None


def parse_jsonl(stream: IO[str]) -> Iterator[Line]:
    """One JSON object per line; blank lines are skipped (they still count as lines)."""
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Line(number, error=f"bad_json: {exc}")
            continue
        if not isinstance(data, dict):
            yield Line(number, error=f"not_an_object: a {type(data).__name__}, not a JSON object")
            continue
        yield Line(number, data)


def check_csv_header(columns: list[str] | None, where: str) -> None:
    """Refuse the whole file for a wrong header: otherwise every line would be 'invalid'."""
    if not columns:
        raise ReplayError(f"{where}:1: empty CSV file (no header line)")
    unknown = [c for c in columns if c not in EVENT_COLUMNS and c not in PAYLOAD_COLUMNS]
    if unknown:
        raise ReplayError(
            f"{where}:1: unknown CSV column(s) {', '.join(map(repr, unknown))}; columns are "
            f"ContactEvent fields ({', '.join(sorted(EVENT_COLUMNS))}) and payload.<field> "
            f"({', '.join(sorted(PAYLOAD_COLUMNS))})"
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ReplayError(f"{where}:1: duplicated CSV column(s) {', '.join(duplicated)}")


def parse_csv(stream: IO[str], where: str = "<csv>") -> Iterator[Line]:
    """Header = ContactEvent field names, ``payload.<field>`` for payload fields.

    An empty cell means "not set". Values stay strings: the model converts
    them (``"39"`` -> 39.0 for ``payload.wait_seconds``, ``"true"`` for ``fcr``)
    and reports what it cannot.
    """
    reader = csv.DictReader(stream)
    check_csv_header(list(reader.fieldnames or []), where)
    for row in reader:
        number = reader.line_num
        if None in row:
            yield Line(number, error="bad_format: more cells than header columns")
            continue
        data: dict[str, Any] = {}
        payload: dict[str, Any] = {}
        for column, value in row.items():
            if value is None or value == "":
                continue
            if column.startswith("payload."):
                payload[column.removeprefix("payload.")] = value
            else:
                data[column] = value
        if payload:
            data["payload"] = payload
        if not data:
            continue  # an empty row (",,,,")
        yield Line(number, data)


class DataFile:
    """An input file opened for text reading; ``position()`` is in compressed bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.format = data_format(path)
        self._raw = path.open("rb")
        binary: IO[bytes] = self._raw
        if path.name.lower().endswith(".gz"):
            binary = gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
        newline = "" if self.format == "csv" else None
        self.text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline=newline)

    def lines(self) -> Iterator[Line]:
        try:
            if self.format == "csv":
                yield from parse_csv(self.text, str(self.path))
            else:
                yield from parse_jsonl(self.text)
        except UnicodeDecodeError as exc:
            raise ReplayError(f"{self.path}: not UTF-8 text ({exc.reason})") from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ReplayError(f"{self.path}: cannot read: {exc}") from None

    def position(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self.text.close()
        self._raw.close()


def to_event(line: Line) -> tuple[ContactEvent | None, str | None]:
    """The validated event, or the reason the line is invalid (never echoing values)."""
    if line.error is not None:
        return None, line.error
    try:
        return validate_event(line.data or {}), None
    except EventValidationError as exc:
        return None, "invalid: " + "; ".join(
            f"{loc}: {msg}" if loc else msg for loc, msg in exc.errors
        )


# ------------------------------------------------------------------ checkpoint


@dataclass
class Checkpoint:
    """Progress of one file into one topic of one cluster."""

    path: str
    size: int
    mtime_ns: int
    topic: str
    bootstrap: str
    line: int = 0
    """Every line up to here is in Kafka (or was invalid)."""
    offsets: dict[int, int] = field(default_factory=dict)
    """Topic end offsets when ``line`` was written: where to look for later records."""
    events: int = 0
    invalid: int = 0
    complete: bool = False

    def save(self, directory: Path) -> None:
        """Atomic (write, fsync, rename): a crash leaves the old or the new checkpoint."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{checkpoint_key(Path(self.path), self.topic, self.bootstrap)}.json"
        tmp = target.with_suffix(".tmp")
        data = asdict(self)
        data["offsets"] = {str(p): o for p, o in self.offsets.items()}
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)


def checkpoint_key(path: Path, topic: str, bootstrap: str) -> str:
    """Same file to another topic or cluster is another replay, with its own checkpoint."""
    return hashlib.sha256(f"{path}\x1f{topic}\x1f{bootstrap}".encode()).hexdigest()[:24]


def load_checkpoint(directory: Path, path: Path, topic: str, bootstrap: str) -> Checkpoint | None:
    target = directory / f"{checkpoint_key(path, topic, bootstrap)}.json"
    if not target.exists():
        return None
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
        data["offsets"] = {int(p): int(o) for p, o in data.get("offsets", {}).items()}
        return Checkpoint(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise ReplayError(
            f"{target}: unreadable checkpoint of {path} ({exc}); delete it or use --restart "
            "(then lines already sent are sent again)"
        ) from None


def file_identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def resume_point(cp: Checkpoint | None, path: Path) -> Checkpoint | None:
    """The checkpoint if it still describes this file; ReplayError if the file changed."""
    if cp is None:
        return None
    size, mtime_ns = file_identity(path)
    if (cp.size, cp.mtime_ns) != (size, mtime_ns):
        raise ReplayError(
            f"{path} changed since its checkpoint (size {cp.size} -> {size}, or modified); "
            f"resuming at line {cp.line} could skip or repeat events. Use --restart to replay "
            "it from the start."
        )
    return cp


# ---------------------------------------------------------------------- pacing


class Pacer:
    """Spaces sends by ``rate`` events/s or by event time divided by ``speedup``.

    Shared by all files of a run, so consecutive daily files keep their time
    line. Events out of time order are sent at once (never a negative wait).
    """

    def __init__(self, rate: float | None = None, speedup: float | None = None) -> None:
        self.rate = rate
        self.speedup = speedup
        self._start: float | None = None
        self._first: datetime | None = None
        self._sent = 0

    def delay(self, event: ContactEvent, now: float) -> float:
        """Seconds to wait before sending ``event``."""
        if self._start is None:
            self._start = now
        if self.rate:
            target = self._start + self._sent / self.rate
        elif self.speedup:
            if self._first is None:
                self._first = event.occurred_at
            target = self._start + (event.occurred_at - self._first).total_seconds() / self.speedup
        else:
            return 0.0
        return max(0.0, target - now)

    def sent(self) -> None:
        self._sent += 1


# ---------------------------------------------------------------------- replay


@dataclass
class Summary:
    files: int = 0
    events: int = 0
    invalid: int = 0
    already_in_kafka: int = 0
    files_already_done: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    stopped_early: bool = False


class Replayer:
    """Replays files in order; see the module docstring for the guarantee."""

    def __init__(
        self,
        publisher: Publisher,
        conn: Settings | str,
        checkpoint_dir: Path,
        *,
        pacer: Pacer | None = None,
        strict: bool = False,
        restart: bool = False,
        max_events: int | None = None,
        progress: bool | None = None,
        report: IO[str] | None = None,
    ) -> None:
        self.publisher = publisher
        self.topic = publisher.topic
        self.conn = conn
        # The checkpoints name the cluster by its bootstrap list.
        self.bootstrap = conn if isinstance(conn, str) else conn.bootstrap_servers
        self.checkpoint_dir = checkpoint_dir
        self.pacer = pacer or Pacer()
        self.strict = strict
        self.restart = restart
        self.max_events = max_events
        self.progress = progress
        self.report = report or sys.stderr
        self.summary = Summary()
        self._consumer: KafkaConsumer | None = None

    # ---- Kafka reads (end offsets, records written since a checkpoint)

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = kafka_clients.consumer(
                self.conn,
                client_id="vocflow-replay",
                max_partition_fetch_bytes=16 * 1024 * 1024,
            )
        return self._consumer

    def _partitions(self) -> list[TopicPartition]:
        parts = self.consumer.partitions_for_topic(self.topic)
        if not parts:
            raise ReplayError(
                f"topic {self.topic} does not exist on {self.bootstrap}; "
                "run `vocflow topics --create`"
            )
        return [TopicPartition(self.topic, p) for p in sorted(parts)]

    def end_offsets(self) -> dict[int, int]:
        ends = self.consumer.end_offsets(self._partitions())
        return {tp.partition: offset for tp, offset in ends.items()}

    def lines_in_kafka_since(self, key: str, offsets: dict[int, int]) -> set[int]:
        """Line numbers of this replay found in records after ``offsets``."""
        tps = self._partitions()
        ends = self.consumer.end_offsets(tps)
        todo = [tp for tp in tps if offsets.get(tp.partition, 0) < ends[tp]]
        found: set[int] = set()
        if not todo:
            return found
        self.consumer.assign(todo)
        for tp in todo:
            self.consumer.seek(tp, offsets.get(tp.partition, 0))
        wanted = key.encode()
        deadline = time.monotonic() + 300
        while any(self.consumer.position(tp) < ends[tp] for tp in todo):
            if time.monotonic() > deadline:
                raise ReplayError(f"could not read {self.topic} back to check for resent lines")
            for records in self.consumer.poll(timeout_ms=500).values():
                for record in records:
                    headers = dict(record.headers or [])
                    if headers.get(HEADER_KEY) == wanted and HEADER_LINE in headers:
                        found.add(int(headers[HEADER_LINE]))
        self.consumer.unsubscribe()
        return found

    # ---- one file

    def replay(self, paths: list[Path]) -> Summary:
        try:
            for path in paths:
                if self.max_events is not None and self.summary.events >= self.max_events:
                    self.summary.stopped_early = True
                    break
                self.replay_file(path)
        finally:
            if self._consumer is not None:
                self._consumer.close()
        return self.summary

    def replay_file(self, path: Path) -> None:
        path = path.resolve()
        if not path.is_file():
            raise ReplayError(f"{path}: no such file")
        data = DataFile(path)  # checks the format before anything is sent
        try:
            self._replay_open(path, data)
        finally:
            data.close()

    def _replay_open(self, path: Path, data: DataFile) -> None:
        summary = self.summary
        summary.files += 1
        key = checkpoint_key(path, self.topic, self.bootstrap)
        cp = None
        if not self.restart:
            cp = resume_point(
                load_checkpoint(self.checkpoint_dir, path, self.topic, self.bootstrap), path
            )
        if cp is not None and cp.complete:
            summary.files_already_done += 1
            self._say(f"{path}: already replayed to {self.topic} (use --restart to send it again)")
            return
        already: set[int] = set()
        if cp is not None:
            already = self.lines_in_kafka_since(key, cp.offsets)
            self._say(
                f"{path}: resuming after line {cp.line}"
                + (f" ({len(already)} later lines already in Kafka)" if already else "")
            )
        else:
            size, mtime_ns = file_identity(path)
            cp = Checkpoint(str(path), size, mtime_ns, self.topic, self.bootstrap)
        # Saved before the first send: a crash from here on is found by the read-back.
        cp.offsets = self.end_offsets()
        cp.save(self.checkpoint_dir)

        pending: list[FutureRecordMetadata] = []
        last_line = cp.line
        last_commit = time.monotonic()
        reported = 0
        bar = tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=path.name,
            disable=None if self.progress is None else not self.progress,
            file=sys.stderr,
        )

        def commit(complete: bool = False) -> None:
            nonlocal pending, last_commit
            if pending:
                self.publisher.flush()
                for fut in pending:
                    try:
                        fut.get(timeout=0)
                    except Exception as exc:
                        raise ReplayError(
                            f"Kafka did not acknowledge an event of {path} ({type(exc).__name__}:"
                            f" {exc}); rerun the same command to resume without duplicates"
                        ) from None
                pending = []
                cp.offsets = self.end_offsets()
            cp.line = last_line
            cp.complete = complete
            cp.save(self.checkpoint_dir)
            last_commit = time.monotonic()
            bar.update(data.position() - bar.n)
            bar.set_postfix(events=cp.events, invalid=cp.invalid, refresh=False)

        try:
            for line in data.lines():
                if line.number <= cp.line:
                    continue
                if line.number in already:
                    summary.already_in_kafka += 1
                    last_line = line.number
                    continue
                event, error = to_event(line)
                if event is None:
                    cp.invalid += 1
                    summary.invalid += 1
                    summary.invalid_by_reason[(error or "").split(":", 1)[0]] += 1
                    if reported < MAX_REPORTED_INVALID:
                        self._say(f"{path}:{line.number}: {error}")
                    elif reported == MAX_REPORTED_INVALID:
                        self._say(f"{path}: more invalid lines; only counted from here on")
                    reported += 1
                    if self.strict:
                        commit()  # everything before this line stays done
                        raise ReplayError(
                            f"{path}:{line.number}: {error} (--strict: stopped; lines before it "
                            "are in Kafka, fix the line and rerun to resume)"
                        )
                    last_line = line.number
                    continue
                wait = self.pacer.delay(event, time.monotonic())
                if wait > 0:
                    if pending and wait > 0.05:
                        commit()  # do not sit on unacknowledged events while pacing
                    time.sleep(wait)
                headers = [(HEADER_KEY, key.encode()), (HEADER_LINE, str(line.number).encode())]
                pending.append(self.publisher.send(event, headers=headers))
                self.pacer.sent()
                cp.events += 1
                summary.events += 1
                last_line = line.number
                if (
                    len(pending) >= COMMIT_EVERY_EVENTS
                    or time.monotonic() - last_commit >= COMMIT_EVERY_S
                ):
                    commit()
                if self.max_events is not None and summary.events >= self.max_events:
                    summary.stopped_early = True
                    commit()
                    return
            commit(complete=True)
        except KeyboardInterrupt:
            commit()
            raise Interrupted(f"{path}: interrupted after line {cp.line}") from None
        except Interrupted as exc:
            commit()
            raise Interrupted(f"{path}: interrupted after line {cp.line}") from exc
        finally:
            bar.close()

    def _say(self, message: str) -> None:
        tqdm.write(message, file=self.report)
