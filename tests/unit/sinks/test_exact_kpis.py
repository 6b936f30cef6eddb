"""The 1-minute aggregates equal, after every insert, the contributions of the
latest stored fact of each contact, whatever the worker emits (differential test).

A simulated facts stage folds random contact lifecycles (tests/unit/kpi/gen.py)
and VOC annotations the way `streams/worker/facts_loop.py` does, and is killed
now and then: its table comes back from a changelog that lost its tail (and, for
some contacts, from an older record of theirs), and its input resumes at the
last committed offset. It therefore re-emits versions with other content,
emits versions below the ones already out, loses a department annotation until
the contact is routed again, and sends some records twice. Its messages still
carry the worker's own `kpi_deltas`, which the sink must not trust (summing
them, as the sink did before `LatestFactDeltas`, fails this test on every
seed, within its first twenty inserts).

A simulated sink feeds that stream through the real row path (`CONTACT_FACTS.to_row`,
the `before_insert` hook, the real DDL in embedded chdb) at random batch
boundaries. Some batches are inserted a second time with the same token (a
retry after an ambiguous failure, the hook run again on the same rows, as
`kafka_sink` did); some run the hook and never reach ClickHouse (a failed
insert, so what the hook remembers is wrong); some are read again from the
last commit with other boundaries (a sink crash between insert and commit),
sometimes by a new hook that remembers nothing, or little (a new process).

Oracle, in Python: the latest fact per contact (highest version; among equal
versions the last one inserted, which is what ReplacingMergeTree keeps), its
`contributions` summed per (minute, queue, channel, department). Compared with
`kpi_minutes` exactly, for every key, after every insert; the oracle's latest
facts are also compared with `contact_facts FINAL`.
"""

from __future__ import annotations

import functools
import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.unit.kpi import gen
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import CONTACT_FACTS, LatestFactDeltas, Row
from vocflow.streams.core.settings import Settings
from vocflow.streams.kpi.config import kpi_targets
from vocflow.streams.kpi.contributions import COUNTERS, Key, contributions, delta
from vocflow.streams.kpi.fold import annotate, fold
from vocflow.streams.kpi.models import ContactFact, FoldConfig, to_ms

pytestmark = pytest.mark.clock

SETTINGS = Settings(sl_threshold_by_queue={"tech_q": 10})
TARGETS = kpi_targets(SETTINGS)
CONFIG = FoldConfig(short_abandon_ms_by_queue=gen.SHORT_BY_QUEUE)
# Recent, so the tables' 400-day TTLs keep the rows.
DAY = datetime.now(gen.SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
    days=2
)
COLUMNS = CONTACT_FACTS.columns
I_ID, I_VERSION, I_FACT = (COLUMNS.index(c) for c in ("contact_id", "version", "fact"))
TOKEN_PREFIX = "contact_facts|vocflow.contacts.facts/0/"

Input = tuple[str, Any]  # ("event", ContactEvent) | ("routed", (contact_id, annotation))


# ---- the worker ----------------------------------------------------------------


def inputs(seed: int, n_events: int) -> list[Input]:
    """The generator's events in delivery order, with routing decisions between them:
    each annotated contact is routed after one of its events, and half of them
    again later (a later text), one in ten of those to another department."""
    fixed, gen.DAY = gen.DAY, DAY
    try:
        scenario = gen.contacts(seed, n_events)
    finally:
        gen.DAY = fixed
    rng = random.Random(seed)
    positions: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(scenario.events):
        positions[e.contact_id].append(i)
    after: dict[int, list[Input]] = defaultdict(list)
    for cid, annotation in scenario.annotations.items():
        where = positions[cid]
        after[rng.choice(where)].append(("routed", (cid, annotation)))
        if rng.random() < 0.5:
            again = dict(annotation)
            if rng.random() < 0.1:
                again["department"] = rng.choice(gen.DEPARTMENTS)
            after[where[-1] + rng.randint(0, 200)].append(("routed", (cid, again)))
    out: list[Input] = []
    for i, e in enumerate(scenario.events):
        out.append(("event", e))
        out.extend(after.pop(i, []))
    for i in sorted(after):
        out.extend(after[i])
    return out


def worker(items: list[Input], rng: random.Random, crash_every: int = 250) -> list[bytes]:
    """The facts agent's output topic: fold or annotate, emit each new version with
    the worker's delta, and get killed (-9) now and then."""
    table: dict[str, ContactFact] = {}
    changelog: list[tuple[str, ContactFact]] = []  # the table's writes, in order
    out: list[bytes] = []
    pos = committed = 0
    while pos < len(items):
        kind, item = items[pos]
        pos += 1
        if kind == "event":
            cid = item.contact_id
            previous = table.get(cid)
            new = fold(previous, item, CONFIG)
        else:
            cid, annotation = item
            previous = table.get(cid)
            new = annotate(previous or ContactFact(cid), **annotation)
        if new is not None:
            table[cid] = new
            changelog.append((cid, new))
            if new.last_activity_ms is not None:  # as the agent: nothing to count yet
                body = new.to_dict()
                body["kpi_deltas"] = [[*k, v] for k, v in delta(previous, new, TARGETS)]
                out.append(orjson.dumps(body))
                if rng.random() < 0.02:  # a producer retry: the same record twice
                    out.append(out[-1])
        if rng.random() < 0.1:
            committed = pos
        if rng.random() < 1 / crash_every:
            # kill -9: the changelog lost its tail, some contacts come back from an
            # older record of theirs (a lagging changelog partition), and the input
            # resumes at the last committed offset.
            del changelog[len(changelog) - rng.randint(0, 80) :]
            history: dict[str, list[ContactFact]] = defaultdict(list)
            for c, fact in changelog:
                history[c].append(fact)
            table = {}
            for c, facts in history.items():
                back = rng.randint(1, len(facts)) if rng.random() < 0.1 else 1
                table[c] = facts[-back]
            changelog = [(c, table[c]) for c in table]
            pos = committed
    return out


def faults(messages: list[bytes]) -> Counter[str]:
    """What the stream holds that a naive delta sum would get wrong."""
    found: Counter[str] = Counter()
    seen_bytes: set[bytes] = set()
    content: dict[tuple[str, int], bytes] = {}
    top: dict[str, int] = {}
    departments: dict[str, list[str | None]] = defaultdict(list)
    for m in messages:
        body = orjson.loads(m)
        body.pop("kpi_deltas")
        cid, version = body["contact_id"], body["version"]
        if m in seen_bytes:
            found["duplicate"] += 1
        seen_bytes.add(m)
        fact = orjson.dumps(body)
        if content.setdefault((cid, version), fact) != fact:
            found["same version, other content"] += 1
        if version < top.get(cid, -1):
            found["version below one already emitted"] += 1
        top[cid] = max(version, top.get(cid, -1))
        departments[cid].append(body["department"])
    for seq in departments.values():
        for i, d in enumerate(seq):
            if d is None and any(seq[:i]) and any(seq[i + 1 :]):
                found["department lost, then back"] += 1
                break
    return found


# ---- the sink ------------------------------------------------------------------


def hook(store: ClickHouseStore, rows: list[Row]) -> list[Row]:
    assert CONTACT_FACTS.before_insert is not None
    return CONTACT_FACTS.before_insert(store, rows, SETTINGS)


class Oracle:
    """The latest fact per contact among the rows ClickHouse accepted."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[int, str]] = {}  # contact -> (version, fact JSON)
        self.tokens: set[str] = set()

    def inserted(self, rows: list[Row], token: str) -> None:
        if token in self.tokens:
            return  # ClickHouse drops a block whose token it has seen
        self.tokens.add(token)
        for row in rows:
            cid, version = row[I_ID], row[I_VERSION]
            if version >= self.latest.get(cid, (-1, ""))[0]:
                self.latest[cid] = (version, row[I_FACT])

    def aggregates(self) -> dict[Key, list[int]]:
        total: dict[Key, list[int]] = {}
        for _, fact in self.latest.values():
            for key, counters in self.contributions(fact).items():
                cell = total.setdefault(key, [0] * len(COUNTERS))
                for i, n in enumerate(counters):
                    cell[i] += n
        return {k: v for k, v in total.items() if any(v)}

    @functools.cache  # noqa: B019 (one oracle per test)
    def contributions(self, fact: str) -> dict[Key, list[int]]:
        return contributions(ContactFact.from_dict(orjson.loads(fact)), TARGETS)


def stored_aggregates(store: ClickHouseStore) -> dict[Key, list[int]]:
    sums = ", ".join(f"sum({c})" for c in COUNTERS)
    rows = store.query(
        f"SELECT toUnixTimestamp(minute) * 1000, queue, channel, department, {sums} "
        f"FROM {store.database}.kpi_minutes GROUP BY minute, queue, channel, department"
    )
    return {(m, q, c, d): list(v) for m, q, c, d, *v in rows if any(v)}


def stored_latest(store: ClickHouseStore) -> dict[str, tuple[int, str]]:
    rows = store.query(
        f"SELECT contact_id, version, fact FROM {store.database}.contact_facts FINAL"
    )
    return {cid: (version, fact) for cid, version, fact in rows}


def differences(got: dict[Key, list[int]], want: dict[Key, list[int]]) -> list[str]:
    out = []
    for key in sorted(set(got) | set(want)):
        g, w = got.get(key, [0] * len(COUNTERS)), want.get(key, [0] * len(COUNTERS))
        if g != w:
            diff = {COUNTERS[i]: g[i] - w[i] for i in range(len(COUNTERS)) if g[i] != w[i]}
            out.append(f"{key}: stored - expected = {diff}")
    return out


def sink(store: ClickHouseStore, messages: list[bytes], rng: random.Random) -> Counter[str]:
    """Insert the stream as the sink would, checking the aggregates after every insert."""
    oracle = Oracle()
    done: Counter[str] = Counter()
    before_insert = CONTACT_FACTS.before_insert  # the spec's own, and what it remembers
    assert before_insert is not None

    hooked_until = 0  # the end of the furthest batch whose deltas were written

    def insert(rows: list[Row], token: str, end: int) -> list[Row]:
        rows = before_insert(store, rows, SETTINGS)
        if not rows:
            return rows  # every record stored already: the sink inserts nothing
        store.insert("contact_facts", COLUMNS, rows, token)
        oracle.inserted(rows, token)
        if end < hooked_until:
            # Deltas of records read but not stored yet are out (a hook that ran for an
            # insert that failed): they count early, until their facts are in.
            return rows
        wrong = differences(stored_aggregates(store), oracle.aggregates())
        assert not wrong, (
            f"after insert {token} ({sum(done.values())} steps before it): "
            f"{len(wrong)} keys differ, e.g.\n" + "\n".join(wrong[:8])
        )
        return rows

    committed = 0
    while committed < len(messages):
        end = min(len(messages), committed + rng.randint(1, 120))
        rows = [CONTACT_FACTS.to_row(messages[o], 0, o) for o in range(committed, end)]
        token = f"{TOKEN_PREFIX}{committed}-{end - 1}"
        if rng.random() < 0.08:  # the hook ran (its deltas out), the facts insert failed
            before_insert(store, [list(r) for r in rows], SETTINGS)
            hooked_until = max(hooked_until, end)
            done["hook ran, insert failed"] += 1
            continue
        rows = insert(rows, token, end)
        done["batch"] += 1
        if rng.random() < 0.1:  # the insert's answer was lost: the same rows, token and hook
            insert(rows, token, end)
            done["retried with the same token"] += 1
        if rng.random() < 0.12:  # crashed before the commit: read again, other boundaries
            done["read again from the last commit"] += 1
            if rng.random() < 0.5:  # a new sink process, which remembers no fact
                before_insert = LatestFactDeltas(remembered=rng.choice([1, 50, 20_000]))
                done["sink restarted"] += 1
            continue
        committed = end
    assert stored_latest(store) == oracle.latest
    return done


# ---- the tests -----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_aggregates_equal_the_latest_facts_after_every_insert(
    store: ClickHouseStore, seed: int
) -> None:
    rng = random.Random(seed)
    messages = worker(inputs(seed, 2_500), rng)
    found = faults(messages)
    assert set(found) == {
        "duplicate",
        "same version, other content",
        "version below one already emitted",
        "department lost, then back",
    }, found
    done = sink(store, messages, rng)
    assert set(done) == {
        "batch",
        "retried with the same token",
        "read again from the last commit",
        "hook ran, insert failed",
        "sink restarted",
    }, done


def test_a_re_emitted_version_replaces_the_stored_one_in_the_aggregates(
    store: ClickHouseStore,
) -> None:
    """Version 2 emitted twice with other content (the second folded from another
    predecessor), then version 1 again (a worker that lost its table): the
    aggregates follow what contact_facts keeps, the last version 2."""
    t = to_ms(DAY) + 9 * 3_600_000
    first = ContactFact("c1", version=2, first_ms=t, offered_ms=t, department="billing")
    other = ContactFact("c1", version=2, first_ms=t + 60_000, offered_ms=t + 60_000)
    older = ContactFact("c1", version=1, first_ms=t)

    def message(fact: ContactFact) -> bytes:
        body = fact.to_dict()
        body["kpi_deltas"] = [[*k, v] for k, v in delta(None, fact, TARGETS)]
        return orjson.dumps(body)

    for n, fact in enumerate([first, other, older]):
        rows = hook(store, [CONTACT_FACTS.to_row(message(fact), 0, n)])
        store.insert("contact_facts", COLUMNS, rows, f"{TOKEN_PREFIX}{n}-{n}")
    want: dict[Key, list[int]] = {k: v for k, v in contributions(other, TARGETS).items() if any(v)}
    assert stored_aggregates(store) == want
    assert stored_latest(store)["c1"][0] == 2


def test_service_level_is_judged_with_the_settings_thresholds(store: ClickHouseStore) -> None:
    """An answer after 15 s is within the default 20 s but not tech_q's 10 s."""
    t = to_ms(DAY) + 9 * 3_600_000
    fact = ContactFact(
        "c1",
        version=1,
        first_queue_stamp=(t, "e1", "tech_q"),
        first_ms=t,
        offered_ms=t,
        answered=(t + 15_000, "e2", 15_000),
    )
    rows = hook(store, [CONTACT_FACTS.to_row(orjson.dumps(fact.to_dict()), 0, 0)])
    store.insert("contact_facts", COLUMNS, rows, f"{TOKEN_PREFIX}0-0")
    [(_, counters)] = stored_aggregates(store).items()
    assert counters[COUNTERS.index("sl_base")] == 1
    assert counters[COUNTERS.index("sl_answered_within")] == 0


def test_without_settings_the_default_thresholds_are_used_and_said(
    store: ClickHouseStore, caplog: pytest.LogCaptureFixture
) -> None:
    t = to_ms(DAY) + 9 * 3_600_000
    fact = ContactFact(
        "c1",
        version=1,
        first_queue_stamp=(t, "e1", "tech_q"),
        first_ms=t,
        offered_ms=t,
        answered=(t + 15_000, "e2", 15_000),
    )
    hook_without = LatestFactDeltas()
    for n in range(2):
        rows = hook_without(store, [CONTACT_FACTS.to_row(orjson.dumps(fact.to_dict()), 0, n)])
        store.insert("contact_facts", COLUMNS, rows, f"{TOKEN_PREFIX}{n}-{n}")
    [(_, counters)] = stored_aggregates(store).items()
    assert counters[COUNTERS.index("sl_answered_within")] == 1  # 15 s <= the default 20 s
    assert counters[COUNTERS.index("contacts")] == 1
    warnings = [r for r in caplog.records if "passed no settings" in r.getMessage()]
    assert len(warnings) == 1
