"""Every Kafka topic vocflow reads or writes, in one place.

Names are logical; `Topics.name()` adds the configured prefix, so several
deployments (or tests) can share one cluster without seeing each other's data.
"""

from __future__ import annotations

from dataclasses import dataclass

from vocflow.streams.core.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    key: str
    value: str
    compacted: bool = False
    partitions: int | None = None  # None: Settings.partitions
    max_message_bytes: int | None = None  # None: the broker's default (1 MB)


RAW = TopicSpec("contacts.raw", "Channel JSON as adapters publish it.", "contact_id", "raw bytes")
EVENTS = TopicSpec("contacts.events", "Validated ContactEvent JSON.", "contact_id", "ContactEvent")
DLQ = TopicSpec(
    "contacts.dlq", "Rejected input with reason and original bytes.", "original key", "DeadLetter"
)
VOC = TopicSpec(
    "contacts.voc",
    "Events with customer text in clear, for enrich/tag/route (restricted: docs/security.md).",
    "customer_id (contact_id if unknown)",
    "ContactEvent",
)
ROUTED = TopicSpec(
    "contacts.routed",
    "Every routing decision (audit log -> ClickHouse routing_log).",
    "contact_id",
    "RoutingEnvelope",
)
TRIAGE = TopicSpec(
    "contacts.triage",
    "Contacts the department model was unsure of and no rule pinned: the two best "
    "candidates, for a person to pick (RoutingEnvelope with candidates).",
    "contact_id",
    "RoutingEnvelope",
)
VOC_STATE = TopicSpec(
    "contacts.voc-state",
    "The voc loop's memory (repeat keys, routed contacts), written in its transactions.",
    "i|customer|category or r|contact_id",
    "JSON (streams/stages/voc_state.py)",
    compacted=True,
)
FACTS = TopicSpec(
    "contacts.facts",
    "Folded contact facts: the latest version of each contact a transaction changed.",
    "contact_id",
    "ContactFact JSON (streams/kpi/models.py)",
)
FACTS_STATE = TopicSpec(
    "contacts.facts-state",
    "The facts loop's memory (the current fact of each contact), written in its transactions.",
    "contact_id",
    "ContactFact JSON (streams/stages/facts_state.py); a tombstone when forgotten",
    compacted=True,
)
VOC_ALERTS = TopicSpec(
    "alerts.voc",
    "Emerging-issue alerts (surges), masked samples.",
    "alert_id",
    "VocAlert",
)
DEPARTMENT_PREFIX = "dept."
AGENTS = TopicSpec("agents.events", "Agent state changes.", "agent_id", "AgentEvent")
SHIFTS = TopicSpec(
    "agents.shifts",
    "Scheduled shift segments from WFM files (`vocflow shifts load`).",
    "agent_id|start (UTC)",
    "ShiftRecord",
    compacted=True,
)
RESOLUTIONS = TopicSpec(
    "contacts.resolutions", "Department resolutions (closed loop).", "contact_id", "Resolution"
)
PROFILES = TopicSpec(
    "customers.profiles",
    "Latest customer profile.",
    "customer_id",
    "CustomerProfile",
    compacted=True,
)
RULES = TopicSpec(
    "config.rules",
    "Tagging rules versions (hot reload).",
    "'rules'",
    "rules YAML",
    compacted=True,
    partitions=1,
)
MODELS = TopicSpec(
    "config.models",
    "Department model versions (hot reload; a version scoring worse on the holdout is "
    "rejected by the workers).",
    "'department'",
    "model weights text (streams/stages/deptmodel.py), zlib-compressed",
    compacted=True,
    partitions=1,
    max_message_bytes=16 * 1024 * 1024,  # a model is a few MB before compression
)

ALL: tuple[TopicSpec, ...] = (
    RAW,
    EVENTS,
    DLQ,
    VOC,
    VOC_STATE,
    ROUTED,
    TRIAGE,
    FACTS,
    FACTS_STATE,
    VOC_ALERTS,
    AGENTS,
    SHIFTS,
    RESOLUTIONS,
    PROFILES,
    RULES,
    MODELS,
)


def department_spec(department: str) -> TopicSpec:
    """`dept.<department>`: what one department's systems consume (masked text only)."""
    return TopicSpec(
        f"{DEPARTMENT_PREFIX}{department}",
        f"Contacts routed to {department}.",
        "contact_id",
        "RoutingEnvelope",
    )


class Topics:
    """Resolves logical topic specs to the names and partition counts of one deployment."""

    def __init__(self, settings: Settings) -> None:
        self._prefix = settings.topic_prefix
        self._partitions = settings.partitions
        self.replication_factor = settings.replication_factor

    def name(self, spec: TopicSpec) -> str:
        return f"{self._prefix}{spec.name}"

    def partitions(self, spec: TopicSpec) -> int:
        return spec.partitions or self._partitions

    def configs(self, spec: TopicSpec) -> dict[str, str]:
        out: dict[str, str] = {}
        if spec.compacted:
            out["cleanup.policy"] = "compact"
        if spec.max_message_bytes is not None:
            out["max.message.bytes"] = str(spec.max_message_bytes)
        return out
