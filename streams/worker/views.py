"""Live views of compacted topics: customer profiles and the tagging rules.

Each worker reads the whole topic (no consumer group, every partition, from
the beginning) and then keeps following it, like a Kafka Streams GlobalKTable.
That is what a lookup keyed by something other than the stream's key needs
(profiles by customer_id while contacts are keyed by contact_id), and what a
hot-reloaded config needs (every worker must see every version). Faust's
GlobalTable does this too but has recovery hangs in faust-streaming; this is
small enough to own.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from vocflow.schemas import CustomerProfile
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import kafka_clients
from vocflow.streams.privacy.pseudonyms import safe_id
from vocflow.streams.stages.deptcorpus import Prepared, gate_score
from vocflow.streams.stages.deptmodel import DeptModel, ModelFileError, parse_model
from vocflow.streams.stages.rules import RulesError, RuleSet, parse_rules

if TYPE_CHECKING:
    from vocflow.streams.core.settings import Settings

log = logging.getLogger(__name__)

RecordFn = Callable[[bytes | None, bytes | None, dict[str, bytes], int], None]


class CompactedView:
    """Feeds every record of `topic` to `on_record(key, value, headers, offset)`."""

    def __init__(self, conn: Settings | str, topic: str, on_record: RecordFn) -> None:
        self.topic = topic
        self._conn = conn
        self._on_record = on_record
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    async def start(self) -> None:
        # No group: the consumer is assigned every partition of the topic.
        self._consumer = kafka_clients.aio_consumer(
            self._conn, self.topic, group_id=None, auto_offset_reset="earliest"
        )
        await self._consumer.start()
        tps: set[TopicPartition] = set()
        for _ in range(100):
            tps = self._consumer.assignment()
            if tps:
                break
            await asyncio.sleep(0.1)
        if not tps:
            raise RuntimeError(f"topic {self.topic} has no partitions (was it created?)")
        ends = await self._consumer.end_offsets(list(tps))
        self._task = asyncio.create_task(self._run(ends), name=f"view:{self.topic}")

    async def _run(self, ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        pending = {tp for tp, end in ends.items() if end > 0}
        if not pending:
            self.loaded.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    headers = {k: v for k, v in (r.headers or ())}
                    try:
                        self._on_record(r.key, r.value, headers, r.offset)
                    except Exception:  # one bad record must not stop the view
                        log.exception("view %s: record at offset %d failed", self.topic, r.offset)
            if pending:
                for tp in list(pending):
                    if await self._consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
                if not pending:
                    self.loaded.set()
                    log.info("view %s loaded", self.topic)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


class ProfileStore(Mapping[str, CustomerProfile]):
    """customer_id -> latest profile; a tombstone (null value) deletes.

    Indexed by the id events carry after normalize: a CRM id that is a phone
    number or e-mail address is stored under its pseudonym (and the profile
    carries the pseudonym), so the number never leaves enrichment.

    Every customer's profile is held, so each is kept as its validated JSON
    (~150 bytes) and parsed again when a contact of that customer is enriched
    (a couple of microseconds, for the ~20 % of events with text): as pydantic
    models, 20,000 profiles took 23 MB, and an operator has millions."""

    def __init__(self) -> None:
        self._json: dict[str, bytes] = {}

    def __getitem__(self, customer_id: str) -> CustomerProfile:
        return CustomerProfile.model_validate_json(self._json[customer_id])

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._json

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)

    def on_record(self, key: bytes | None, value: bytes | None, _h: dict, offset: int) -> None:
        if value is None:
            if key is not None:
                self._json.pop(safe_id(key.decode("utf-8", "replace")), None)
            return
        try:
            profile = CustomerProfile.model_validate_json(value)
        except ValidationError as exc:
            metrics.VIEW_REJECTS.labels("customers.profiles").inc()
            log.warning(
                "customers.profiles@%d ignored: %d validation error(s), first: %s",
                offset,
                exc.error_count(),
                exc.errors()[0]["msg"],
            )
            return
        cid = safe_id(profile.customer_id)
        if cid != profile.customer_id:
            profile = profile.model_copy(update={"customer_id": cid})
        self._json[cid] = profile.model_dump_json(exclude_defaults=True).encode()


class RulesHolder:
    """The rules in force: the file at start-up, then each valid version pushed to
    config.rules. An invalid version is rejected with file/line/reason in the
    log and a metric; the rules in force stay."""

    def __init__(self, initial: RuleSet) -> None:
        self.current = initial
        metrics.RULES_INFO.labels(initial.version).set(1)

    def on_record(
        self, _key: bytes | None, value: bytes | None, headers: dict, offset: int
    ) -> None:
        if value is None:
            return
        filename = headers.get("filename", b"").decode("utf-8", "replace") or "config.rules"
        try:
            rules = parse_rules(
                value.decode("utf-8"), filename=f"{filename} (config.rules@{offset})"
            )
        except (RulesError, UnicodeDecodeError) as exc:
            metrics.RULES_RELOADS.labels("rejected").inc()
            log.error("rules version rejected, keeping %s: %s", self.current.version, exc)
            return
        metrics.RULES_INFO.labels(self.current.version).set(0)
        self.current = rules
        metrics.RULES_INFO.labels(rules.version).set(1)
        metrics.RULES_RELOADS.labels("applied").inc()
        log.info("rules %s from %s in force", rules.version, filename)


class ModelHolder:
    """The department model in force: the shipped file at start-up, then each
    version pushed to config.models that is valid *and* scores at least as well
    as the one in force on the fixed holdout split (`deptcorpus.gate_score`,
    rules + model). A worse or broken version is rejected with a log line and a
    metric; the model in force stays, so a bad training run cannot reach the
    departments.

    The holdout is prepared lazily (segmentation of a few hundred texts, well
    under a second) and only when a version arrives."""

    def __init__(
        self,
        initial: DeptModel | None,
        rules: Callable[[], RuleSet],
        holdout: Callable[[], Prepared],
    ) -> None:
        self.current = initial
        self._rules = rules
        self._holdout_fn = holdout
        self._holdout: Prepared | None = None
        if initial is not None:
            metrics.MODEL_INFO.labels(initial.version).set(1)

    def _prepared(self) -> Prepared:
        if self._holdout is None:
            self._holdout = self._holdout_fn()
        return self._holdout

    def offer(self, model: DeptModel) -> tuple[bool, str]:
        """Apply `model` unless it scores worse than the one in force; (applied, why)."""
        current = self.current
        if current is not None and model.version == current.version:
            return False, f"model {model.version} is already in force"
        holdout = self._prepared()
        rules = self._rules()
        new = gate_score(holdout, rules, model)
        old = gate_score(holdout, rules, current)
        was = current.version if current is not None else "rules alone"
        if new < old - 1e-12:
            metrics.MODEL_RELOADS.labels("worse").inc()
            why = (
                f"model {model.version} rejected: holdout macro F1 {new:.4f} < {old:.4f} "
                f"of {was}; keeping {was}"
            )
            log.error(why)
            return False, why
        if current is not None:
            metrics.MODEL_INFO.labels(current.version).set(0)
        self.current = model
        metrics.MODEL_INFO.labels(model.version).set(1)
        metrics.MODEL_RELOADS.labels("applied").inc()
        why = f"model {model.version} in force (holdout macro F1 {new:.4f}, was {old:.4f})"
        log.info(why)
        return True, why

    def on_record(
        self, _key: bytes | None, value: bytes | None, headers: dict, offset: int
    ) -> None:
        if value is None:
            return
        try:
            model = parse_model(
                zlib.decompress(value).decode("utf-8"), filename=f"config.models@{offset}"
            )
        except (ModelFileError, UnicodeDecodeError, zlib.error) as exc:
            metrics.MODEL_RELOADS.labels("invalid").inc()
            log.error("department model version rejected: %s", exc)
            return
        self.offer(model)
