"""The HTTP API documents (`vocflow.schemas.api`).

A document refreshed from embedded ClickHouse survives its own JSON byte for
byte; a small document's JSON is pinned to the bytes the hand-built dict of
before the models gave (key order, nulls, float and time formats: the
wallboard, Grafana and scripts read them); the published JSON Schema accepts
what the worker serves.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from faust.utils import json as faust_json
from jsonschema import Draft202012Validator

from tests.unit.kpi import gen
from tests.unit.kpi.test_kpi_sql import DAY, contacts, fold_with_deltas, store_facts
from vocflow.schemas import ShiftRecord
from vocflow.schemas.api import (
    AgentSection,
    IntervalKpis,
    KpiDocument,
    KpiValue,
    NowKpis,
    PipelineStats,
)
from vocflow.schemas.publish import JSON_DIR
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import AGENT_EVENTS, AGENT_SHIFTS
from vocflow.sinks.kpi import queries as kpi_queries
from vocflow.sinks.kpi import service as kpi_service
from vocflow.streams.core.settings import Settings
from vocflow.streams.kpi.models import Interval, Kpi

pytestmark = pytest.mark.clock

SEED = 20261207
SETTINGS = Settings(
    timezone="Asia/Shanghai", sl_threshold_seconds=20, sl_threshold_by_queue={"tech_q": 10}
)
TOP_KEYS = ["generated_at", "timezone", "sl_threshold_seconds", "intervals", "now", "agents"]
AGENT_KEYS = [
    "occupancy_by_team",
    "occupancy",
    "utilization_by_team",
    "utilization",
    "adherence_by_team",
    "adherence",
]


def schema_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((JSON_DIR / name).read_text(encoding="utf-8")))


# ---- a small document, every value chosen -------------------------------------

SMALL_NOW = datetime(2025, 3, 10, 10, 7, 30, 500_000, tzinfo=ZoneInfo("Asia/Shanghai"))


def small_results(iv: Interval | None, at: datetime) -> kpi_queries.Result:
    """What the named queries might answer: a few groups, one zero denominator."""
    if iv is None:
        return {
            "all": {"queue_depth": {"_all": Kpi.of("queue_depth", "count", 3, 1)}},
            "queue": {
                "queue_depth": {
                    "billing_q": Kpi.of("queue_depth", "count", 2, 1),
                    "tech_q": Kpi.of("queue_depth", "count", 1, 1),
                },
                "oldest_waiting": {"billing_q": Kpi.of("oldest_waiting", "seconds", 95_400, 1)},
            },
        }
    return {
        "all": {
            "volume": {"_all": Kpi.of("volume", "count", 12, 1)},
            "service_level": {"_all": Kpi.of("service_level", "ratio", 7, 10)},
            "asa": {"_all": Kpi.of("asa", "seconds", 123_456, 9)},
            "csat": {"_all": Kpi.of("csat", "ratio", 0, 0)},
            "nps": {"_all": Kpi.of("nps", "score", -1, 3)},
        },
        "queue": {
            "service_level": {
                "billing_q": Kpi.of("service_level", "ratio", 5, 6),
                "tech_q": Kpi.of("service_level", "ratio", 2, 4),
            },
        },
        "channel": {"volume": {"phone": Kpi.of("volume", "count", 12, 1)}},
    }


TEAM_KPIS = {
    "15m": {
        "utilization_by_team": {"t1": {"value": 0.5, "numerator": 450, "denominator": 900}},
        "utilization": {"_all": {"value": 0.5, "numerator": 450, "denominator": 900}},
        "adherence_by_team": {},
        "adherence": {},
    }
}


def small_document() -> KpiDocument:
    """compute() over `small_results`; team KPIs only for 15m (the others lack them)."""
    return kpi_service.compute(SETTINGS, small_results, [], SMALL_NOW, TEAM_KPIS)


def _empty(names: Any) -> str:
    return ",".join(f'"{n}":{{}}' for n in names)


# The bytes the hand-built dict gave for `small_document` (checked against commit
# 8838709, before the models): the format every reader of /api/kpis depends on.
SMALL_SHA256 = "51def53ad5c21ba967932bcdb73a63d5760458f3798c6b6eb0171e725ac29721"  # 6197 bytes
# KPIs added since (empty in every section of the small document): without them the
# bytes are those above; with them, these.
ADDED_SINCE = ("misroute_ratio",)
SMALL_NOW_SHA256 = "00faa1a69ff9f47ef4e8756131e8cfbe5b2a83516c561bb6303e212ef67c386b"  # 6437 bytes
SMALL_15M_ALL = (
    '"all":{"contacts":{"_all":{"value":12.0,"numerator":12,"denominator":1}},'
    '"service_level_ratio":{"_all":{"value":0.7,"numerator":7,"denominator":10}},'
    '"asa_seconds":{"_all":{"value":13.717333333333332,"numerator":123456,"denominator":9}},'
    + _empty(list(IntervalKpis.model_fields)[3:9])
    + ',"csat_ratio":{"_all":{"value":null,"numerator":0,"denominator":0}},'
    '"nps":{"_all":{"value":-33.333333333333336,"numerator":-1,"denominator":3}},'
    + _empty(list(IntervalKpis.model_fields)[11:])
    + "}"
)
SMALL_HEAD = (
    '{"generated_at":"2025-03-10T10:07:30.500000+08:00","timezone":"Asia/Shanghai",'
    '"sl_threshold_seconds":20.0,"intervals":{"15m":{"start":"2025-03-10T02:00:00+00:00",'
    '"end":"2025-03-10T02:15:00+00:00","by":{' + SMALL_15M_ALL + ',"queue":{"contacts":{},'
    '"service_level_ratio":{"billing_q":{"value":0.8333333333333334,"numerator":5,'
    '"denominator":6},"tech_q":{"value":0.5,"numerator":2,"denominator":4}},'
)
SMALL_TAIL = (
    '"now":{"all":{"queue_depth":{"_all":{"value":3.0,"numerator":3,"denominator":1}},'
    '"oldest_waiting_seconds":{},"backlog":{}},"queue":{"queue_depth":{"billing_q":'
    '{"value":2.0,"numerator":2,"denominator":1},"tech_q":{"value":1.0,"numerator":1,'
    '"denominator":1}},"oldest_waiting_seconds":{"billing_q":{"value":95.4,"numerator":95400,'
    '"denominator":1}},"backlog":{}},"channel":{"queue_depth":{},"oldest_waiting_seconds":{},'
    '"backlog":{}},"department":{"queue_depth":{},"oldest_waiting_seconds":{},"backlog":{}}},'
    '"agents":{"15m":{"occupancy_by_team":{},"occupancy":{},"utilization_by_team":{"t1":'
    '{"value":0.5,"numerator":450,"denominator":900}},"utilization":{"_all":{"value":0.5,'
    '"numerator":450,"denominator":900}},"adherence_by_team":{},"adherence":{}},'
    '"60m":{"occupancy_by_team":{},"occupancy":{}},'
    '"today":{"occupancy_by_team":{},"occupancy":{}}}}'
)


def test_the_small_document_has_the_wire_format_of_the_hand_built_dict() -> None:
    wire = faust_json.dumps(small_document().model_dump()).decode()
    assert wire.startswith(SMALL_HEAD)
    assert wire.endswith(SMALL_TAIL)
    assert hashlib.sha256(wire.encode()).hexdigest() == SMALL_NOW_SHA256
    before = wire
    for name in ADDED_SINCE:
        before = before.replace(f',"{name}":{{}}', "")
    assert hashlib.sha256(before.encode()).hexdigest() == SMALL_SHA256
    body = json.loads(wire)
    assert list(body) == TOP_KEYS
    assert [(s["start"], s["end"]) for s in body["intervals"].values()] == [
        ("2025-03-10T02:00:00+00:00", "2025-03-10T02:15:00+00:00"),
        ("2025-03-10T01:08:00+00:00", "2025-03-10T02:08:00+00:00"),
        ("2025-03-09T16:00:00+00:00", "2025-03-10T16:00:00+00:00"),
    ]
    assert body["intervals"]["today"]["by"]["all"] == body["intervals"]["15m"]["by"]["all"]
    assert orjson.dumps(body).decode() == wire  # the wallboard's encoder, same bytes


def test_typed_access_reads_the_same_numbers() -> None:
    doc = small_document()
    assert doc.generated_at == SMALL_NOW and doc.sl_threshold_seconds == 20.0
    hour = doc.intervals["60m"]
    assert hour.start.isoformat() == "2025-03-10T01:08:00+00:00"
    assert hour.by["queue"].service_level_ratio["tech_q"] == KpiValue(0.5, 2, 4)
    assert hour.by["all"].csat_ratio["_all"].value is None
    assert hour.by["department"].by_name() == {n: {} for n in IntervalKpis.model_fields}
    assert doc.now["queue"].oldest_waiting_seconds["billing_q"].value == 95.4
    assert list(doc.now["all"].by_name()) == ["queue_depth", "oldest_waiting_seconds", "backlog"]
    assert doc.agents["15m"].utilization_by_team == {"t1": KpiValue(0.5, 450, 900)}
    assert doc.agents["60m"] == AgentSection(occupancy_by_team={}, occupancy={})
    assert doc.agents["60m"].adherence is None
    only = doc.now["queue"].only({"tech_q"})
    assert only == NowKpis(
        queue_depth={"tech_q": KpiValue(1.0, 1, 1)}, oldest_waiting_seconds={}, backlog={}
    )
    with pytest.raises(ValueError, match="frozen"):
        doc.timezone = "UTC"  # type: ignore[misc]


def test_kpi_names_are_the_service_and_gauge_names() -> None:
    interval_names = [kpi_service.API_NAMES[n] for n in kpi_service.INTERVAL_KPIS]
    assert list(IntervalKpis.model_fields) == interval_names
    assert list(NowKpis.model_fields) == [kpi_service.API_NAMES[n] for n in kpi_service.NOW_KPIS]
    assert set(kpi_service.GAUGES) == {*IntervalKpis.model_fields, *NowKpis.model_fields}


# ---- a document refreshed from ClickHouse ---------------------------------------


def load_day(store: ClickHouseStore) -> datetime:
    """Contacts (re-emitted, replayed batches) and a day of agents and shifts on DAY."""
    scenario = contacts(SEED, 4000)
    _, messages = fold_with_deltas(scenario.events, scenario.annotations)
    store_facts(store, messages, random.Random(SEED))
    fixed, gen.DAY = gen.DAY, DAY
    try:
        agents = gen.agents(SEED, 16)
    finally:
        gen.DAY = fixed
    rows = [
        list(AGENT_EVENTS.to_row(e.model_dump_json().encode(), 0, i))
        for i, e in enumerate(agents.agent_events)
    ]
    store.insert("agent_events", AGENT_EVENTS.columns, rows, "agent-events")
    shifts = [
        ShiftRecord(
            agent_id=agent,
            team=team,
            start=DAY + timedelta(milliseconds=start),
            end=DAY + timedelta(milliseconds=end),
            activity=activity,
            published_at=DAY - timedelta(days=1),
        )
        for agent, team, start, end, activity in agents.shifts
    ]
    rows = [
        list(AGENT_SHIFTS.to_row(s.model_dump_json().encode(), 0, i)) for i, s in enumerate(shifts)
    ]
    store.insert("agent_shifts", AGENT_SHIFTS.columns, rows, "agent-shifts")
    return DAY + timedelta(hours=11, minutes=7, seconds=30, milliseconds=500)


@pytest.fixture()
def refreshed(store: ClickHouseStore) -> KpiDocument:
    now = load_day(store)
    return kpi_service.refresh(SETTINGS, store, clock=lambda: now)


def test_a_refreshed_document_round_trips_through_its_json(refreshed: KpiDocument) -> None:
    wire = faust_json.dumps(refreshed.model_dump())  # what /api/kpis answers
    assert orjson.dumps(refreshed.model_dump()) == wire  # what the wallboard streams
    again = KpiDocument.model_validate_json(wire)  # what `vocflow kpis` reads
    assert again == refreshed
    assert faust_json.dumps(again.model_dump()) == wire
    body = orjson.loads(wire)
    assert list(body) == TOP_KEYS
    assert list(body["intervals"]) == list(body["agents"]) == ["15m", "60m", "today"]
    for section in body["intervals"].values():
        assert list(section) == ["start", "end", "by"]
        assert list(section["by"]) == ["all", "queue", "channel", "department"]
        assert all(list(kpis) == list(IntervalKpis.model_fields) for kpis in section["by"].values())
    assert all(list(agents) == AGENT_KEYS for agents in body["agents"].values())
    today = refreshed.intervals["today"].by
    assert (
        today["all"].contacts["_all"].numerator
        == sum(k.numerator for k in today["queue"].contacts.values())
        > 100
    )
    assert refreshed.agents["today"].utilization_by_team  # the shifts reached the document
    assert refreshed.agents["today"].occupancy["_all"].denominator > 0
    assert list(schema_validator("api_kpis.v1.json").iter_errors(body)) == []


def test_the_published_schema_holds_the_wire_rules() -> None:
    validator = schema_validator("api_kpis.v1.json")
    body = orjson.loads(faust_json.dumps(small_document().model_dump()))
    assert list(validator.iter_errors(body)) == []
    bad = json.loads(json.dumps(body))
    bad["agents"]["60m"]["utilization"] = None  # absent, never null
    bad["intervals"]["15m"]["by"]["all"]["contacts"]["_all"]["numerator"] = 1.5
    bad["now"]["floor"] = bad["now"].pop("queue")
    del bad["intervals"]["60m"]["by"]["all"]["nps"]
    assert sorted("/".join(map(str, e.absolute_path)) for e in validator.iter_errors(bad)) == [
        "agents/60m/utilization",
        "intervals/15m/by/all/contacts/_all/numerator",
        "intervals/60m/by/all",
        "now",
    ]


def test_the_stats_document_keeps_in_and_leaves_out_absent_clickhouse_keys() -> None:
    stats = PipelineStats.model_validate(
        {
            "stages": {"normalize": {"in": 5, "out": {"t.contacts.events": 4}, "dlq": 1}},
            "dlq_by_reason": {"normalize/invalid_json": 1},
        }
    )
    assert stats.stages["normalize"].in_ == 5
    head = (
        b'{"stages":{"normalize":{"in":5,"out":{"t.contacts.events":4},"dlq":1}},'
        b'"dlq_by_reason":{"normalize/invalid_json":1}'
    )
    assert orjson.dumps(stats.model_dump()) == head + b"}"
    rows = stats.model_copy(update={"clickhouse": {"contact_events": 7}})
    assert orjson.dumps(rows.model_dump()) == head + b',"clickhouse":{"contact_events":7}}'
    failed = stats.model_copy(update={"clickhouse_error": "Code: 60. no table"})
    assert orjson.dumps(failed.model_dump()) == head + b',"clickhouse_error":"Code: 60. no table"}'
    assert PipelineStats.model_validate_json(orjson.dumps(rows.model_dump())) == rows
    validator = schema_validator("api_stats.v1.json")
    assert list(validator.iter_errors(rows.model_dump())) == []
    assert list(validator.iter_errors({**stats.model_dump(), "clickhouse": None}))
