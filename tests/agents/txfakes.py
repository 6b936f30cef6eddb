"""Stand-ins for the transactional loops' producers (worker/txloop.py): what
each committed transaction held, without a broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition


class FakeBatch:
    """aiokafka's BatchBuilder as `kafka_clients.send_batched` uses it."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes | None) -> object:
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        return None


class BatchApi:
    """The batch half of aiokafka's producer API, over the fake's `send`."""

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        for key, value in batch.records:
            await self.send(topic, value=value, key=key)  # type: ignore[attr-defined]
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class FakeProducer(BatchApi):
    """Records each committed transaction: (records, offsets)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.committed: list[tuple[list[tuple[str, bytes | None, bytes | None]], dict]] = []
        self._records: list[tuple[str, bytes | None, bytes | None]] = []
        self._offsets: dict = {}

    def transaction(self) -> FakeProducer:
        return self

    async def __aenter__(self) -> None:
        self._records, self._offsets = [], {}

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and self.fail:
            raise RuntimeError("broker refused the commit")
        if exc_type is None:
            self.committed.append((self._records, self._offsets))

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None) -> None:  # fmt: skip
        self._records.append((topic, key, value))

    async def send_offsets_to_transaction(self, offsets: dict, group_id: str) -> None:
        self._offsets = {**offsets, "group": group_id}

    async def stop(self) -> None:
        return None


class RoutedProducer(BatchApi):
    """The plain producer of contacts.routed: records what it delivered."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        self.sent.append((topic, key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def by_topic(
    sent: list[tuple[str, bytes | None, bytes | None]],
) -> dict[str, list[tuple[bytes | None, bytes | None]]]:
    """What was sent, per topic in the order sent: records go out as one batch per
    topic partition (kafka_clients.send_batched), so only the order within a
    partition is Kafka's, not the order across topics."""
    out: dict[str, list[tuple[bytes | None, bytes | None]]] = {}
    for topic, key, value in sent:
        out.setdefault(topic, []).append((key, value))
    return out


def records(
    tp: TopicPartition, values: list[bytes], first_offset: int = 0, key: bytes = b"k"
) -> list[SimpleNamespace]:
    """Consumer records of one partition, as aiokafka's getmany gives them."""
    return [
        SimpleNamespace(
            topic=tp.topic,
            partition=tp.partition,
            key=key,
            value=v,
            offset=first_offset + i,
            timestamp=1795392000000,
        )
        for i, v in enumerate(values)
    ]
