"""Misroute rate = items a department reassigned / items routed to it."""

from __future__ import annotations

from vocflow.streams.kpi.misroute import Misroutes, misroute_rates


def test_misroute_rate_formula() -> None:
    routed = [("c1", "billing"), ("c2", "billing"), ("c3", "billing"), ("c4", "network")]
    reassigned = [
        ("c1", "billing"),
        ("c1", "billing"),  # the same correction twice (at-least-once delivery)
        ("c4", "billing"),  # billing never had c4: ignored
    ]
    rates = misroute_rates(routed, reassigned)
    assert rates == {"billing": Misroutes(3, 1), "network": Misroutes(1, 0)}
    assert rates["billing"].rate == 1 / 3
    assert rates["network"].rate == 0.0
    assert Misroutes(0, 0).rate is None
