"""Stand-ins for the transactional loops' producers (worker/txloop.py): what
each committed transaction held, without a broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition


class FakeProducer:
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


class RoutedProducer:
    """The plain producer of contacts.routed: records what it delivered."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        self.sent.append((topic, key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


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
