"""Live interval KPIs (sinks/kpi/live.py): the last round's sums plus the deltas
stored since equal, exactly, a round run after the same inserts.

The facts stream is test_exact_kpis's: a facts stage that is killed now and then
(versions re-emitted with other content, versions below those already out,
duplicates), through the real row path, hook and DDL in embedded chdb.
"""

from __future__ import annotations

import random
from datetime import datetime

import orjson
import pytest

from tests.unit.sinks.test_exact_kpis import COLUMNS, SETTINGS, TOKEN_PREFIX, inputs, worker
from vocflow.schemas.api import KpiDocument
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import CONTACT_FACTS, LatestFactDeltas
from vocflow.sinks.kpi import live as live_kpis
from vocflow.sinks.kpi import queries
from vocflow.sinks.kpi.service import API_NAMES, LiveKpis
from vocflow.streams.kpi.contributions import COUNTERS
from vocflow.streams.kpi.models import ContactFact, Interval, from_ms

pytestmark = pytest.mark.clock

INTERVAL_API_NAMES = {API_NAMES[k] for k in queries.interval_kpis()}
FACT_API_NAMES = {API_NAMES[k] for k in ("fcr", "repeat_contact_rate")}


def interval_values(doc: KpiDocument, names: set[str]) -> dict:
    """label -> by -> KPI name -> group -> (value, numerator, denominator)."""
    return {
        label: {
            by: {
                name: {g: (k.value, k.numerator, k.denominator) for g, k in groups.items()}
                for name, groups in kpis.by_name().items()
                if name in names
            }
            for by, kpis in body.by.items()
        }
        for label, body in doc.intervals.items()
    }


class Sink:
    """Facts through the real hook and insert, in batches, with a LiveKpis listening."""

    def __init__(self, store: ClickHouseStore, messages: list[bytes]) -> None:
        self.store, self.messages, self.pos = store, messages, 0
        self.hook = LatestFactDeltas()
        self.live = LiveKpis(store)
        self.hook.listeners.append(self.live.deltas.on_stored)

    def insert_until(self, end: int, batch: int = 60) -> None:
        while self.pos < end:
            hi = min(end, self.pos + batch)
            rows = [CONTACT_FACTS.to_row(self.messages[o], 0, o) for o in range(self.pos, hi)]
            rows = self.hook(self.store, rows, SETTINGS)
            if rows:
                self.store.insert("contact_facts", COLUMNS, rows, f"{TOKEN_PREFIX}{self.pos}")
            self.pos = hi


def middle_of(messages: list[bytes]) -> datetime:
    """A time in the thick of the stream, so every interval holds contacts."""
    times = sorted(
        t
        for m in messages
        if (t := ContactFact.from_dict(orjson.loads(m)).last_activity_ms) is not None
    )
    return from_ms(times[len(times) * 3 // 4])


@pytest.mark.parametrize("seed", [1, 2])
def test_live_interval_kpis_equal_a_round_after_the_same_inserts(
    store: ClickHouseStore, seed: int
) -> None:
    messages = worker(inputs(seed, 2_000), random.Random(seed))
    at = middle_of(messages)
    sink = Sink(store, messages)
    sink.insert_until(len(messages) // 3)
    before = sink.live.refresh(SETTINGS, lambda: at)
    assert sink.live.live(SETTINGS) is None  # nothing stored since the round

    for end in (len(messages) // 2, len(messages) * 2 // 3, len(messages)):
        sink.insert_until(end)  # each update adds only what is new since the last
        live = sink.live.live(SETTINGS)
        assert live is not None
    fresh = LiveKpis(store).refresh(SETTINGS, lambda: at)

    got = interval_values(live, INTERVAL_API_NAMES)
    want = interval_values(fresh, INTERVAL_API_NAMES)
    assert got == want
    # ... which the round before the inserts was not (so this test can fail) ...
    assert interval_values(before, INTERVAL_API_NAMES) != want
    # ... while the KPIs read from the facts wait for the next round.
    assert interval_values(live, FACT_API_NAMES) == interval_values(before, FACT_API_NAMES)
    assert live.generated_at == before.generated_at
    assert sink.live.live(SETTINGS) is None  # published already


def test_withdrawn_deltas_stop_the_live_path_until_the_next_round(
    store: ClickHouseStore,
) -> None:
    messages = worker(inputs(3, 600), random.Random(3))
    at = middle_of(messages)
    sink = Sink(store, messages)
    sink.insert_until(200)
    sink.live.refresh(SETTINGS, lambda: at)
    sink.insert_until(300)
    sink.live.deltas.on_stored(store, None)  # as LatestFactDeltas.forget tells it
    sink.insert_until(400)
    assert sink.live.live(SETTINGS) is None
    sink.live.refresh(SETTINGS, lambda: at)
    sink.insert_until(500)
    assert sink.live.live(SETTINGS) is not None


def test_another_stores_deltas_are_not_added(store: ClickHouseStore) -> None:
    live = LiveKpis(store)
    live.deltas.on_stored(object(), [[from_ms(0), "", "", "", "c", 1, 0, 0, *[1] * 21]])  # type: ignore[arg-type]
    assert live.deltas.mark() == 0


# ---- the measure expressions ----------------------------------------------------


def test_every_interval_kpi_has_its_three_columns_read_from_kpis_sql() -> None:
    terms = live_kpis.measure_terms()
    assert set(terms) == {
        f"{k}__{part}"
        for k in queries.interval_kpis()
        for part in ("numerator", "denominator", "population")
    }
    assert terms["nps__numerator"] == (
        live_kpis.Term(1, "nps_promoters"),
        live_kpis.Term(-1, "nps_detractors"),
    )
    assert terms["volume__denominator"] == (live_kpis.Term(1, None),)


def test_an_expression_it_cannot_evaluate_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot evaluate 'avg\\(wait_ms\\)'"):
        live_kpis._terms("asa", "avg(wait_ms)")
    with pytest.raises(ValueError, match="nonsense is not a kpi_deltas counter"):
        live_kpis._terms("asa", "sum(nonsense)")


def cell(minute_ms: int, queue: str, **counts: int) -> list:
    values = [counts.get(c, 0) for c in COUNTERS]
    return [from_ms(minute_ms), queue, "phone", "", "c1", 1, 0, 0, *values]


def test_cells_are_added_per_group_with_constants_once_and_outside_minutes_ignored() -> None:
    iv = Interval(60_000, 180_000, "t")
    rows = [
        {"by": "all", "grp": "_all", "volume__numerator": 5, "volume__denominator": 1,
         "volume__population": 5, "nps__numerator": 2, "nps__denominator": 4,
         "nps__population": 4},
    ]  # fmt: skip
    cells = [
        cell(60_000, "q1", contacts=2, nps_answers=1, nps_detractors=1),
        cell(120_000, "", contacts=1),
        cell(180_000, "q1", contacts=100),  # the interval's end: outside
    ]
    out = live_kpis.add_sums(rows, live_kpis.sum_cells(cells, iv, {}))
    by = {(r["by"], r["grp"]): r for r in out}
    assert by["all", "_all"]["volume__numerator"] == 8
    assert by["all", "_all"]["volume__denominator"] == 1
    assert by["all", "_all"]["nps__numerator"] == 1
    assert by["all", "_all"]["nps__denominator"] == 5
    assert by["queue", "q1"]["volume__numerator"] == 2
    assert by["queue", "q1"]["volume__denominator"] == 1  # a new group: the constant once
    assert by["queue", "unknown"]["volume__numerator"] == 1
    assert by["channel", "phone"]["volume__population"] == 3
    assert rows[0]["volume__numerator"] == 5  # the round's rows are left as they were
