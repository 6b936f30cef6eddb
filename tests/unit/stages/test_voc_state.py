"""The voc loop's memory: what it journals, what it forgets, what it restores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from vocflow.streams.stages.routing import LastIssue
from vocflow.streams.stages.voc_state import VocState

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)


def test_changes_are_journalled_once_per_key_with_the_latest_value() -> None:
    state = VocState(WINDOW)
    state.remember_issue("C1|billing", LastIssue("c1", T0))
    state.remember_issue("C1|billing", LastIssue("c2", T0 + timedelta(hours=1)))
    state.remember_routed("c2", "billing", T0 + timedelta(hours=1))
    assert state.take_journal() == [
        (b"i|C1|billing", orjson.dumps({"contact_id": "c2", "at": "2026-11-23T02:00:00+00:00"})),
        (b"r|c2", orjson.dumps({"department": "billing", "at_ms": 1795399200000})),
    ]
    assert state.take_journal() == []
    state.remember_issue("C1|billing", LastIssue("c2", T0 + timedelta(hours=1)))
    assert state.take_journal() == []  # unchanged: nothing to write


def test_entries_are_forgotten_two_windows_after_the_newest_event_time() -> None:
    state = VocState(WINDOW)
    state.remember_issue("C1|billing", LastIssue("c1", T0))
    state.remember_routed("c1", "billing", T0)
    state.observe(T0)
    state.take_journal()
    state.observe(T0 + 2 * WINDOW)  # exactly two windows: still remembered
    assert state.last_issue("C1|billing") == LastIssue("c1", T0)
    assert state.already_routed("c1")
    assert state.take_journal() == []
    state.observe(T0 + 2 * WINDOW + timedelta(minutes=1))
    assert state.last_issue("C1|billing") is None
    assert not state.already_routed("c1")
    assert state.take_journal() == [(b"i|C1|billing", None), (b"r|c1", None)]


def test_an_event_back_in_time_forgets_nothing() -> None:
    state = VocState(WINDOW)
    state.remember_issue("C1|billing", LastIssue("c1", T0))
    state.observe(T0 + timedelta(days=1))
    state.observe(T0 - timedelta(days=30))
    assert state.newest_ms == int((T0 + timedelta(days=1)).timestamp() * 1000)
    assert state.last_issue("C1|billing") == LastIssue("c1", T0)


def test_restore_replays_the_changelog_in_order_and_journals_what_is_already_too_old() -> None:
    old = VocState(WINDOW)
    old.remember_issue("C1|billing", LastIssue("c1", T0))
    old.remember_issue("C2|network", LastIssue("c2", T0 + timedelta(days=3)))
    old.remember_routed("c1", "billing", T0)
    old.remember_routed("c2", "network", T0 + timedelta(days=3))
    log = old.take_journal()
    log.append((b"r|c2", None))  # routed, then forgotten
    log.append((b"x|from-a-newer-version", b"{}"))  # ignored
    state = VocState(WINDOW)
    state.restore(log)
    assert state.issues == {"C2|network": LastIssue("c2", T0 + timedelta(days=3))}
    assert state.routed == {}
    # c1's entries are three days older than c2's: forgotten, and their tombstones
    # go out with the next transaction so the compacted changelog forgets them too.
    assert state.take_journal() == [(b"i|C1|billing", None), (b"r|c1", None)]


def test_an_entry_written_again_is_forgotten_by_its_latest_time_only() -> None:
    """Expiry pops entries oldest first: an entry written again later (a newer
    issue of the same key, a second write at the same time) is judged by its
    latest time, and forgotten once."""
    state = VocState(WINDOW)
    state.remember_issue("C1|billing", LastIssue("c1", T0))
    state.remember_issue("C1|billing", LastIssue("c2", T0 + timedelta(hours=3)))
    state.remember_issue("C2|network", LastIssue("c3", T0))
    state.remember_issue("C2|network", LastIssue("c4", T0))  # same time, other contact
    state.remember_routed("c1", "billing", T0)
    state.remember_routed("c1", "billing", T0 + timedelta(hours=3))
    state.take_journal()
    state.observe(T0 + 2 * WINDOW + timedelta(minutes=1))
    assert state.last_issue("C1|billing") == LastIssue("c2", T0 + timedelta(hours=3))
    assert state.already_routed("c1")
    assert state.take_journal() == [(b"i|C2|network", None)]
    state.observe(T0 + 2 * WINDOW + timedelta(hours=3, minutes=1))  # = two ROUTED_MEMORY
    assert state.take_journal() == [(b"i|C1|billing", None), (b"r|c1", None)]
    assert state.issues == {} and state.routed == {}
