"""/readyz: every stage loop has partitions, has taken them over, and is caught up;
the exact JSON reason otherwise. The loop state comes from a fake consumer with
aiokafka's accessors (assignment, last_stable_offset, highwater, position)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from tests.unit.schemas.test_api import SETTINGS
from vocflow.streams.worker.readiness import LoopState, evaluate, loop_state
from vocflow.streams.worker.web import register_pages

RAW = "contacts.raw"


def state(stage: str = "normalize", **kw: Any) -> LoopState:
    values: dict[str, Any] = {
        "started": True,
        "assigned": frozenset({(RAW, 0), (RAW, 1)}),
        "taken": frozenset({0, 1}),
        "lag": 0,
    }
    values.update(kw)
    return LoopState(stage, **values)


def test_ready_when_every_loop_has_its_partitions_taken_and_is_caught_up() -> None:
    ready, body = evaluate([state(lag=10), state("voc", lag=0)], max_lag=10)
    assert ready is True
    assert body == {
        "status": "ready",
        "max_lag": 10,
        "stages": {
            "normalize": {
                "ready": True,
                "partitions": ["contacts.raw[0]", "contacts.raw[1]"],
                "lag": 10,
            },
            "voc": {"ready": True, "partitions": ["contacts.raw[0]", "contacts.raw[1]"], "lag": 0},
        },
    }


def test_each_reason_for_not_ready() -> None:
    loops = [
        state("a", started=False, assigned=frozenset(), taken=frozenset(), lag=None),
        state("b", assigned=frozenset(), taken=frozenset()),
        state("c", taken=frozenset({1})),
        state("d", lag=None),
        state("e", lag=11),
        state("f", lag=11 - 1),
    ]
    ready, body = evaluate(loops, max_lag=10)
    assert ready is False
    assert body["status"] == "not_ready"
    assert {stage: s.get("reason") for stage, s in body["stages"].items()} == {
        "a": "not started",
        "b": "no partitions assigned (more workers than partitions, or a rebalance)",
        "c": "taking over partitions [0]",
        "d": "lag not known yet (no fetch answered)",
        "e": "11 records behind (more than 10)",
        "f": None,
    }
    assert body["stages"]["f"]["ready"] is True


def test_a_stage_whose_loop_does_not_exist_yet_is_not_ready() -> None:
    """The app creates its loops one after the other: two ready ones are not enough."""
    ready, body = evaluate([state("normalize")], max_lag=10, expected=("normalize", "voc"))
    assert ready is False
    assert body["stages"]["voc"] == {
        "ready": False,
        "partitions": [],
        "lag": None,
        "reason": "not started",
    }
    assert evaluate([state("normalize")], 10, expected=("normalize",))[0] is True


def test_the_worker_waits_for_each_of_its_three_stages() -> None:
    from vocflow.streams.worker.app import STAGE_LOOPS

    assert tuple(kind.stage for kind in STAGE_LOOPS) == ("normalize", "voc", "facts")


def test_no_loops_yet_is_not_ready() -> None:
    assert evaluate([], max_lag=5) == (
        False,
        {
            "status": "not_ready",
            "max_lag": 5,
            "reason": "the stage loops have not started",
            "stages": {},
        },
    )


class FakeConsumer:
    """aiokafka's consumer accessors that /readyz reads."""

    def __init__(
        self,
        positions: dict[TopicPartition, int | None],
        lso: dict[TopicPartition, int | None],
        highwater: dict[TopicPartition, int | None] | None = None,
    ) -> None:
        self.positions, self.lso, self.hw = positions, lso, highwater or {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return self.lso.get(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.hw.get(tp)

    async def position(self, tp: TopicPartition) -> int:
        position = self.positions[tp]
        if position is None:
            raise IllegalStateError(f"Partition {tp} is not assigned")
        return position


P0, P1 = TopicPartition(RAW, 0), TopicPartition(RAW, 1)


def test_lag_is_summed_against_the_last_stable_offset() -> None:
    consumer: Any = FakeConsumer({P0: 90, P1: 40}, {P0: 100, P1: 45})
    got = asyncio.run(loop_state("normalize", consumer, {0, 1}))
    assert got == LoopState(
        "normalize", True, frozenset({(RAW, 0), (RAW, 1)}), frozenset({0, 1}), 15
    )


def test_highwater_stands_in_for_a_missing_lso_and_unknown_stays_unknown() -> None:
    consumer: Any = FakeConsumer({P0: 7, P1: 3}, {P0: -1, P1: 3}, {P0: 9})
    assert asyncio.run(loop_state("voc", consumer, {0, 1})).lag == 2
    not_fetched: Any = FakeConsumer({P0: 7, P1: 3}, {P0: 7})  # P1: no fetch answered yet
    assert asyncio.run(loop_state("voc", not_fetched, {0, 1})).lag is None
    revoked: Any = FakeConsumer({P0: None}, {P0: 7})  # position raises: unassigned meanwhile
    assert asyncio.run(loop_state("voc", revoked, {0})).lag is None
    assert asyncio.run(loop_state("voc", None, set())) == LoopState(
        "voc", False, frozenset(), frozenset(), None
    )


class FakeLoop:
    def __init__(self, stage: str, consumer: Any, partitions: dict[int, object]) -> None:
        self.stage, self.consumer, self.partitions = stage, consumer, partitions


def test_the_page_answers_200_or_503_with_the_reasons() -> None:
    app: Any = faust.App("readyz-test", broker="memory://", store="memory://", autodiscover=False)
    app.kpis, app.sink, app.settings_ = None, None, SETTINGS
    app.stage_names = ("normalize", "facts")
    register_pages(app)
    normalize = FakeLoop("normalize", FakeConsumer({P0: 5}, {P0: 5}), {0: object()})
    facts = FakeLoop("facts", FakeConsumer({P1: 3}, {P1: 4}), {1: object()})
    taking_over = FakeLoop("facts", FakeConsumer({P1: 0}, {P1: 0}), {})

    async def run() -> list[tuple[int, dict[str, Any]]]:
        answers = []
        async with TestClient(TestServer(app.web.web_app)) as client:
            for loops in ([], [normalize], [normalize, facts], [normalize, taking_over]):
                app.loops = loops
                response = await client.get("/readyz")
                answers.append((response.status, orjson.loads(await response.read())))
        return answers

    before, half, ready, taking = asyncio.run(run())
    max_lag = SETTINGS.ready_max_lag
    not_started = {"ready": False, "partitions": [], "lag": None, "reason": "not started"}
    assert before == (
        503,
        {
            "status": "not_ready",
            "max_lag": max_lag,
            "stages": {"normalize": not_started, "facts": not_started},
        },
    )
    assert half[0] == 503
    assert half[1]["stages"]["facts"] == not_started
    assert ready == (
        200,
        {
            "status": "ready",
            "max_lag": max_lag,
            "stages": {
                "normalize": {"ready": True, "partitions": ["contacts.raw[0]"], "lag": 0},
                "facts": {"ready": True, "partitions": ["contacts.raw[1]"], "lag": 1},
            },
        },
    )
    assert taking[0] == 503
    assert taking[1]["stages"]["facts"] == {
        "ready": False,
        "partitions": ["contacts.raw[1]"],
        "lag": 0,
        "reason": "taking over partitions [1]",
    }


def test_the_threshold_is_a_setting_with_a_default() -> None:
    assert SETTINGS.ready_max_lag == 5000
