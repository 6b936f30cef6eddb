"""Voice of the customer on the real broker: 5,000 contacts -> department topics,
no clear-text PII anywhere downstream, resolutions close the loop."""

from __future__ import annotations

import json
import random
import re
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import (
    get_json,
    read_topic,
    running_worker,
    vocflow,
    wait_for,
    worker_env,
)
from vocflow.schemas import ContactEvent, CustomerProfile, RoutingEnvelope
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.settings import DEFAULT_RULES_FILE
from vocflow.streams.stages.deptmodel import default_model
from vocflow.streams.stages.routing import LastIssue, carries_voc_text, is_triage
from vocflow.streams.stages.rules import load_rules
from vocflow.streams.stages.voc import analyse_and_route

pytestmark = pytest.mark.integration

CONTACTS = 5_000
CUSTOMERS = 400
RESOLVED = 2_000
LABELLED = [json.loads(line) for line in (ROOT / "tests/data/voc_labelled.jsonl").open()]
CHANNEL_EVENT = {"phone": "offered", "email": "received", "survey": "message"}
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def national_id(rng: random.Random) -> str:
    body = (
        f"{rng.randrange(110000, 659999)}19{rng.randrange(60, 99)}0{rng.randrange(1, 9)}"
        f"{rng.randrange(10, 28)}{rng.randrange(100, 999)}"
    )
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def bank_card(rng: random.Random) -> str:
    digits = [6, 2, 2, 8] + [rng.randrange(10) for _ in range(11)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def with_pii(rng: random.Random, text: str, planted: list[str]) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**8, 10**9)}"
        planted.append(phone)
        return f"{text}，联系{phone[:3]}-{phone[3:7]}-{phone[7:]}"
    if kind == 1:
        ident = national_id(rng)
        planted.append(ident)
        return f"{text} 证件{ident}"
    if kind == 2:
        card = bank_card(rng)
        planted.append(card)
        return f"{text}，备注 {card[:4]} {card[4:8]} {card[8:12]} {card[12:]}"
    if kind == 3:
        email = f"user{rng.randrange(10**6)}@example.com"
        planted.append(email)
        return f"{text}，联系{email}"
    return text


@pytest.fixture(scope="module")
def voc_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = random.Random(20261123)
    prefix = f"voc{uuid.uuid4().hex[:8]}."
    data = tmp_path_factory.mktemp("voc")
    env = worker_env(kafka_bootstrap, prefix, data)
    assert vocflow("topics", "--create", env=env).returncode == 0

    profiles = {
        f"C{n:04d}": CustomerProfile(
            customer_id=f"C{n:04d}",
            tier="vip" if n % 10 == 0 else "standard",
            city=rng.choice(["杭州", "广州", "成都"]),
        )
        for n in range(CUSTOMERS)
    }
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    events: list[ContactEvent] = []
    gold: dict[str, str] = {}
    planted: list[str] = []
    for n in range(CONTACTS):
        label = LABELLED[n % len(LABELLED)]
        contact_id = f"V{n:05d}"
        gold[contact_id] = label["department"]
        at = base + timedelta(seconds=30 * n)
        channel = label["channel"]
        common = {
            "contact_id": contact_id,
            "customer_id": f"C{rng.randrange(CUSTOMERS):04d}",
            "channel": channel,
            "event_type": CHANNEL_EVENT.get(channel, "message"),
            "queue": "general",
            "source": "voc-test",
        }
        events.append(
            ContactEvent.model_validate(
                {
                    **common,
                    "event_id": f"{contact_id}-1",
                    "occurred_at": at.isoformat(),
                    "text": with_pii(rng, label["text"], planted),
                }
            )
        )
        if n % 10 == 0:  # a follow-up on the same contact: analysed, not routed again
            events.append(
                ContactEvent.model_validate(
                    {
                        **common,
                        "event_id": f"{contact_id}-2",
                        "event_type": "message",
                        "occurred_at": (at + timedelta(seconds=20)).isoformat(),
                        "text": with_pii(rng, "还有，上次的问题怎么样了", planted),
                    }
                )
            )
    assert all(carries_voc_text(e.event_type, e.text) for e in events)

    producer = kafka_clients.producer(kafka_bootstrap, linger_ms=10)
    for p in profiles.values():
        producer.send(
            f"{prefix}customers.profiles",
            key=p.customer_id.encode(),
            value=p.model_dump_json().encode(),
        )
    producer.flush()
    # Live traffic reaches the broker in event-time order; a backlog produced all at
    # once would be read back interleaved across raw partitions. Pinning each
    # customer to one raw partition keeps their contacts in order, as live.
    for e in events:
        producer.send(
            f"{prefix}contacts.raw",
            key=e.contact_id.encode(),
            value=e.model_dump_json().encode(),
            partition=int(e.customer_id[1:]) % 6,
        )
    producer.flush()

    with running_worker(env, data / "worker.log") as url:

        def routed_all() -> bool:
            rows = get_json(f"{url}/api/stats").get("clickhouse", {})
            return rows.get("routing_log") == CONTACTS

        wait_for(routed_all, 300, "every contact in routing_log")
        envelopes = {}
        dept_records: list[Any] = []
        admin = kafka_clients.admin(kafka_bootstrap)
        dept_topics = sorted(t for t in admin.list_topics() if t.startswith(f"{prefix}dept."))
        admin.close()
        # the items the model was unsure of wait in contacts.triage, not in a department
        for topic in [*dept_topics, f"{prefix}contacts.triage"]:
            for r in read_topic(kafka_bootstrap, topic):
                dept_records.append((topic, r))
                env_ = RoutingEnvelope.model_validate_json(r.value)
                envelopes[env_.contact_id] = env_

        # Close the loop: even contacts resolved within SLA, odd ones after it.
        resolved: dict[str, bool] = {}
        for n, contact_id in enumerate(sorted(envelopes)[:RESOLVED]):
            e = envelopes[contact_id]
            in_time = n % 2 == 0
            at = (
                e.occurred_at + timedelta(minutes=30)
                if in_time
                else e.sla_due_at + timedelta(hours=1)
            )
            resolved[contact_id] = in_time
            note = f"已回电客户 {planted[n % len(planted)]}"
            producer.send(
                f"{prefix}contacts.resolutions",
                key=contact_id.encode(),
                value=json.dumps(
                    {
                        "event_id": f"R-{contact_id}",
                        "contact_id": contact_id,
                        "department": e.department,
                        "resolved_at": at.isoformat(),
                        "note": note,
                        "source": "dept-system",
                    }
                ).encode(),
            )
        producer.flush()
        producer.close()

        def overdue_gauge() -> float:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
                text = response.read().decode()
            return sum(
                float(v)
                for v in re.findall(r"^vocflow_routed_items_overdue\{[^}]*\} (\S+)$", text, re.M)
            )

        wait_for(
            lambda: get_json(f"{url}/api/stats")["clickhouse"]["resolutions"] == RESOLVED,
            120,
            "resolutions in ClickHouse",
        )
        wait_for(lambda: overdue_gauge() == CONTACTS - RESOLVED, 90, "the overdue gauge")
        routed_topic = read_topic(kafka_bootstrap, f"{prefix}contacts.routed")
        # Every topic vocflow writes (ours and Faust's, named after the app id = the
        # prefix without its dot) but the two restricted ones holding clear
        # text; contacts.resolutions is written by the department systems, not by us.
        inputs = ("contacts.raw", "contacts.voc", "contacts.resolutions")
        admin = kafka_clients.admin(kafka_bootstrap)
        published = sorted(
            t
            for t in admin.list_topics()
            if t.startswith(prefix.rstrip(".")) and t not in [prefix + i for i in inputs]
        )
        admin.close()
        published_records = {t: read_topic(kafka_bootstrap, t) for t in published}
    return {
        "env": env,
        "events": events,
        "profiles": profiles,
        "gold": gold,
        "planted": planted,
        "envelopes": envelopes,
        "dept_records": dept_records,
        "dept_topics": dept_topics,
        "resolved": resolved,
        "routed_topic": routed_topic,
        "published_records": published_records,
        "log": data / "worker.log",
        "prefix": prefix,
    }


def test_each_contact_lands_in_exactly_one_department_topic(voc_run: dict[str, Any]) -> None:
    """...or in contacts.triage, when no rule pinned it and the model was unsure."""
    counts = Counter(
        RoutingEnvelope.model_validate_json(r.value).contact_id for _, r in voc_run["dept_records"]
    )
    assert len(counts) == CONTACTS
    assert set(counts.values()) == {1}
    triaged = 0
    for topic, record in voc_run["dept_records"]:
        envelope = RoutingEnvelope.model_validate_json(record.value)
        if is_triage(envelope):
            triaged += 1
            assert topic == f"{voc_run['prefix']}contacts.triage"
            assert len(envelope.candidates) == 2
        else:
            assert topic == f"{voc_run['prefix']}dept.{envelope.department}"
        assert record.key.decode() == envelope.contact_id
    assert 0 < triaged < CONTACTS * 0.10
    assert len(voc_run["routed_topic"]) == CONTACTS


def test_departments_match_the_stage_functions_run_in_order(voc_run: dict[str, Any]) -> None:
    """The agent (tables, partitions, state) decides what the pure chain decides."""
    rules = load_rules(DEFAULT_RULES_FILE)
    last: dict[str, LastIssue] = {}
    routed: set[str] = set()
    expected: dict[str, tuple[str, str, bool]] = {}
    for event in voc_run["events"]:
        result = analyse_and_route(
            event,
            voc_run["profiles"],
            rules,
            datetime.now(UTC),
            last.get,
            already_routed=event.contact_id in routed,
            window=timedelta(hours=24),
            model=default_model(),
        )
        if result.repeat_key is not None:
            last[result.repeat_key] = result.last_issue
        if result.envelope is not None:
            routed.add(event.contact_id)
            env = result.envelope
            expected[env.contact_id] = (env.department, env.tags.urgency.value, env.repeat_contact)
    got = {
        c: (e.department, e.tags.urgency.value, e.repeat_contact)
        for c, e in voc_run["envelopes"].items()
    }
    assert got == expected
    assert sum(e.repeat_contact for e in voc_run["envelopes"].values()) > 100
    assert (
        sum(
            e.customer_tier is not None and e.customer_tier.value == "vip"
            for e in voc_run["envelopes"].values()
        )
        > 100
    )


def test_labelled_departments(voc_run: dict[str, Any]) -> None:
    gold = voc_run["gold"]
    """Agreement with the simulator's labels. The simulator's texts were written with
    the rules (the rules alone agreed with over 0.90 of them, this test's former
    bound); the department model, trained on independently written text and judged
    on it (docs/voc.md), agreed with 0.83 of them when it joined: this guards against
    a broken pipeline, not the model's quality. Items in triage count as misses."""
    hits = sum(
        e.department == gold[c] and not is_triage(e) for c, e in voc_run["envelopes"].items()
    )
    assert hits / CONTACTS >= 0.80


def test_no_clear_text_pii_downstream(voc_run: dict[str, Any]) -> None:
    planted = voc_run["planted"]
    assert len(planted) > 1000
    digits = re.compile(r"\d")

    def alternation(values: list[str]) -> re.Pattern[str]:
        """One regex for all values, as a trie (shared prefixes merged): at each
        position only the branches that match go on, so a scan costs about the
        same for 1,000 values as for one (a flat alternation took a minute)."""
        trie: dict[str, Any] = {}
        for value in values:
            node = trie
            for ch in value:
                node = node.setdefault(ch, {})
            node[""] = {}

        def pattern(node: dict[str, Any]) -> str:
            branches = [re.escape(ch) + pattern(child) for ch, child in node.items() if ch]
            if not branches:
                return ""
            body = "(?:" + "|".join(branches) + ")"
            return body + "?" if "" in node else body  # greedy: the longest value wins

        return re.compile(pattern(trie))

    # One scan per blob instead of one per planted value (minutes over ~1,000 values):
    # a blob holds a planted value iff the alternation matches somewhere in it.
    anywhere = alternation(list(planted))
    # numbers also when spaces or dashes were put in them
    spaced = alternation([p for p in planted if digits.search(p)])

    def leaks(blob: str) -> list[str]:
        flat = re.sub(r"[\s-]", "", blob)
        return sorted(set(anywhere.findall(blob)) | set(spaced.findall(flat)))

    published = voc_run["published_records"]
    prefix = voc_run["prefix"]
    # the canonical stream, the audit copy, the state changelogs and a department topic
    names = ("contacts.events", "contacts.routed", "contacts.voc-state", "contacts.facts-state")
    for name in (*names, "dept.billing"):
        assert len(published[prefix + name]) > 0, name
    for topic, records in published.items():
        for record in records:
            assert leaks(record.value.decode(errors="replace") if record.value else "") == [], topic
    tables = vocflow(
        "sql",
        "--json",
        "SELECT name FROM system.tables WHERE database = 'vocflow'",
        env=voc_run["env"],
    )
    assert tables.returncode == 0, tables.stderr
    names = [row["name"] for row in json.loads(tables.stdout)]
    assert {"routing_log", "resolutions", "contact_events", "contact_facts"} <= set(names)
    for table in names:
        dump = vocflow("sql", "--json", f"SELECT * FROM vocflow.`{table}`", env=voc_run["env"])
        assert dump.returncode == 0, dump.stderr
        assert leaks(dump.stdout) == [], table
    assert leaks(Path(voc_run["log"]).read_text(errors="replace")) == []
    masked = [e.text for e in voc_run["envelopes"].values() if "[" in e.text]
    assert any("[PHONE]" in t for t in masked) and any("[ID]" in t for t in masked)
    assert any("[CARD]" in t for t in masked) and any("[EMAIL]" in t for t in masked)


def test_resolutions_close_items_with_sla_and_reopens(voc_run: dict[str, Any]) -> None:
    result = vocflow(
        "sql",
        "--json",
        "SELECT contact_id, resolved_at IS NOT NULL AS done, "
        "sla_met, time_to_resolve_seconds, reopened FROM vocflow.routed_items",
        env=voc_run["env"],
    )
    assert result.returncode == 0, result.stderr
    rows = {r["contact_id"]: r for r in json.loads(result.stdout)}
    assert len(rows) == CONTACTS
    resolved = voc_run["resolved"]
    assert {c for c, r in rows.items() if r["done"]} == set(resolved)
    assert {c: bool(rows[c]["sla_met"]) for c in resolved} == resolved
    assert all(rows[c]["sla_met"] is None for c in rows if c not in resolved)
    envelopes = voc_run["envelopes"]
    repeated = {e.previous_contact_id for e in envelopes.values() if e.previous_contact_id}
    assert {c for c, r in rows.items() if r["reopened"]} == repeated & set(resolved)
