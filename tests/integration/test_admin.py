"""Topic administration (streams/core/admin.py) against the real broker."""

from __future__ import annotations

from tests.integration.conftest import wait_for
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.admin import delete_topics_with_prefix, ensure_topics
from vocflow.streams.core.settings import Settings


def _topics(bootstrap: str) -> set[str]:
    admin = kafka_clients.admin(bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_topics_with_a_prefix_are_deleted_and_no_others(kafka_bootstrap: str) -> None:
    run = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix="deltest.")
    neighbour = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix="deltestkeep.")
    ensure_topics(run, (T.RAW, T.EVENTS))
    ensure_topics(neighbour, (T.RAW,))

    deleted = delete_topics_with_prefix(run, "deltest.")

    assert deleted == ["deltest.contacts.events", "deltest.contacts.raw"]
    wait_for(
        lambda: not any(t.startswith("deltest.") for t in _topics(kafka_bootstrap)),
        60,
        "the deleted topics gone from the broker",
    )
    assert "deltestkeep.contacts.raw" in _topics(kafka_bootstrap)
    assert delete_topics_with_prefix(run, "deltest.") == []
