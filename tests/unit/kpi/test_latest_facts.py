"""`LatestFacts`: one contacts.facts message a contact and batch, whose KPI deltas
are exactly the sum of the deltas of the versions it stands for."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from tests.unit.kpi import gen
from vocflow.streams.kpi.contributions import COUNTERS, LatestFacts, delta
from vocflow.streams.kpi.fold import FoldConfig, fold
from vocflow.streams.kpi.models import ContactFact

CONFIG = FoldConfig(short_abandon_ms_by_queue=gen.SHORT_BY_QUEUE)


def _cells(deltas: list[Any]) -> dict[tuple[Any, ...], int]:
    out: Counter[tuple[Any, ...]] = Counter()
    for *key, counters in deltas:
        for name, n in zip(COUNTERS, counters, strict=True):
            out[(*tuple(key), name)] += n
    return {k: n for k, n in out.items() if n}


def test_batches_of_a_hostile_stream_sum_to_every_version_sent() -> None:
    events = gen.contacts(7, 3_000).events  # late, duplicated, out of order
    facts: dict[str, ContactFact] = {}
    every: list[tuple[bytes, dict[str, Any]]] = []  # each version, as sent one by one
    batched: list[tuple[bytes, dict[str, Any]]] = []
    latest = LatestFacts()
    for n, event in enumerate(events, 1):
        previous = facts.get(event.contact_id)
        updated = fold(previous, event, CONFIG)
        if updated is not None:
            facts[event.contact_id] = updated
            latest.add(previous, updated)
            every.append((event.contact_id.encode(), {
                **updated.to_dict(),
                "kpi_deltas": [[*k, c] for k, c in delta(previous, updated)],
            }))  # fmt: skip
        if n % 97 == 0 or n == len(events):
            taken = latest.take()
            keys = [k for k, _ in taken]
            assert len(keys) == len(set(keys))
            batched += [(k, orjson.loads(v)) for k, v in taken]
    assert len(latest) == 0 and latest.take() == []
    assert len(every) > len(batched) > 0
    sent: Counter[tuple[Any, ...]] = Counter()
    for _, m in every:
        sent.update(_cells(m["kpi_deltas"]))
    summed: Counter[tuple[Any, ...]] = Counter()
    for _, m in batched:
        summed.update(_cells(m["kpi_deltas"]))
    assert {k: n for k, n in summed.items() if n} == {k: n for k, n in sent.items() if n}
    last: dict[bytes, dict[str, Any]] = {}
    for key, m in every:
        last[key] = m
    final = {k: m | {"kpi_deltas": None} for k, m in batched}  # later batches win
    assert final == {k: m | {"kpi_deltas": None} for k, m in last.items()}
