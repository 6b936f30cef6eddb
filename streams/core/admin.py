"""Cluster checks and topic creation, done before any agent starts.

Faust only declares its own internal topics; ours are created here with
explicit partition counts, so a typo or a missing topic fails at start-up
instead of being auto-created with the broker's defaults.
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from vocflow.streams.core import kafka_clients, kafka_diagnosis
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings

log = logging.getLogger(__name__)


class KafkaUnavailable(Exception):
    """No broker answered; the message says where we looked and what to do."""


def connect_admin(settings: Settings, timeout_s: float = 10.0) -> KafkaAdminClient:
    """An admin client, or KafkaUnavailable within about `timeout_s`."""
    try:
        return kafka_clients.admin(
            settings,
            "admin",
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaError, OSError) as exc:
        cause = kafka_diagnosis.diagnose(settings, timeout_s)
        if cause is not None:
            raise KafkaUnavailable(f"cannot connect to Kafka: {cause}") from None
        hint = (
            "start it with `vocflow broker up`"
            if settings.uses_local_broker
            else "check VOCFLOW_KAFKA_BOOTSTRAP and that the cluster is reachable"
        )
        raise KafkaUnavailable(
            f"no Kafka broker answered at {settings.bootstrap_servers} "
            f"({type(exc).__name__}); {hint}"
        ) from None


def ensure_topics(settings: Settings, specs: tuple[T.TopicSpec, ...] = T.ALL) -> list[str]:
    """Create missing topics; return the names created. Existing ones are left as they are."""
    topics = T.Topics(settings)
    admin = connect_admin(settings)
    try:
        existing = set(admin.list_topics())
        wanted = []
        for spec in specs:
            name = topics.name(spec)
            if name in existing:
                continue
            configs = topics.configs(spec)
            if spec is T.DLQ:
                configs = {**configs, "max.message.bytes": str(kafka_clients.MAX_MESSAGE_BYTES)}
            wanted.append(
                NewTopic(
                    name=name,
                    num_partitions=topics.partitions(spec),
                    replication_factor=topics.replication_factor,
                    topic_configs=configs,
                )
            )
        created = []
        for new in wanted:
            try:
                admin.create_topics([new])
                created.append(new.name)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        admin.close()


def delete_topics_with_prefix(settings: Settings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix`; return their names.

    For throw-away runs (`vocflow bench`): each run creates a few hundred
    partitions under its own prefix, and left on the broker they pile up (11 GB
    of them on one development machine) and fill the metadata every client
    fetches."""
    if not prefix:
        raise ValueError("refusing to delete every topic (empty prefix)")
    admin = connect_admin(settings)
    try:
        doomed = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        if doomed:
            admin.delete_topics(doomed)
            log.info("deleted %d topic(s) starting with %s", len(doomed), prefix)
        return doomed
    finally:
        admin.close()


def describe_topics(
    settings: Settings, departments: list[str] | tuple[str, ...] = ()
) -> list[dict[str, object]]:
    """Name, partitions and whether it exists, for `vocflow topics`."""
    topics = T.Topics(settings)
    specs = T.ALL + tuple(T.department_spec(d) for d in departments)
    names = [topics.name(spec) for spec in specs]
    admin = connect_admin(settings)
    try:
        existing = [name for name in names if name in set(admin.list_topics())]
        meta = {t["name"]: t for t in admin.describe_topics(existing)} if existing else {}
    finally:
        admin.close()
    rows = []
    for spec in specs:
        name = topics.name(spec)
        info = meta.get(name)
        rows.append(
            {
                "topic": name,
                "exists": info is not None,
                "partitions": len(info["partitions"]) if info else topics.partitions(spec),
                "compacted": spec.compacted,
                "key": spec.key,
                "value": spec.value,
                "description": spec.description,
            }
        )
    return rows
