"""What the `vocflow` commands share: the usage error, loading settings (and with
them the pseudonym key), logging, rules, Kafka topics and the ClickHouse store.

Heavy modules (Kafka admin, ClickHouse, the rules engine) are imported inside the
helpers, so that `vocflow --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vocflow.streams.core.settings import Settings, load_settings
from vocflow.streams.privacy import pseudonyms

if TYPE_CHECKING:
    from collections.abc import Callable

    # What `ArgumentParser.add_subparsers` returns; a group module adds its commands to it.
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

    # Adds one command (its options, help texts and handler) to the subparsers.
    AddCommand = Callable[[Subparsers], None]

EXIT_USAGE = 2


class UserError(Exception):
    """Printed as `vocflow: error: ...` with exit code 2."""


def command_settings(
    args: argparse.Namespace,
    *,
    pseudonymize: bool = True,
    setup_logging: bool = False,
    **overrides: Any,
) -> Settings:
    """The command's settings: defaults < --config/VOCFLOW_CONFIG < VOCFLOW_* env <
    --data-dir, --bootstrap, --web-port and `overrides` (None: not given).

    `setup_logging` configures the root logger from them. `pseudonymize` (the
    default) configures this process's pseudonym key from them (VOCFLOW_PSEUDONYM_KEY,
    else <data dir>/pseudonym.key, created if missing), so that no record is ever
    pseudonymized with the public development key; only commands that handle no
    contact, agent or customer record turn it off, so that they need no writable
    data dir.
    """
    given = {
        "data_dir": getattr(args, "data_dir", None),
        "kafka_bootstrap": getattr(args, "bootstrap", None),
        "web_port": getattr(args, "web_port", None),
    }
    settings = load_settings(config_file=args.config, **(given | overrides))
    if setup_logging:
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    if pseudonymize:
        _configure_pseudonyms(settings)
    return settings


LOOPBACK_HOSTS = frozenset({"localhost", "::1", "[::1]"})


def _on_this_machine(settings: Settings) -> bool:
    """Whether every bootstrap server is on loopback: a single-machine setup, whose
    processes can share the data dir's key file."""
    hosts = [
        server.rpartition(":")[0] or server for server in settings.bootstrap_servers.split(",")
    ]
    return all(h in LOOPBACK_HOSTS or h.startswith("127.") for h in (x.strip() for x in hosts))


def _configure_pseudonyms(settings: Settings) -> None:
    if settings.pseudonym_key is None and not _on_this_machine(settings):
        # A key file created in one host's data dir is not shared: a second host
        # would make its own, and the same phone number would get two pseudonyms
        # (repeat detection and profile joins across hosts would break silently).
        raise UserError(
            f"the Kafka cluster {settings.bootstrap_servers} is not on this machine, so every "
            "vocflow process of the deployment must use one pseudonym key: set "
            "VOCFLOW_PSEUDONYM_KEY or VOCFLOW_PSEUDONYM_KEY_FILE (docs/security.md, "
            '"Pseudonym key")'
        )
    path = settings.data_dir / pseudonyms.KEY_FILE
    try:
        pseudonyms.configure(settings)
    except OSError as exc:
        raise UserError(
            f"cannot read or create the pseudonym key {path}: {exc.strerror or exc}; "
            "set VOCFLOW_PSEUDONYM_KEY or --data-dir"
        ) from None
    except ValueError:
        raise UserError(
            f"pseudonym key file {path} does not hold a hex key: restore it (every process "
            "of a deployment needs the same key) or set VOCFLOW_PSEUDONYM_KEY"
        ) from None


def load_rules(path: Path):  # type: ignore[no-untyped-def]
    from vocflow.streams.stages.rules import RulesError
    from vocflow.streams.stages.rules import load_rules as load

    try:
        return load(path)
    except RulesError as exc:
        raise UserError(f"invalid rules file: {exc}") from None


def prepare_kafka(settings: Settings, departments: list[str] = ()) -> None:  # type: ignore[assignment]
    from vocflow.streams.core import topics as T
    from vocflow.streams.core.admin import KafkaUnavailable, ensure_topics

    specs = T.ALL + tuple(T.department_spec(d) for d in departments)
    try:
        ensure_topics(settings, specs)
    except KafkaUnavailable as exc:
        raise UserError(str(exc)) from None


def open_store(settings: Settings):  # type: ignore[no-untyped-def]
    from vocflow.sinks.clickhouse.store import ClickHouseError, ClickHouseStore

    try:
        store = ClickHouseStore.from_settings(settings)
    except ClickHouseError as exc:
        raise UserError(str(exc)) from None
    try:
        store.migrate()
        return store
    except ClickHouseError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # DDL refused: name the store and the first line of the reason
        reason = store.redact(str(exc)).strip().splitlines()[0][:300]
        raise UserError(
            f"ClickHouse at {settings.clickhouse_dsn} refused the schema: {reason}"
        ) from None
