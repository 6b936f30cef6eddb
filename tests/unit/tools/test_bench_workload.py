"""The bench's workload file and the baseline's chain of stages, without Kafka."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import load_settings
from vocflow.streams.stages.rules import load_rules
from vocflow.streams.tools.baseline import BaselineResult, Stages
from vocflow.streams.tools.workload import simulated_events, spool


class Record(NamedTuple):
    """What the baseline reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    timestamp: int


def test_spooled_workload_reads_back_the_generated_records(tmp_path: Path) -> None:
    generated = list(simulated_events(600, seed=5))
    work = spool(tmp_path / "w.bin", 600, seed=5)
    assert work.events == 600
    assert work.valid == sum(raw.valid for raw, _, _ in generated)
    assert work.with_text == sum(text for _, text, _ in generated)
    assert work.routed == len({contact for _, text, contact in generated if text})
    assert work.valid < work.events  # the malformed share is there (1 %)
    # Malformed records carry traffic.malformed's own time stamp: compare the valid ones whole.
    assert [(r.key, r.value if r.valid else b"", r.valid) for r in work.records()] == [
        (raw.key, raw.value if raw.valid else b"", raw.valid) for raw, _, _ in generated
    ]
    assert [len(b) for b in work.batches(250)] == [250, 250, 100]
    assert len(list(work.records(limit=7))) == 7


def test_the_text_share_of_the_simulated_events_is_at_least_a_fifth(tmp_path: Path) -> None:
    work = spool(tmp_path / "w.bin", 3_000, seed=42)
    assert work.text_share >= 0.20


def test_baseline_stages_produce_what_the_worker_produces(tmp_path: Path) -> None:
    settings = load_settings(environ={}, data_dir=tmp_path)
    out = T.Topics(settings.model_copy(update={"topic_prefix": "b."}))
    rules = load_rules(settings.rules_path)
    stages = Stages(settings, out, rules)
    work = spool(tmp_path / "w.bin", 400, seed=9)
    topics: Counter[str] = Counter()
    facts_of: list[set[bytes]] = []  # contacts with a fact message, per batch
    for offset, raw in enumerate(work.records()):
        record = Record("contacts.raw", 0, offset, raw.key, raw.value, 0)
        for topic, _key, _value in stages.process(record, _now()):
            topics[topic] += 1
        if offset % 100 == 99:  # the end of a getmany batch
            keys = [key for _t, key, _v in stages.facts_of_batch()]
            assert len(keys) == len(set(keys)) > 0  # one message a contact and batch
            facts_of.append(set(keys))
            topics["b.contacts.facts"] += len(keys)
    assert len(facts_of) == 4
    assert set().union(*facts_of) == {
        raw.key for raw in work.records() if raw.valid
    }  # every contact's latest fact is sent
    depts = {out.name(T.department_spec(d)) for d in rules.departments}
    assert stages.counts["events"] == topics["b.contacts.events"] == work.valid
    assert stages.counts["dlq"] == topics["b.contacts.dlq"] == work.events - work.valid
    assert stages.counts["voc"] == topics["b.contacts.voc"] == work.with_text
    assert stages.counts["routed"] == topics["b.contacts.routed"] == work.routed
    assert sum(n for t, n in topics.items() if t in depts) == work.routed
    assert stages.counts["facts"] == topics["b.contacts.facts"] > 0
    assert set(topics) <= depts | {
        "b.contacts.events", "b.contacts.dlq", "b.contacts.voc", "b.contacts.routed",
        "b.contacts.facts",
    }  # fmt: skip


def test_baseline_result_rates() -> None:
    result = BaselineResult(events=20_000, seconds=8.0, cpu_seconds=6.0, peak_rss_mib=200.0,
                            outputs={})  # fmt: skip
    assert result.rate == 2_500.0
    assert result.cpu_per_1k == 0.3
    assert BaselineResult(0, 0.0, 0.0, 0.0, {}).rate == 0.0


def _now() -> datetime:
    """A fixed clock: routing stamps SLA due times from it."""
    return datetime(2026, 11, 23, 12, tzinfo=UTC)
