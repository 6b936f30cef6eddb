"""Measure the surge detector on simulated days with known outages and promotions.

Each run simulates a day (`vocflow.streams.tools.simulator`), puts every contact text
through the *real* enrichment and tagging (`enrich` + `tag` with the shipped
rules: keywords, category and department as production computes them, and the
customer's city from the profile join), feeds the detector in event-time order
and compares its alerts with `scenario_windows`:

* **detection delay**: first alert whose city (city or (category, city) pair,
  or the city name as keyword) is the outage's city, or, for a promotion, whose
  category/keyword is a promotion one or whose department guess is
  `sales_retention`; measured from the scenario start to `emitted_at` (the
  event-time watermark when the minute closed, i.e. including the grace period).
* **false alarms**: new alerts (episode starts, not updates) whose episode does
  not overlap any scenario window extended by `TAIL_MINUTES` (repeat contacts
  and redials of an outage keep coming for a while after it is fixed).

Only the events the `voc` agent routes are fed (`offered`, `received`,
`message` with text); survey comments are not contacts about a new issue.

Run: ``python -m vocflow.streams.tools.detector_eval [--seeds 1 2 3] [--days 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from vocflow.schemas.derived.alert import VocAlert
from vocflow.streams.detect.detector import DetectorConfig, Observation, SurgeDetector
from vocflow.streams.tools.simulator import (
    Outage,
    PromotionSpike,
    ScenarioWindow,
    SimConfig,
    scenario_windows,
    simulate,
)

TAIL_MINUTES = 30
ROUTED_EVENTS = frozenset({"offered", "received", "message"})
PROMO_CATEGORIES = frozenset({"promotion", "plan_change", "plan_inquiry", "mobile_data"})
PROMO_KEYWORDS = frozenset({"套餐", "活动", "优惠", "流量包", "办理"})
# (city, hour) of the outage and the promotion's start hour, rotated over seeds
OUTAGE_PLACES = (("杭州", 14.0), ("成都", 10.5), ("西安", 20.25), ("厦门", 9.0), ("长沙", 16.5))
PROMO_HOURS = (19.0, 11.0, 15.5, 20.0, 13.0)


@dataclass(frozen=True)
class Run:
    name: str  # quiet | outage | small_outage | promotion
    seed: int
    config: SimConfig


def runs(seeds: Sequence[int], days: int = 1, contacts_per_day: int = 40_000) -> list[Run]:
    """Per seed: a quiet day, an outage, a small outage and a promotion (on the last day)."""
    out: list[Run] = []
    last_day = 24.0 * (days - 1)
    for i, seed in enumerate(seeds):
        city, hour = OUTAGE_PLACES[i % len(OUTAGE_PLACES)]
        small_city, small_hour = OUTAGE_PLACES[(i + 3) % len(OUTAGE_PLACES)]
        base = SimConfig(seed=seed, duration_hours=24.0 * days, contacts_per_day=contacts_per_day)
        out.append(Run("quiet", seed, base))
        out.append(
            Run(
                "outage",
                seed,
                _with(base, outages=(Outage(city=city, start_hour=last_day + hour),)),
            )
        )
        out.append(
            Run(
                "small_outage",
                seed,
                _with(
                    base,
                    outages=(
                        Outage(
                            city=small_city,
                            start_hour=last_day + small_hour,
                            duration_minutes=30.0,
                            intensity=6.0,
                        ),
                    ),
                ),
            )
        )
        hour = PROMO_HOURS[i % len(PROMO_HOURS)]
        promo = PromotionSpike(start_hour=last_day + hour)
        out.append(Run("promotion", seed, _with(base, promotions=(promo,))))
    return out


def _with(config: SimConfig, **changes: Any) -> SimConfig:
    from dataclasses import replace

    return replace(config, **changes)


@cache
def _rules() -> Any:
    from vocflow.streams.core.settings import DEFAULT_RULES_FILE
    from vocflow.streams.stages.rules import load_rules

    return load_rules(DEFAULT_RULES_FILE)


def observations(config: SimConfig) -> Any:
    """The simulated day as detector observations, via the real enrich + tag."""
    from vocflow.schemas import ContactEvent, CustomerProfile
    from vocflow.streams.stages.enrich import enrich
    from vocflow.streams.stages.tagging import tag

    rules = _rules()
    profiles: dict[str, CustomerProfile] = {}
    for rec in simulate(config):
        if rec.kind == "profile":
            profiles[rec.key] = CustomerProfile.model_validate(rec.value)
            continue
        value = rec.value
        if rec.kind != "contact" or not value.get("text"):
            continue
        if value["event_type"] not in ROUTED_EVENTS:
            continue
        event = ContactEvent.model_validate(value)
        contact = enrich(event, profiles, rec.at)
        tags = tag(contact, rules)
        yield Observation(
            at=event.occurred_at,
            keywords=list(contact.analysis.keywords),
            category=tags.category.value,
            city=contact.customer.city if contact.customer else None,
            text=contact.event.text or "",
            department=tags.department.value,
        )


def run_one(run: Run, config: DetectorConfig | None = None) -> dict[str, Any]:
    """One simulated day through the detector; alerts kept as plain dicts."""
    started = time.perf_counter()
    detector = SurgeDetector(config)
    alerts: list[VocAlert] = []
    last = None
    n = 0
    for obs in observations(run.config):
        n += 1
        last = obs.at
        alerts.extend(detector.observe(obs))
    if last is not None:
        alerts.extend(detector.flush(last + timedelta(minutes=2)))
    return {
        "name": run.name,
        "seed": run.seed,
        "days": run.config.duration_hours / 24.0,
        "observations": n,
        "seconds": time.perf_counter() - started,
        "alerts": [a.model_dump() for a in alerts],
        "windows": scenario_windows(run.config),
        "tracked_keys": detector.tracked_keys,
        "evicted": detector.stats["evicted"],
    }


def matches(alert: dict[str, Any], window: ScenarioWindow) -> bool:
    """Does the alert point at this scenario (its city, or its promotion topic)?"""
    if window.kind == "outage":
        return alert["city"] == window.where or alert["keyword"] == window.where
    if window.kind == "promotion_spike":
        return (
            alert["category"] in PROMO_CATEGORIES
            or alert["keyword"] in PROMO_KEYWORDS
            or alert["keyword"] in window.signals
            or alert["department"] == "sales_retention"
        )
    return False


def _overlaps(alert: dict[str, Any], windows: list[ScenarioWindow]) -> bool:
    tail = timedelta(minutes=TAIL_MINUTES)
    return any(
        alert["first_seen"] < w.end + tail and alert["window_end"] > w.start for w in windows
    )


def score(result: dict[str, Any]) -> dict[str, Any]:
    """Delays and false alarms of one run."""
    alerts = result["alerts"]
    windows = [w for w in result["windows"] if w.kind in ("outage", "promotion_spike")]
    delays: list[float | None] = []
    for w in windows:
        hits = [a for a in alerts if matches(a, w) and a["emitted_at"] >= w.start]
        hits = [a for a in hits if a["first_seen"] < w.end + timedelta(minutes=TAIL_MINUTES)]
        first = min((a["emitted_at"] for a in hits), default=None)
        delays.append(None if first is None else (first - w.start).total_seconds() / 60.0)
    new = [a for a in alerts if a["sequence"] == 0]
    false = [a for a in new if not _overlaps(a, windows)]
    return {
        "name": result["name"],
        "seed": result["seed"],
        "days": result["days"],
        "delays": delays,
        "alerts_new": len(new),
        "updates": len(alerts) - len(new),
        "false_alarms": len(false),
        "false_keys": [f"{a['dimension']}:{a['key']}" for a in false],
        "observations": result["observations"],
        "seconds": result["seconds"],
        "tracked_keys": result["tracked_keys"],
    }


def evaluate(
    days: int = 1,
    seeds: Sequence[int] = (1, 2, 3),
    contacts_per_day: int = 40_000,
    workers: int = 2,
    config: DetectorConfig | None = None,
) -> dict[str, Any]:
    """Run every scenario for every seed and summarise per scenario kind."""
    plan = runs(seeds, days, contacts_per_day)
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        scored = [score(r) for r in pool.map(run_one, plan, [config] * len(plan))]
    summary: dict[str, dict[str, Any]] = {}
    for name in ("quiet", "outage", "small_outage", "promotion"):
        rows = [s for s in scored if s["name"] == name]
        delays = [d for s in rows for d in s["delays"]]
        found = [d for d in delays if d is not None]
        sim_days = sum(s["days"] for s in rows)
        summary[name] = {
            "runs": len(rows),
            "scenarios": len(delays),
            "detected": len(found),
            "delay_min_median": statistics.median(found) if found else None,
            "delay_min_max": max(found) if found else None,
            "delays": delays,
            "false_alarms": sum(s["false_alarms"] for s in rows),
            "false_alarms_per_day": sum(s["false_alarms"] for s in rows) / sim_days,
            "alerts_new": sum(s["alerts_new"] for s in rows),
            "updates": sum(s["updates"] for s in rows),
        }
    all_days = sum(s["days"] for s in scored)
    false_keys = Counter(k for s in scored for k in s["false_keys"])
    return {
        "days_per_run": days,
        "seeds": list(seeds),
        "contacts_per_day": contacts_per_day,
        "simulated_days": all_days,
        "observations": sum(s["observations"] for s in scored),
        "seconds": sum(s["seconds"] for s in scored),
        "false_alarms_per_day": sum(s["false_alarms"] for s in scored) / all_days,
        "false_alarm_keys": false_keys.most_common(10),
        "by_scenario": summary,
        "runs": scored,
    }


def markdown(report: dict[str, Any]) -> str:
    """The table for docs/detector.md."""

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    lines = [
        "| scenario | runs | detected | delay median (min) | delay max (min) "
        "| delays (min) | new alerts | updates | false alarms | false alarms / day |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report["by_scenario"].items():
        delays = ", ".join(fmt(d) for d in s["delays"]) or "-"
        detected = f"{s['detected']}/{s['scenarios']}" if s["scenarios"] else "-"
        lines.append(
            f"| {name} | {s['runs']} | {detected} | {fmt(s['delay_min_median'])} "
            f"| {fmt(s['delay_min_max'])} | {delays} | {s['alerts_new']} | {s['updates']} "
            f"| {s['false_alarms']} | {s['false_alarms_per_day']:.2f} |"
        )
    lines.append("")
    lines.append(
        f"{report['simulated_days']:.0f} simulated days ({report['days_per_run']} per run, "
        f"seeds {report['seeds']}, {report['contacts_per_day']} contacts/day), "
        f"{report['observations']} observations; false alarms per day overall: "
        f"{report['false_alarms_per_day']:.2f}; "
        f"{report['observations'] / max(report['seconds'], 1e-9):.0f} observations/s "
        "including simulation, enrichment and tagging."
    )
    if report["false_alarm_keys"]:
        keys = ", ".join(f"{k} ({n})" for k, n in report["false_alarm_keys"])
        lines.append(f"False-alarm keys: {keys}.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--contacts-per-day", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    report = evaluate(args.days, args.seeds, args.contacts_per_day, args.workers)
    print(markdown(report))


if __name__ == "__main__":
    main()
