"""The 1-minute aggregates and the named KPI queries (sinks/kpi/kpis.sql), on the real
embedded ClickHouse, equal the oracle-tested Python KPI functions exactly.

A seeded, shuffled, duplicated stream is folded the way the worker does it
(each new fact version carries the worker's KPI delta, which the sink ignores),
the facts go through the sink's row function and its delta hook
(`latest_fact_deltas`, with the same SL thresholds) in batches, some batches
twice with different boundaries (a sink restart) and some fact versions twice
(a worker re-emit). tests/unit/sinks/test_exact_kpis.py adds a crashing worker.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.unit.kpi import gen
from vocflow.schemas.api import IntervalKpis, KpiDocument
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import CONTACT_FACTS
from vocflow.sinks.kpi import queries as kpi_queries
from vocflow.sinks.kpi import service as kpi_service
from vocflow.streams.core.settings import Settings
from vocflow.streams.kpi import kpis as K
from vocflow.streams.kpi.contributions import COUNTERS, Targets, contributions, delta
from vocflow.streams.kpi.fold import annotate, fold
from vocflow.streams.kpi.models import HOUR_MS, ContactFact, FoldConfig, Interval, Kpi, from_ms

pytestmark = pytest.mark.clock

SEED = 20261123
CONFIG = FoldConfig(short_abandon_ms_by_queue=gen.SHORT_BY_QUEUE)
TARGETS = Targets(sl_threshold_ms=20_000, sl_threshold_ms_by_queue={"tech_q": 10_000})
SETTINGS = Settings(sl_threshold_by_queue={"tech_q": 10})  # the same thresholds
# Recent, so the tables' TTLs keep the rows (a fixed date would expire one day).
DAY = datetime.now(gen.SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
    days=3
)
DAY0 = int(DAY.timestamp() * 1000)
BYS: dict[str, K.GroupBy] = {
    "all": None,
    "queue": "queue",
    "channel": "channel",
    "department": "department",
}


def contacts(seed: int, n: int) -> gen.Scenario:
    """The generator's stream, on ``DAY``."""
    fixed, gen.DAY = gen.DAY, DAY
    try:
        return gen.contacts(seed, n)
    finally:
        gen.DAY = fixed


def fold_with_deltas(events: list[Any], annotations: dict[str, Any]) -> tuple[dict, list[bytes]]:
    facts: dict[str, ContactFact] = {}
    messages: list[bytes] = []
    for event in events:
        previous = facts.get(event.contact_id)
        new = fold(previous, event, CONFIG)
        if new is None:
            continue
        if new.department is None and event.contact_id in annotations:
            new = annotate(new, **annotations[event.contact_id]) or new
        facts[event.contact_id] = new
        body = new.to_dict()
        body["kpi_deltas"] = [[*k, v] for k, v in delta(previous, new, TARGETS)]
        messages.append(orjson.dumps(body))
    return facts, messages


def store_facts(store: ClickHouseStore, messages: list[bytes], rng: random.Random) -> None:
    # A worker re-emit: some versions again, later in the topic.
    messages = messages + rng.sample(messages, 300)
    rows = [CONTACT_FACTS.to_row(m, 0, offset) for offset, m in enumerate(messages)]
    start = 0
    while start < len(rows):
        size = rng.randint(500, 3000)
        batch = rows[start : start + size]
        if rng.random() < 0.2:  # a restart re-reads part of this batch with other boundaries
            _insert(store, [list(r) for r in batch[: size // 2]], f"replay-{start}")
        _insert(store, [list(r) for r in batch], f"batch-{start}")
        start += size


def _insert(store: ClickHouseStore, rows: list[list[Any]], token: str) -> None:
    assert CONTACT_FACTS.before_insert is not None
    rows = CONTACT_FACTS.before_insert(store, rows, SETTINGS)
    store.insert("contact_facts", CONTACT_FACTS.columns, rows, token)


@pytest.fixture(scope="module")
def scenario() -> tuple[list[ContactFact], Any]:
    s = contacts(SEED, 12_000)
    facts, messages = fold_with_deltas(s.events, s.annotations)
    return list(facts.values()), messages


@pytest.fixture()
def loaded(store: ClickHouseStore, scenario: tuple[list[ContactFact], list[bytes]]) -> Any:
    facts, messages = scenario
    store_facts(store, messages, random.Random(SEED))
    return store, facts


def plain(result: dict[str, Kpi]) -> dict[str, tuple[int, int]]:
    return {g: (k.numerator, k.denominator) for g, k in result.items()}


def sql_kpi(result: kpi_queries.Result, by: str, name: str) -> dict[str, tuple[int, int]]:
    return plain(result.get(by, {}).get(name, {}))


def test_deltas_sum_to_the_latest_contributions() -> None:
    s = contacts(SEED + 1, 3_000)
    facts, messages = fold_with_deltas(s.events, s.annotations)
    total: dict[tuple, list[int]] = {}
    for m in messages:
        for minute, q, c, d, counters in orjson.loads(m)["kpi_deltas"]:
            cell = total.setdefault((minute, q, c, d), [0] * len(COUNTERS))
            for i, n in enumerate(counters):
                cell[i] += n
    expected: dict[tuple, list[int]] = {}
    for f in facts.values():
        for key, counters in contributions(f, TARGETS).items():
            cell = expected.setdefault(key, [0] * len(COUNTERS))
            for i, n in enumerate(counters):
                cell[i] += n
    assert {k: v for k, v in total.items() if any(v)} == expected
    assert sum(v[COUNTERS.index("contacts")] for v in expected.values()) == len(facts)


def test_interval_queries_equal_the_python_kpis(loaded: Any) -> None:
    store, facts = loaded
    hours = [Interval(DAY0 + h * HOUR_MS, DAY0 + (h + 1) * HOUR_MS) for h in (8, 11, 14)]
    intervals = [
        *hours,
        Interval(DAY0 + 9 * HOUR_MS + 15 * 60_000, DAY0 + 9 * HOUR_MS + 30 * 60_000),
    ]
    intervals.append(Interval(DAY0, DAY0 + 48 * HOUR_MS))
    compared = 0
    for iv in intervals:
        got = kpi_queries.run(
            store, "interval", {"start": from_ms(iv.start_ms), "end": from_ms(iv.end_ms)}
        )
        for label, by in BYS.items():
            sl = K.service_level(facts, iv, 20, by)
            if by != "queue":
                # per-queue T: judge tech_q contacts against 10 s
                own = [f for f in facts if f.first_queue == "tech_q"]
                rest = [f for f in facts if f.first_queue != "tech_q"]
                sl = kpi_service._sum_groups(
                    (K.service_level(rest, iv, 20, by), K.service_level(own, iv, 10, by))
                )
            else:
                sl.update(
                    K.service_level([f for f in facts if f.first_queue == "tech_q"], iv, 10, by)
                )
            expected = {
                "volume": K.volume(facts, iv, by),
                "service_level": sl,
                "asa": K.asa(facts, iv, by),
                "abandonment_rate": K.abandonment_rate(facts, iv, by),
                "aht": K.aht(facts, iv, by),
                "transfer_rate": K.transfer_rate(facts, iv, by),
                "csat": K.csat(facts, iv, by),
                "nps": K.nps(facts, iv, by),
                "fcr_survey": K.fcr_survey(facts, iv, by),
                "complaint_rate": K.complaint_rate(facts, iv, by),
            }
            for name, want in expected.items():
                assert sql_kpi(got, label, name) == plain(want), (iv, label, name)
                compared += len(want)
    assert compared > 500


def test_fact_queries_equal_the_python_kpis(loaded: Any) -> None:
    store, facts = loaded
    window = 24 * HOUR_MS
    iv = Interval(DAY0 + 6 * HOUR_MS, DAY0 + 20 * HOUR_MS)
    got = kpi_queries.run(
        store,
        "fcr",
        {"start": from_ms(iv.start_ms), "end": from_ms(iv.end_ms), "window_ms": window},
    )
    for label, by in BYS.items():
        assert sql_kpi(got, label, "fcr") == plain(K.fcr(facts, iv, window, by))
        assert sql_kpi(got, label, "repeat_contact_rate") == plain(
            K.repeat_contact_rate(facts, iv, window, by)
        )
    assert sum(n for n, _ in sql_kpi(got, "all", "repeat_contact_rate").values()) > 0
    for hour in (9, 13, 17):
        at = DAY0 + hour * HOUR_MS + 123_456
        now = {"at": from_ms(at), "stale_ms": K.DEFAULT_STALE_WAIT_MS}
        waiting = kpi_queries.run(store, "waiting", now)
        backlog = kpi_queries.run(store, "backlog", {"at": from_ms(at)})
        sla = kpi_queries.run(
            store,
            "sla_breaches",
            {
                "at": from_ms(at),
                "start": from_ms(DAY0),
                "end": from_ms(at),
                "fr_sla_ms": 4 * HOUR_MS,
                "res_sla_ms": 24 * HOUR_MS,
            },
        )
        day = Interval(DAY0, at)
        for label, by in BYS.items():
            assert sql_kpi(waiting, label, "queue_depth") == plain(K.queue_depth(facts, at, by))
            assert sql_kpi(waiting, label, "oldest_waiting") == plain(
                K.oldest_waiting(facts, at, by)
            )
            assert sql_kpi(backlog, label, "backlog") == plain(K.backlog(facts, at, by))
            assert sql_kpi(sla, label, "first_response_breach_rate") == plain(
                K.first_response_breaches(facts, day, at, 4 * HOUR_MS, by)
            )
            assert sql_kpi(sla, label, "resolution_breach_rate") == plain(
                K.resolution_breaches(facts, day, at, 24 * HOUR_MS, by)
            )
        assert sql_kpi(waiting, "all", "queue_depth")


def test_every_domain_kpi_has_a_named_query() -> None:
    names = set(kpi_queries.named_queries())
    assert set(kpi_queries.interval_kpis()) == {
        "volume",
        "service_level",
        "asa",
        "abandonment_rate",
        "aht",
        "transfer_rate",
        "csat",
        "nps",
        "fcr_survey",
        "complaint_rate",
    }
    assert {"interval", "fcr", "waiting", "backlog", "sla_breaches", "misroutes"} <= names


def test_the_sql_document_equals_the_python_document(loaded: Any) -> None:
    store, facts = loaded
    settings = SETTINGS
    now = from_ms(DAY0 + 11 * HOUR_MS + 7 * 60_000 + 30_500)
    from_sql = kpi_service.compute(
        settings, lambda iv, at: kpi_service.sql_results(settings, store, iv, at), [], now
    )
    from_facts = kpi_service.compute(
        settings, lambda iv, at: kpi_service.facts_results(settings, facts, iv, at), [], now
    )
    assert from_sql == from_facts
    hour = from_sql.intervals["60m"].by
    assert hour["department"].service_level_ratio["complaints"].denominator > 0
    assert hour["all"].fcr_ratio["_all"].denominator > 0
    assert from_sql.now["queue"].queue_depth


def empty_document(**changes: Any) -> KpiDocument:
    return KpiDocument.model_validate(
        {
            "generated_at": "2026-11-23T08:00:00+00:00",
            "timezone": "Asia/Shanghai",
            "sl_threshold_seconds": 20.0,
            "intervals": {},
            "now": {},
            "agents": {},
            **changes,
        }
    )


def test_gauges_are_replaced_without_a_gap() -> None:
    def doc(groups: dict[str, float | None]) -> KpiDocument:
        kpis = {g: {"value": v, "numerator": 0, "denominator": 1} for g, v in groups.items()}
        names = {n: {} for n in IntervalKpis.model_fields} | {"asa_seconds": kpis}
        return empty_document(
            intervals={
                "15m": {
                    "start": "2026-11-23T07:45:00+00:00",
                    "end": "2026-11-23T08:00:00+00:00",
                    "by": {"queue": names},
                }
            }
        )

    gauge = kpi_service.GAUGES["asa_seconds"]

    def series() -> dict[str, float]:
        return {
            s.labels["queue"]: s.value
            for m in gauge.collect()
            for s in m.samples
            if s.labels["interval"] == "15m"
        }

    kpi_service.publish_gauges(doc({"q1": 10.0, "q2": 20.0}))
    assert series() == {"q1": 10.0, "q2": 20.0}
    kpi_service.publish_gauges(doc({"q1": 11.0, "q2": None, "q3": 5.0}))
    assert series() == {"q1": 11.0, "q3": 5.0}


def test_the_kpi_age_counts_on_our_own_clock_from_the_last_round() -> None:
    """VocflowKpiStale compares this age, not Prometheus's time() with our timestamp:
    a skew between the two hosts' clocks must not read as stale KPIs."""
    kpi_service.publish_gauges(empty_document())
    at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC).timestamp()
    assert kpi_service.kpi_age_seconds(at + 42.5) == 42.5
    assert kpi_service.REFRESHED.collect()[0].samples[0].value == at
    before = time.time()
    age = kpi_service.AGE.collect()[0].samples[0]  # what a scrape reads, computed now
    after = time.time()
    assert age.name == "vocflow_kpi_age_seconds"
    assert before - at <= age.value <= after - at
