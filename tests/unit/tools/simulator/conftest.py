"""Shared simulated days: generating one takes seconds, so each is built once per session."""

from __future__ import annotations

import gc

import pytest

from vocflow.streams.tools.simulator import (
    Outage,
    PromotionSpike,
    SimConfig,
    SimRecord,
    StaffingShortfall,
    simulate,
)

BASE = {"seed": 11, "contacts_per_day": 20_000, "customers": 5_000}
SCENARIOS = {
    "outages": (Outage(city="杭州", start_hour=14.0, duration_minutes=45, intensity=25),),
    "shortfalls": (
        StaffingShortfall(
            queue="voice.billing", start_hour=10.0, duration_minutes=90, intensity=0.6
        ),
    ),
    "promotions": (PromotionSpike(start_hour=19.0, duration_minutes=120, intensity=12),),
}


def _collect(config: SimConfig) -> list[SimRecord]:
    """The whole run as a list; the cyclic GC is paused because it would rescan the
    growing list of dicts over and over (the simulator itself creates no cycles)."""
    gc.disable()
    try:
        return list(simulate(config))
    finally:
        gc.enable()


@pytest.fixture(scope="session")
def day_config() -> SimConfig:
    return SimConfig(**BASE)


@pytest.fixture(scope="session")
def day(day_config: SimConfig) -> list[SimRecord]:
    """A plain day: no scenario."""
    return _collect(day_config)


@pytest.fixture(scope="session")
def scenario_config() -> SimConfig:
    return SimConfig(**BASE, **SCENARIOS)


@pytest.fixture(scope="session")
def scenario_day(scenario_config: SimConfig) -> list[SimRecord]:
    """The same day (same seed, same baseline arrivals) with all three scenarios injected."""
    return _collect(scenario_config)
