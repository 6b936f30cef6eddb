"""Injected scenarios move exactly the signals a detector should see, inside their window.

The scenario day shares its seed and baseline arrivals with the plain day,
so "with minus without" is the scenario's effect.
"""

from __future__ import annotations

from vocflow.streams.tools.simulator import SimConfig, SimRecord, scenario_windows
from vocflow.streams.tools.simulator.config import ScenarioWindow


def _window(config: SimConfig, kind: str) -> ScenarioWindow:
    return next(w for w in scenario_windows(config) if w.kind == kind)


def _first_texts(records: list[SimRecord], w: ScenarioWindow) -> list[SimRecord]:
    return [
        r
        for r in records
        if r.kind == "contact"
        and r.value["event_type"] in ("offered", "received")
        and w.start <= r.at < w.end
    ]


def test_windows_are_ground_truth(scenario_config: SimConfig) -> None:
    windows = scenario_windows(scenario_config)
    assert [w.kind for w in windows] == ["staffing_shortfall", "outage", "promotion_spike"]
    outage = windows[1]
    assert outage.where == "杭州"
    assert outage.start.hour == 14 and (outage.end - outage.start).total_seconds() == 45 * 60
    assert outage.start.utcoffset() is not None
    assert scenario_windows(SimConfig()) == []


def test_outage_city_share_jumps_in_window(
    day: list[SimRecord], scenario_day: list[SimRecord], scenario_config: SimConfig
) -> None:
    w = _window(scenario_config, "outage")
    before = _first_texts(day, w)
    during = _first_texts(scenario_day, w)
    share_before = sum(w.where in r.value["text"] for r in before) / len(before)
    share_during = sum(w.where in r.value["text"] for r in during) / len(during)
    assert share_during > 0.3 > 0.05 > share_before
    burst = [r for r in during if r.labels and r.labels["scenario"] == "outage"]
    assert len(burst) > 300  # hundreds within minutes
    assert all(r.labels["department"] in ("network", "complaints") for r in burst)
    assert all(r.labels["city"] == "杭州" for r in burst if r.labels["language"] != "en")
    keywords = ("断网", "没信号", "网速慢", "上不了网", "无服务", "信号", "连不上")
    zh = [r for r in burst if r.labels["language"] == "zh"]
    assert sum(any(k in r.value["text"] for k in keywords) for r in zh) > 0.6 * len(zh)
    # the callers live there too: their profiles say so
    profiles = {r.key: r.value for r in scenario_day if r.kind == "profile"}
    assert all(profiles[r.value["customer_id"]]["city"] == "杭州" for r in burst[:50])


def test_outage_burst_outside_window_is_absent(
    scenario_day: list[SimRecord], scenario_config: SimConfig
) -> None:
    w = _window(scenario_config, "outage")
    burst = [
        r
        for r in scenario_day
        if r.labels and r.labels["scenario"] == "outage" and not r.labels["repeat"]
    ]
    assert burst and all(w.start <= r.at < w.end for r in burst)


def _abandonment(records: list[SimRecord], w: ScenarioWindow) -> tuple[float, float]:
    queued = abandoned = answered = 0
    wait = 0.0
    for r in records:
        if r.kind != "contact" or r.value["queue"] != w.where or not w.start <= r.at < w.end:
            continue
        t = r.value["event_type"]
        queued += t == "queued"
        if t in ("abandoned", "timed_out"):
            abandoned += 1
        elif t == "answered":
            answered += 1
            wait += r.value["payload"]["wait_seconds"]
    return abandoned / queued, wait / answered


def test_staffing_shortfall_raises_waits_and_abandonment(
    day: list[SimRecord], scenario_day: list[SimRecord], scenario_config: SimConfig
) -> None:
    w = _window(scenario_config, "staffing_shortfall")
    ab_before, asa_before = _abandonment(day, w)
    ab_during, asa_during = _abandonment(scenario_day, w)
    assert ab_during > 3 * ab_before
    assert ab_during > 0.1
    assert asa_during > 3 * asa_before
    # the missing agents logged out during the window and came back after it
    logouts = [
        r
        for r in scenario_day
        if r.kind == "agent" and r.value["state"] == "logout" and w.start <= r.at < w.end
    ]
    assert len(logouts) >= 3


def test_promotion_spike_raises_plan_and_promotion_share(
    day: list[SimRecord], scenario_day: list[SimRecord], scenario_config: SimConfig
) -> None:
    w = _window(scenario_config, "promotion_spike")

    def share(records: list[SimRecord]) -> float:
        texts = [r for r in _first_texts(records, w) if r.labels]
        hits = [r for r in texts if r.labels["business_type"] in ("promotion", "plan", "data")]
        return len(hits) / len(texts)

    assert share(scenario_day) > 2 * share(day)
    named = [
        r
        for r in _first_texts(scenario_day, w)
        if r.labels and r.labels["scenario"] == "promotion_spike"
    ]
    assert len(named) > 500
    assert sum("双十一流量节" in r.value["text"] for r in named) > 50


def test_baseline_arrivals_unchanged_by_scenarios(
    day: list[SimRecord], scenario_day: list[SimRecord]
) -> None:
    """Scenarios draw from their own random streams: the baseline day stays the same."""

    def baseline(records: list[SimRecord]) -> list[tuple[object, ...]]:
        return [
            (r.at, r.value["channel"], r.value["customer_id"], r.labels["issue"])
            for r in records
            if r.kind == "contact"
            and r.value["event_type"] in ("offered", "received")
            and r.labels
            and not r.labels["repeat"]
            and r.labels["scenario"] is None
        ]

    plain = baseline(day)
    assert len(plain) > 15_000
    assert plain == baseline(scenario_day)
