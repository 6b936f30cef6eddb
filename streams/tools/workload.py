"""The bench's workload: N simulated contact events, spooled to one file.

The end-to-end and baseline runs need the same records in the same order, and
at 1,000,000 events a list of Python objects would cost more memory than the
worker being measured. So the records are generated once (the day simulator,
`streams/tools/simulator`, contact events only, plus a share of malformed
input for the dead-letter path) into a file of length-prefixed records, and
read back in batches as often as a section needs them.

What the runs wait for is counted while spooling: valid events (rows of
contact_events) and contacts with customer text (one routing decision each).
"""

from __future__ import annotations

import itertools
import math
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from vocflow.streams.stages.routing import VOC_EVENT_TYPES
from vocflow.streams.tools.simulator import SimConfig, simulate
from vocflow.streams.tools.traffic import MALFORMED_KINDS, Raw, malformed

# Oversized input is left out: built under the worker's 1 MB limit it is a valid
# event with a huge text (it measures enrich on one text, not the pipeline), built
# over it a thousand of them fill the broker's disk with bytes nobody reads.
KINDS = tuple(k for k in MALFORMED_KINDS if k != "oversized")
# Contact events per simulated contact (offered, queued, answered, ...): sizes the
# simulated day so that it holds at least the events asked for.
EVENTS_PER_CONTACT = 5.0
_HEAD = struct.Struct("<IIB")
_VOC_TYPES = frozenset(t.value for t in VOC_EVENT_TYPES)


@dataclass(frozen=True)
class Workload:
    """A spooled workload and what a pipeline must make of it."""

    path: Path
    events: int  # records in contacts.raw
    valid: int  # events that normalize (rows of contact_events)
    with_text: int  # events with customer text (enrich/tag/route input)
    routed: int  # distinct contacts with such text: one routing decision each

    def records(self, limit: int | None = None) -> Iterator[Raw]:
        """The records in order (the first `limit` only, if given)."""
        with self.path.open("rb") as f:
            for _ in range(self.events if limit is None else min(limit, self.events)):
                head = f.read(_HEAD.size)
                if len(head) < _HEAD.size:
                    return
                klen, vlen, flags = _HEAD.unpack(head)
                key = f.read(klen)
                yield Raw(key=key, value=f.read(vlen), valid=bool(flags & 1))

    def batches(self, size: int = 10_000) -> Iterator[list[Raw]]:
        it = self.records()
        while batch := list(itertools.islice(it, size)):
            yield batch

    @property
    def text_share(self) -> float:
        return self.with_text / self.events if self.events else 0.0


def sim_config(events: int, seed: int = 42, id_prefix: str = "bench") -> SimConfig:
    """A 24 h simulated day with at least `events` contact events."""
    per_day = max(1_000, math.ceil(events / EVENTS_PER_CONTACT * 1.1))
    return SimConfig(
        seed=seed, contacts_per_day=per_day, customers=max(20_000, per_day // 2),
        emit_profiles=False, id_prefix=id_prefix,
    )  # fmt: skip


def carries_text(value: dict) -> bool:
    """Mirror of stages.routing.carries_voc_text on the raw dict (no model built)."""
    text = value.get("text")
    return value.get("event_type") in _VOC_TYPES and bool(text and str(text).strip())


def simulated_events(
    events: int, seed: int = 42, malformed_ratio: float = 0.01, id_prefix: str = "bench"
) -> Iterator[tuple[Raw, bool, str]]:
    """(record, carries text, contact id) for `events` raw records: simulated contact
    events in event-time order, each followed with probability `malformed_ratio`
    by a broken record (kinds in turn). Contact ids start with `id_prefix`."""
    rng = random.Random(seed)
    n = bad = 0
    for rec in simulate(sim_config(events, seed, id_prefix)):
        if rec.kind != "contact":
            continue
        value = rec.value
        yield (
            Raw(key=rec.key.encode(), value=orjson.dumps(value), valid=True),
            carries_text(value),
            str(value.get("contact_id")),
        )
        n += 1
        if n >= events:
            return
        if malformed_ratio and rng.random() < malformed_ratio:
            kind = KINDS[bad % len(KINDS)]
            bad += 1
            yield Raw(key=b"malformed", value=malformed(rng, kind, bad), valid=False), False, ""
            n += 1
            if n >= events:
                return
    raise ValueError(f"the simulated day held only {n:,} events, {events:,} asked for")


def spool(path: Path, events: int, seed: int = 42, malformed_ratio: float = 0.01) -> Workload:
    """Generate the workload into `path` and count what the pipeline must produce."""
    valid = with_text = 0
    routed: set[str] = set()
    written = 0
    with path.open("wb") as f:
        for raw, text, contact in simulated_events(events, seed, malformed_ratio):
            f.write(_HEAD.pack(len(raw.key), len(raw.value), int(raw.valid)))
            f.write(raw.key)
            f.write(raw.value)
            written += 1
            valid += raw.valid
            if text:
                with_text += 1
                routed.add(contact)
    return Workload(path, written, valid, with_text, len(routed))
