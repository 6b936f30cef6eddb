"""An independent, deliberately naive re-computation of the KPIs for tests.

It shares no code with vocflow.streams.kpi: it drops duplicate event ids,
sorts each contact's events by (occurred_at, event_id), reads "first" and
"last" off the sorted list, and evaluates each DOMAIN.md formula with its own
loops and Fractions. Agent times are counted by sampling every second, so
agent timestamps must be whole seconds. If this and the fold agree on a large
shuffled, duplicated stream, the fold's order-independence tricks are right.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from vocflow.schemas.source.agent_event import AgentEvent
from vocflow.schemas.source.contact import ContactEvent

Result = dict[str, tuple[Fraction | None, int, int]]  # group -> (value, numerator, denominator)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_of(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def ms_from_seconds(seconds: float) -> int:
    return int(Decimal(repr(seconds)) * 1000)


def unique(events: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for e in events:
        if e.event_id not in seen:
            seen.add(e.event_id)
            out.append(e)
    return out


def contact_records(
    events: list[ContactEvent],
    annotations: dict[str, dict[str, Any]] | None = None,
    short_ms: int = 5000,
    short_ms_by_queue: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """One plain dict per contact, straight from its sorted events."""
    per_contact: dict[str, list[ContactEvent]] = defaultdict(list)
    for e in unique(events):
        per_contact[e.contact_id].append(e)
    records = {}
    for cid, evs in per_contact.items():
        evs.sort(key=lambda e: (ms_of(e.occurred_at), e.event_id))
        r: dict[str, Any] = {"id": cid, "events": evs}
        non_survey = [e for e in evs if e.event_type != "survey"]
        moving = [e for e in non_survey if e.event_type != "message"]

        def of_type(t: str, evs: list[ContactEvent] = evs) -> list[ContactEvent]:
            return [e for e in evs if e.event_type == t]

        r["channel"] = (non_survey or evs)[0].channel.value
        r["customer"] = next((e.customer_id for e in evs if e.customer_id), None)
        r["first_queue"] = next((e.queue for e in non_survey if e.queue), None)
        last_queue = None
        for e in moving:
            if e.event_type == "transferred":
                last_queue = e.payload.transfer_to
            elif e.queue:
                last_queue = e.queue
        r["last_queue"] = last_queue
        agent = None
        for e in moving:
            if e.agent_id:
                agent = e.agent_id
        r["agent"] = agent
        r["first"] = ms_of(non_survey[0].occurred_at) if non_survey else None

        candidates = [ms_of(e.occurred_at) for e in evs if e.event_type in ("offered", "queued")]
        for e in evs:
            if e.event_type in ("answered", "abandoned", "timed_out"):
                candidates.append(ms_of(e.occurred_at) - ms_from_seconds(e.payload.wait_seconds))
        r["offered"] = min(candidates) if candidates else None
        entries = [ms_of(e.occurred_at) for e in evs if e.event_type == "queued"]
        entries += [
            ms_of(e.occurred_at) - ms_from_seconds(e.payload.wait_seconds)
            for e in evs
            if e.event_type in ("answered", "abandoned", "timed_out")
        ]
        r["waiting_from"] = min(entries) if entries else r["offered"]

        answers = of_type("answered")
        r["answered_wait"] = ms_from_seconds(answers[0].payload.wait_seconds) if answers else None
        r["answered_at"] = ms_of(answers[0].occurred_at) if answers else None
        abandons = of_type("abandoned")
        timeouts = of_type("timed_out")
        ends = of_type("ended")
        wraps = of_type("wrapup_done")
        r["outcome"] = (
            "answered"
            if answers
            else "abandoned"
            if abandons
            else "timed_out"
            if timeouts
            else None
        )
        r["abandon_wait"] = ms_from_seconds(abandons[0].payload.wait_seconds) if abandons else None
        r["short"] = False
        if r["outcome"] == "abandoned":
            q = abandons[0].queue or r["first_queue"]
            limit = (short_ms_by_queue or {}).get(q, short_ms) if q else short_ms
            r["short"] = r["abandon_wait"] < limit
        exits = [ms_of(e.occurred_at) for e in answers + abandons + timeouts + ends]
        r["left_queue"] = min(exits) if exits else None
        r["ended_at"] = ms_of(ends[-1].occurred_at) if ends else None
        talk = ms_from_seconds(ends[-1].payload.talk_seconds) if ends else 0
        hold = sum(ms_from_seconds(e.payload.hold_seconds) for e in of_type("held"))
        acw = ms_from_seconds(wraps[-1].payload.after_work_seconds) if wraps else 0
        r["handle"] = talk + hold + acw
        r["transfers"] = len(of_type("transferred"))
        for name in ("received", "first_response", "resolved"):
            found = of_type(name)
            r[name] = ms_of(found[0].occurred_at) if found else None
        surveys = of_type("survey")
        r["survey_at"] = ms_of(surveys[-1].occurred_at) if surveys else None
        for field in ("csat", "nps", "fcr"):
            answers_for = [getattr(s.payload, field) for s in surveys]
            answers_for = [a for a in answers_for if a is not None]
            r[field] = answers_for[-1] if answers_for else None
        starts = [x for x in (r["first"], r["offered"], r["received"]) if x is not None]
        r["arrival"] = min(starts) if starts else None
        r.update({"department": None, "category": None})
        r.update((annotations or {}).get(cid, {}))
        records[cid] = r
    return records


def _group(r: dict[str, Any], by: str | None) -> str:
    if by is None:
        return "_all"
    field = {"queue": "first_queue", "agent": "agent"}.get(by, by)
    return r[field] or "unknown"


def _in(ms: int | None, iv: tuple[int, int]) -> bool:
    return ms is not None and iv[0] <= ms < iv[1]


def _ratio(pairs: dict[str, list[int]], unit: str) -> Result:
    out: Result = {}
    for g, (num, den) in pairs.items():
        if den == 0:
            value = None
        elif unit == "seconds":
            value = Fraction(num, den) / 1000
        elif unit == "score":
            value = Fraction(num, den) * 100
        else:
            value = Fraction(num, den)
        out[g] = (value, num, den)
    return out


def kpi(
    records: dict[str, dict[str, Any]],
    name: str,
    iv: tuple[int, int],
    by: str | None,
    threshold_ms: int = 20_000,
    window_ms: int = 24 * 3_600_000,
) -> Result:
    """The interval KPIs, each written out from its DOMAIN.md formula."""
    pairs: dict[str, list[int]] = {}

    def add(r: dict[str, Any], num: int, den: int) -> None:
        cell = pairs.setdefault(_group(r, by), [0, 0])
        cell[0] += num
        cell[1] += den

    recs = list(records.values())
    if name in ("volume", "offered"):
        for r in recs:
            if _in(r["arrival" if name == "volume" else "offered"], iv):
                add(r, 1, 0)
        return {g: (Fraction(n), n, 1) for g, (n, _) in pairs.items()}
    if name == "service_level":
        for r in recs:
            if not _in(r["offered"], iv):
                continue
            within = r["outcome"] == "answered" and r["answered_wait"] <= threshold_ms
            counted = r["outcome"] == "answered" or (
                r["outcome"] == "abandoned" and not r["short"] and r["abandon_wait"] > threshold_ms
            )
            add(r, 1 if within else 0, 1 if counted else 0)
        return _ratio(pairs, "ratio")
    if name == "asa":
        for r in recs:
            if _in(r["offered"], iv) and r["outcome"] == "answered":
                add(r, r["answered_wait"], 1)
        return _ratio(pairs, "seconds")
    if name == "abandonment_rate":
        for r in recs:
            if _in(r["offered"], iv):
                if r["short"]:
                    add(r, 0, 0)
                else:
                    add(r, 1 if r["outcome"] == "abandoned" else 0, 1)
        return _ratio(pairs, "ratio")
    if name in ("aht", "transfer_rate"):
        for r in recs:
            if _in(r["ended_at"], iv):
                if name == "aht":
                    add(r, r["handle"], 1)
                else:
                    add(r, 1 if r["transfers"] else 0, 1)
        return _ratio(pairs, "seconds" if name == "aht" else "ratio")
    if name in ("csat", "nps", "fcr_survey"):
        field = "fcr" if name == "fcr_survey" else name
        for r in recs:
            if r[field] is None or not _in(r["survey_at"], iv):
                continue
            if name == "csat":
                add(r, 1 if r["csat"] in (4, 5) else 0, 1)
            elif name == "nps":
                add(r, (1 if r["nps"] >= 9 else 0) - (1 if r["nps"] <= 6 else 0), 1)
            else:
                add(r, 1 if r["fcr"] else 0, 1)
        return _ratio(pairs, "score" if name == "nps" else "ratio")
    if name in ("fcr", "repeat_contact_rate"):
        by_customer: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in recs:
            if r["customer"] and r["category"] and r["arrival"] is not None:
                by_customer[(r["customer"], r["category"])].append(r)
        for r in recs:
            if not (r["customer"] and r["category"] and _in(r["arrival"], iv)):
                continue
            followed = any(
                (o["arrival"], o["id"]) > (r["arrival"], r["id"])
                and o["arrival"] - r["arrival"] <= window_ms
                for o in by_customer[(r["customer"], r["category"])]
            )
            if name == "fcr":
                add(r, 0 if followed else 1, 1)
            else:
                add(r, 1 if followed else 0, 1)
        return _ratio(pairs, "ratio")
    if name == "complaint_rate":
        for r in recs:
            if _in(r["arrival"], iv):
                add(r, 1 if r["department"] == "complaints" else 0, 1)
        return _ratio(pairs, "ratio")
    raise KeyError(name)


def waiting(
    records: dict[str, dict[str, Any]], at: int, by: str | None, stale_ms: int
) -> tuple[Result, Result]:
    """(queue depth, oldest waiting) at ``at``, from the raw events of each contact."""
    depth: dict[str, int] = defaultdict(int)
    oldest: dict[str, int] = {}
    for r in records.values():
        start = r["waiting_from"]
        if start is None or start > at or at - start > stale_ms:
            continue
        gone = any(
            e.event_type in ("answered", "abandoned", "timed_out", "ended")
            and ms_of(e.occurred_at) <= at
            for e in r["events"]
        )
        if gone:
            continue
        g = _group(r, by)
        depth[g] += 1
        oldest[g] = max(oldest.get(g, 0), at - start)
    return (
        {g: (Fraction(n), n, 1) for g, n in depth.items()},
        {g: (Fraction(a, 1000), a, 1) for g, a in oldest.items()},
    )


def backlog(records: dict[str, dict[str, Any]], at: int, by: str | None) -> Result:
    counts: dict[str, int] = defaultdict(int)
    for r in records.values():
        received, resolved = r["received"], r["resolved"]
        if received is not None and received <= at and (resolved is None or resolved > at):
            counts[_group(r, by)] += 1
    return {g: (Fraction(n), n, 1) for g, n in counts.items()}


def sla_breaches(
    records: dict[str, dict[str, Any]],
    iv: tuple[int, int],
    at: int,
    sla_ms: int,
    field: str,
    by: str | None,
) -> Result:
    pairs: dict[str, list[int]] = {}
    for r in records.values():
        if not _in(r["received"], iv):
            continue
        done = r[field]
        if done is not None and done <= at:
            breach, decided = done - r["received"] > sla_ms, True
        else:
            breach = decided = at - r["received"] > sla_ms
        if decided or breach:
            cell = pairs.setdefault(_group(r, by), [0, 0])
            cell[0] += int(breach)
            cell[1] += 1
        else:
            pairs.setdefault(_group(r, by), [0, 0])
    return _ratio(pairs, "ratio")


def agent_seconds(
    events: list[AgentEvent],
    shifts: list[tuple[str, str | None, int, int, str]],
    iv: tuple[int, int],
    as_of: int,
) -> dict[str, dict[str, Any]]:
    """Per agent: seconds in each bucket, by sampling the state at every second."""
    per_agent: dict[str, list[AgentEvent]] = defaultdict(list)
    for e in unique(events):
        per_agent[e.agent_id].append(e)
    for agent_id, _, _, _, _ in shifts:
        per_agent.setdefault(agent_id, [])
    start_s, end_s = iv[0] // 1000, min(iv[1], max(as_of, iv[0])) // 1000
    out = {}
    for agent, evs in per_agent.items():
        evs.sort(key=lambda e: (ms_of(e.occurred_at), e.event_id))
        teams = [e.team for e in evs if e.team]
        own_shifts = [s for s in shifts if s[0] == agent]
        team = teams[-1] if teams else next((s[1] for s in own_shifts if s[1]), None)
        c: dict[str, Any] = defaultdict(int)
        c["team"] = team
        c["reasons"] = defaultdict(int)
        idx = -1
        for sec in range(start_s, end_s):
            while idx + 1 < len(evs) and ms_of(evs[idx + 1].occurred_at) // 1000 <= sec:
                idx += 1
            state = evs[idx].state.value if idx >= 0 else "logout"
            reason = evs[idx].reason if idx >= 0 else None
            if state != "logout":
                c["logged_in"] += 1
            c[state] += 1
            if state == "not_ready":
                c["reasons"][reason or "unspecified"] += 1
            for _, _, s_from, s_to, activity in own_shifts:
                if s_from // 1000 <= sec < s_to // 1000:
                    c["scheduled"] += 1
                    if activity == "work":
                        ok = state in ("ready", "on_contact", "after_work")
                    else:
                        ok = state == "not_ready" and reason == activity
                    c["adherent"] += int(ok)
        out[agent] = c
    return out
