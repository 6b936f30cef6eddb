"""Measure how fast the simulator generates records.

Run: ``python -m vocflow.streams.tools.simulator.bench``.

The simulator must outrun the pipeline it feeds (target: >= 20,000 events/s
on one core), otherwise a load test measures the generator. Two numbers are
reported: generation alone, and generation plus ``orjson`` serialisation of
each value (what a Kafka producer would add). Profiles are excluded from the
count because they are emitted once, before the day starts.
"""

from __future__ import annotations

import argparse
import time

import orjson

from vocflow.streams.tools.simulator.config import (
    Outage,
    PromotionSpike,
    SimConfig,
    StaffingShortfall,
)
from vocflow.streams.tools.simulator.engine import simulate


def measure(config: SimConfig, serialize: bool) -> tuple[int, float]:
    """(events, seconds) for one full run, profiles not counted."""
    dumps = orjson.dumps
    n = 0
    t0 = time.perf_counter()
    for rec in simulate(config):
        if rec.kind == "profile":
            continue
        n += 1
        if serialize:
            dumps(rec.value)
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts-per-day", type=int, default=40_000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--scenarios", action="store_true", help="add one of each scenario")
    args = parser.parse_args(argv)
    config = SimConfig(
        seed=args.seed,
        contacts_per_day=args.contacts_per_day,
        duration_hours=args.hours,
        outages=(Outage(),) if args.scenarios else (),
        shortfalls=(StaffingShortfall(),) if args.scenarios else (),
        promotions=(PromotionSpike(),) if args.scenarios else (),
    )
    for serialize in (False, True):
        best = 0.0
        events = 0
        for _ in range(args.repeat):
            events, seconds = measure(config, serialize)
            best = max(best, events / seconds)
        label = "generate + orjson" if serialize else "generate"
        print(f"{label:18s} {events:>9,d} events  {best:>10,.0f} events/s (best of {args.repeat})")


if __name__ == "__main__":
    main()
