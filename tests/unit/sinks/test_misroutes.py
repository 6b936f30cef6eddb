"""Misroute rate per department in the KPI round: from stored routings and department
answers, at the round's injected clock, equal to the reference `misroute_rates`."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from tests.unit.sinks.routings import answer, envelope, store_routings
from vocflow.schemas.api import KpiValue
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.kpi import drilldown
from vocflow.sinks.kpi import queries as kpi_queries
from vocflow.sinks.kpi import service as kpi_service
from vocflow.streams.core.settings import Settings
from vocflow.streams.kpi.intervals import today
from vocflow.streams.kpi.misroute import Misroutes, misroute_rates

pytestmark = pytest.mark.clock

SETTINGS = Settings(timezone="Asia/Shanghai")
# Local midnight of a recent day (the tables' TTLs keep the rows); the round runs at 15:00.
DAY = datetime.now(ZoneInfo("Asia/Shanghai")).replace(
    hour=0, minute=0, second=0, microsecond=0
) - timedelta(days=3)
NOW = DAY + timedelta(hours=15)


def h(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


# (contact, department, routed at, channel, queue)
ROUTED = [
    ("b1", "billing", h(9), "email", None),  # billing: "not ours" -> counts
    ("b2", "billing", h(9.5), "email", None),  # answered twice -> counts once
    ("b3", "billing", h(10), "email", None),  # "not ours" from network: not billing's
    ("b4", "billing", h(11), "email", None),  # "not ours" after the round's clock
    ("b5", "billing", h(12), "email", None),  # resolved
    ("b6", "billing", h(-2), "email", None),  # routed yesterday (local): not today's
    ("n1", "network", h(8), "phone", "network_q"),  # network: "not ours" -> counts
    ("n2", "network", h(14), "phone", "network_q"),  # no answer yet
    ("m1", "billing", h(13), "email", None),  # re-routed to network below
]
REROUTED = [("m1", "network", h(13 + 1 / 6), "email", None)]
# (event, contact, answering department, at, reassigned_to)
ANSWERS = [
    ("a1", "b1", "billing", h(10), "network"),
    ("a2", "b2", "billing", h(11), "sales_retention"),
    ("a3", "b2", "billing", h(11 + 1 / 12), "sales_retention"),
    ("a4", "b3", "network", h(10.5), "billing"),
    ("a5", "b4", "billing", h(16), "network"),
    ("a6", "b5", "billing", h(12.5), None),
    ("a7", "b6", "billing", h(1), "network"),
    ("a8", "n1", "network", h(9), "tech_support"),
    ("a9", "m1", "billing", h(13 + 1 / 12), "network"),  # before the re-routing: stale
]


@pytest.fixture()
def stored(store: ClickHouseStore) -> ClickHouseStore:
    store_routings(
        store, [envelope(*r) for r in ROUTED], [answer(*a) for a in ANSWERS], token="first"
    )
    # A later routing decision of m1, in a later batch: the last routing counts.
    store_routings(store, [envelope(*r) for r in REROUTED], [], token="second")
    return store


def test_misroutes_per_department_today(stored: ClickHouseStore) -> None:
    iv = today(NOW, SETTINGS.timezone)
    params = kpi_service.query_parameters(SETTINGS, "misroutes", iv, NOW)
    got = kpi_queries.run(stored, "misroutes", params)

    def groups(by: str) -> dict[str, tuple[int, int, Fraction | None]]:
        return {
            g: (k.numerator, k.denominator, k.value) for g, k in got[by]["misroute_rate"].items()
        }

    assert groups("department") == {
        "billing": (2, 5, Fraction(2, 5)),
        "network": (1, 3, Fraction(1, 3)),
    }
    assert groups("all") == {"_all": (3, 8, Fraction(3, 8))}
    assert groups("channel") == {"email": (2, 6, Fraction(1, 3)), "phone": (1, 2, Fraction(1, 2))}
    assert groups("queue") == {
        "unknown": (2, 6, Fraction(1, 3)),
        "network_q": (1, 2, Fraction(1, 2)),
    }

    # The reference formula over the same rows: today's routings, answers by the clock.
    reference = misroute_rates(
        [(c, d) for c, d, at, _, _ in ROUTED + REROUTED if at >= DAY],
        [(c, d) for _, c, d, at, to in ANSWERS if to and at <= NOW],
    )
    assert reference == {"billing": Misroutes(5, 2), "network": Misroutes(3, 1)}


def test_the_round_publishes_misroutes_for_today_only(stored: ClickHouseStore) -> None:
    doc = kpi_service.refresh(SETTINGS, stored, clock=lambda: NOW)

    assert doc.intervals["today"].by["department"].misroute_ratio == {
        "billing": KpiValue(0.4, 2, 5),
        "network": KpiValue(1 / 3, 1, 3),
    }
    assert doc.intervals["today"].by["all"].misroute_ratio == {"_all": KpiValue(3 / 8, 3, 8)}
    for label in ("15m", "60m"):
        assert all(not kpis.misroute_ratio for kpis in doc.intervals[label].by.values())

    gauge = kpi_service.GAUGES["misroute_ratio"]
    (metric,) = gauge.collect()
    assert metric.name == "vocflow_misroute_ratio"
    published = {
        (s.labels["interval"], s.labels["department"]): s.value
        for s in metric.samples
        if not s.labels["queue"] and not s.labels["channel"]
    }
    assert published == {
        ("today", "billing"): 0.4,
        ("today", "network"): 1 / 3,
        ("today", ""): 3 / 8,
    }


def test_the_misrouted_list_is_the_kpi_numerator(stored: ClickHouseStore) -> None:
    got = drilldown.contacts(
        SETTINGS,
        stored,
        {"kpi": "misrouted", "interval": "today", "department": "billing"},
        clock=lambda: NOW,
    )
    assert got["kpi"] == "misroute_ratio"
    assert got["kpi_totals"] == {"numerator": 2, "denominator": 5, "value": 0.4}
    assert sorted(c["contact_id"] for c in got["contacts"]) == ["b1", "b2"]
