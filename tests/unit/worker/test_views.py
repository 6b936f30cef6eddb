"""The compacted-topic views' record handling (the Kafka part is in integration)."""

from __future__ import annotations

from vocflow.schemas import CustomerProfile
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core.settings import DEFAULT_RULES_FILE
from vocflow.streams.stages.rules import load_rules
from vocflow.streams.worker.views import ProfileStore, RulesHolder

NEW_RULES = DEFAULT_RULES_FILE.read_text(encoding="utf-8").replace(
    'version: "2026.11-1"', 'version: "test-2"'
)


def test_profiles_upsert_and_tombstone() -> None:
    store = ProfileStore()
    store.on_record(
        b"C1", CustomerProfile(customer_id="C1", tier="vip").model_dump_json().encode(), {}, 0
    )
    assert store["C1"].tier.value == "vip"
    store.on_record(b"C1", None, {}, 1)
    assert "C1" not in store


def test_invalid_profile_is_counted_and_ignored() -> None:
    store = ProfileStore()
    before = metrics.VIEW_REJECTS.labels("customers.profiles")._value.get()
    store.on_record(b"C1", b'{"customer_id": "C1", "tier": "platinum"}', {}, 7)
    assert store == {}
    assert metrics.VIEW_REJECTS.labels("customers.profiles")._value.get() == before + 1


def test_rules_hot_reload_valid_then_invalid_keeps_last_good(caplog) -> None:  # type: ignore[no-untyped-def]
    holder = RulesHolder(load_rules(DEFAULT_RULES_FILE))
    holder.on_record(b"rules", NEW_RULES.encode(), {"filename": b"new.yaml"}, 3)
    assert holder.current.version == "test-2"
    assert metrics.RULES_INFO.labels("test-2")._value.get() == 1
    rejected = metrics.RULES_RELOADS.labels("rejected")._value.get()
    bad = NEW_RULES.replace('version: "test-2"', 'version: "test-3"').replace(
        "rules:\n",
        "rules:\n  - id: broken\n    when: {regex: '('}\n    set: {department: billing}\n",
        1,
    )
    holder.on_record(b"rules", bad.encode(), {"filename": b"bad.yaml"}, 4)
    assert holder.current.version == "test-2"
    assert metrics.RULES_RELOADS.labels("rejected")._value.get() == rejected + 1
    message = caplog.records[-1].getMessage()
    assert message.startswith("rules version rejected, keeping test-2: bad.yaml (config.rules@4):")
    assert "broken" in message


def test_profiles_come_back_as_they_were_validated() -> None:
    store = ProfileStore()
    full = CustomerProfile(
        customer_id="C2", tier="vip", city="杭州", region="浙江", tenure_months=30, products=["5G"]
    )
    bare = CustomerProfile(customer_id="C3")
    for p in (full, bare):
        store.on_record(p.customer_id.encode(), p.model_dump_json().encode(), {}, 0)
    assert store["C2"] == full
    assert store.get("C3") == bare
    assert store.get("C4") is None
    assert sorted(store) == ["C2", "C3"] and len(store) == 2
