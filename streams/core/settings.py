"""Runtime settings: defaults, overridden by a YAML file, overridden by VOCFLOW_* env vars.

Validated once at start-up; a bad value fails fast naming the file (and line)
or the environment variable it came from, so an operator knows what to fix.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from vocflow.streams.core import configfile

ENV_PREFIX = "VOCFLOW_"
CONFIG_ENV = "VOCFLOW_CONFIG"
DEFAULT_RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "default_rules.yaml"
SECRET_FILE_SUFFIX = "_file"
"""``<secret>_file`` (``VOCFLOW_<SECRET>_FILE``): read a secret setting from a
file, as mounted secrets (Kubernetes, systemd credentials, Vault agent) are."""


class ConfigError(Exception):
    """A setting is wrong; the message says where it came from and why."""


def _readable_file(path: Path) -> Path:
    """A certificate or key file must be there at start, not at the first
    TLS handshake minutes later (or never, on a quiet topic)."""
    if not path.is_file():
        raise ValueError(f"no such file: {path}" if not path.exists() else f"not a file: {path}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"cannot read {path}: permission denied")
    return path


ReadableFile = Annotated[Path, AfterValidator(_readable_file)]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(
        default=Path(".vocflow"), description="Broker data, embedded ClickHouse, logs."
    )
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port]; unset: the local broker of `vocflow broker up`.",
    )
    broker_port: int = Field(default=9092, ge=1, le=65535, description="Port of the local broker.")
    # ---- Kafka security (docs/security.md); every client takes them from
    # streams/core/kafka_clients.py, so one setting reaches every process.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="PLAINTEXT (the local broker only), SSL (TLS; with kafka_ssl_certfile: "
        "mutual TLS) or SASL_SSL (TLS and a SASL user).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism of SASL_SSL."
    )
    kafka_sasl_username: str | None = Field(
        default=None, min_length=1, description="SASL user (SASL_SSL)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        description="SASL password (SASL_SSL); or VOCFLOW_KAFKA_SASL_PASSWORD_FILE: a file "
        "that holds it.",
    )
    kafka_ssl_cafile: ReadableFile | None = Field(
        default=None,
        description="PEM bundle of the CAs that signed the brokers' certificates; unset: the "
        "system's trust store.",
    )
    kafka_ssl_certfile: ReadableFile | None = Field(
        default=None, description="PEM client certificate (chain) for mutual TLS."
    )
    kafka_ssl_keyfile: ReadableFile | None = Field(
        default=None,
        description="PEM private key of kafka_ssl_certfile; unset: the key is in the certfile.",
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None,
        description="Password of an encrypted kafka_ssl_keyfile; or "
        "VOCFLOW_KAFKA_SSL_KEY_PASSWORD_FILE.",
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True,
        description="Check that a broker's certificate names the host connected to. Turning "
        "it off still checks the certificate chain.",
    )
    topic_prefix: str = Field(
        default="", pattern=r"^[A-Za-z0-9._-]*$", description="Prepended to every topic name."
    )
    partitions: int = Field(default=6, ge=1, le=1024, description="Partitions of created topics.")
    replication_factor: int = Field(default=1, ge=1, le=7)
    app_id: str = Field(
        default="vocflow", pattern=r"^[A-Za-z0-9._-]+$", description="Consumer group."
    )
    clickhouse_url: str | None = Field(
        default=None,
        description="chdb:///path (embedded) or http(s)://host:8123; unset: chdb:///<data_dir>/clickhouse.",
    )
    clickhouse_database: str = Field(default="vocflow", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # ---- ClickHouse server credentials and TLS (docs/security.md); the store
    # hands them to clickhouse-connect in one place (sinks/clickhouse/store.py).
    clickhouse_user: str | None = Field(
        default=None,
        min_length=1,
        description="ClickHouse user (http(s):// only); unset: the server's `default` user.",
    )
    clickhouse_password: SecretStr | None = Field(
        default=None,
        description="Password of clickhouse_user; or VOCFLOW_CLICKHOUSE_PASSWORD_FILE: a file "
        "that holds it.",
    )
    clickhouse_ca_file: ReadableFile | None = Field(
        default=None,
        description="PEM bundle of the CAs that signed the ClickHouse server's certificate "
        "(https:// only); unset: the system's trust store.",
    )
    clickhouse_cluster: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="ClickHouse cluster name (remote_servers) for ON CLUSTER DDL with "
        "Replicated*MergeTree and Distributed tables; unset: one server (or chdb).",
    )
    clickhouse_verify: bool = Field(
        default=True,
        description="Check the ClickHouse server's certificate chain and that it names the "
        "host connected to (https://). Off: neither is checked; a test server only.",
    )
    web_host: str = "127.0.0.1"
    web_port: int = Field(
        default=6066, ge=1, le=65535, description="/metrics and /api of the worker."
    )
    max_event_bytes: int = Field(default=1_000_000, ge=1024, le=3_500_000)
    worker_instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Kafka static group membership: a name unique to this worker and kept "
        "across its restarts, so a restarted worker gets its partitions back at once "
        "instead of after the session timeout (60 s). Unset: <hostname>-<web_port>.",
    )
    ready_max_lag: int = Field(
        default=5000,
        ge=0,
        le=1_000_000_000,
        description="/readyz answers 503 while a stage loop is more records than this "
        "behind its inputs (or has no partitions, or is still taking them over).",
    )
    sink_enabled: bool = Field(
        default=True, description="Run the ClickHouse sink inside the worker."
    )
    sink_batch_rows: int = Field(default=20_000, ge=1, le=1_000_000)
    sink_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description="Longest a row waits in the sink for its batch to grow.",
    )
    sink_flush_caught_up_seconds: float = Field(
        default=0.2,
        gt=0,
        le=300,
        description="Once the sink has read every partition to its end, it flushes rows "
        "this old (live traffic reaches ClickHouse and the KPIs sooner).",
    )
    rules_file: Path | None = Field(
        default=None, description="Tagging rules YAML; unset: the shipped telecom defaults."
    )
    repeat_window_hours: float = Field(
        default=24.0, gt=0, le=24 * 30, description="Same customer + category within it = repeat."
    )
    timezone: str = Field(default="Asia/Shanghai", description="'Today' and 15-min buckets.")
    sl_threshold_seconds: float = Field(
        default=20.0, gt=0, le=3600, description="Service level T (answered within T seconds)."
    )
    sl_threshold_by_queue: dict[str, float] = Field(
        default_factory=dict, description="Per-queue service level T, e.g. {voice.vip: 10}."
    )
    short_abandon_seconds: float = Field(
        default=5.0, ge=0, le=600, description="Abandons quicker than this are short abandons."
    )
    short_abandon_seconds_by_queue: dict[str, float] = Field(
        default_factory=dict,
        description="Per-queue short-abandon threshold, e.g. {chat.general: 10}.",
    )
    facts_ttl_hours: float = Field(
        default=72.0,
        ge=1,
        le=24 * 90,
        description="A contact fact idle this long (event time) leaves the worker's memory.",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Secret for the keyed pseudonyms of phone/ID/card/e-mail ids; unset: "
        "<data_dir>/pseudonym.key (created once). Same value in every process.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that /api/sql and /api/contacts require (they show "
        "stored contacts); or VOCFLOW_API_TOKEN_FILE. Unset: open, as the web port is "
        "(loopback by default).",
    )
    sql_max_rows: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Rows /api/sql returns at most."
    )
    sql_max_seconds: float = Field(
        default=30.0, gt=0, le=600, description="How long one /api/sql query may run."
    )
    kpi_refresh_seconds: float = Field(
        default=5.0, ge=1, le=300, description="How often /metrics and /api/kpis recompute."
    )
    log_level: str = Field(default="info", pattern=r"^(?i:debug|info|warning|error)$")
    # ---- `vocflow ingest` (docs/ingest.md)
    ingest_host: str = Field(
        default="127.0.0.1", description="Address `vocflow ingest` listens on (0.0.0.0: all)."
    )
    ingest_port: int = Field(default=6070, ge=1, le=65535, description="Port of `vocflow ingest`.")
    ingest_sources_file: Path | None = Field(
        default=None, description="YAML: source -> secret and allowed channels (required)."
    )
    ingest_max_body_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        le=32 * 1024 * 1024,
        description="Larger request bodies are refused with 413 before they are read.",
    )
    ingest_max_batch_items: int = Field(
        default=1000, ge=1, le=100_000, description="Items in one JSON array request."
    )
    ingest_timestamp_window_s: int = Field(
        default=300,
        ge=1,
        le=366 * 24 * 3600,
        description="Accepted clock skew of X-Vocflow-Timestamp (replay protection).",
    )
    ingest_max_in_flight: int = Field(
        default=5000,
        ge=1,
        le=1_000_000,
        description="Events sent to Kafka but not yet acknowledged; beyond it: 503.",
    )
    ingest_produce_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Wait for Kafka's ack before answering 503."
    )
    ingest_retry_after_s: int = Field(
        default=5, ge=1, le=3600, description="Retry-After of a 503 answer."
    )
    ingest_source_rate_per_s: float = Field(
        default=0.0,
        ge=0,
        le=1_000_000,
        description="Items per second each source may post unless its sources-file entry has "
        "its own rate_per_s; beyond it: 429 with Retry-After. 0: unlimited.",
    )
    # ---- `vocflow notify` (docs/alerting.md)
    notify_host: str = Field(
        default="127.0.0.1", description="Address `vocflow notify` listens on (0.0.0.0: all)."
    )
    notify_port: int = Field(default=6071, ge=1, le=65535, description="Port of `vocflow notify`.")
    notify_routes_file: Path | None = Field(
        default=None, description="YAML: chat receivers and label routes (required)."
    )
    notify_outbox_file: Path | None = Field(
        default=None, description="SQLite outbox; unset: <data_dir>/notify/outbox.sqlite3."
    )

    @field_validator("sl_threshold_by_queue", "short_abandon_seconds_by_queue")
    @classmethod
    def _per_queue_seconds(cls, value: dict[str, float]) -> dict[str, float]:
        for queue, seconds in value.items():
            if not 0 <= seconds <= 3600:
                raise ValueError(f"queue '{queue}': {seconds} s is outside 0..3600")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_form(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"'{server}' is not host:port")
        return value

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_scheme(cls, value: str | None) -> str | None:
        """A server URL is scheme://host[:port] and nothing else: credentials have their
        own (secret) settings, so a password never sits in a URL that is logged, and
        the database is clickhouse_database. The message never repeats the value."""
        if value and not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb://, http:// or https://")
        if value and value.startswith(("http://", "https://")):
            parts = urlsplit(value)
            if "@" in parts.netloc:
                raise ValueError(
                    "holds credentials: set clickhouse_user and clickhouse_password "
                    "(or VOCFLOW_CLICKHOUSE_PASSWORD_FILE) instead"
                )
            try:
                parts.port  # noqa: B018 - raises on a port that is not a number
            except ValueError:
                raise ValueError("the port is not a number") from None
            if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(
                    "must be http(s)://host[:port]: the database is clickhouse_database"
                )
        return value or None

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        """Half a security configuration fails here, not as a connection that
        silently falls back to plaintext or hangs in a handshake."""
        protocol = self.kafka_security_protocol
        sasl = [
            name
            for name in ("kafka_sasl_username", "kafka_sasl_password")
            if getattr(self, name) is not None
        ]
        tls = [
            name
            for name in (
                "kafka_ssl_cafile",
                "kafka_ssl_certfile",
                "kafka_ssl_keyfile",
                "kafka_ssl_key_password",
            )
            if getattr(self, name) is not None
        ]
        if not self.kafka_ssl_check_hostname:
            tls.append("kafka_ssl_check_hostname")
        if protocol == "SASL_SSL" and len(sasl) < 2:
            raise ValueError(
                "kafka_security_protocol SASL_SSL needs kafka_sasl_username and "
                "kafka_sasl_password (or VOCFLOW_KAFKA_SASL_PASSWORD_FILE)"
            )
        if protocol != "SASL_SSL" and sasl:
            raise ValueError(
                f"{' and '.join(sasl)} set, but kafka_security_protocol is {protocol}: "
                "set it to SASL_SSL"
            )
        if protocol == "PLAINTEXT" and tls:
            raise ValueError(
                f"{', '.join(tls)} set, but kafka_security_protocol is PLAINTEXT: "
                "set it to SSL or SASL_SSL"
            )
        if self.kafka_ssl_certfile is None and (
            self.kafka_ssl_keyfile is not None or self.kafka_ssl_key_password is not None
        ):
            raise ValueError("kafka_ssl_keyfile and its password need kafka_ssl_certfile")
        if protocol != "PLAINTEXT" and self.kafka_bootstrap is None:
            raise ValueError(
                f"kafka_security_protocol {protocol} needs kafka_bootstrap: the local broker "
                "(`vocflow broker up`) is plaintext"
            )
        return self

    @model_validator(mode="after")
    def _clickhouse_server_consistent(self) -> Settings:
        """Credentials or TLS settings that the chosen URL would ignore fail here: a
        password meant for a server must not be dropped silently by the embedded
        engine, nor a CA file by a plain http:// connection."""
        url = self.clickhouse_url or "chdb://"
        server = [
            name
            for name in (
                "clickhouse_user",
                "clickhouse_password",
                "clickhouse_ca_file",
                "clickhouse_cluster",
            )
            if getattr(self, name) is not None
        ]
        tls = [name for name in ("clickhouse_ca_file",) if getattr(self, name) is not None]
        if not self.clickhouse_verify:
            server.append("clickhouse_verify")
            tls.append("clickhouse_verify")
        if url.startswith("chdb://") and server:
            raise ValueError(
                f"{', '.join(server)} set, but ClickHouse is the embedded chdb: set "
                "clickhouse_url to the server's http(s)://host:port"
            )
        if url.startswith("http://") and tls:
            raise ValueError(
                f"{', '.join(tls)} set, but clickhouse_url is plain http://: use https://"
            )
        return self

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def uses_local_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def group_instance_id(self) -> str:
        """This worker's static member name in every consumer group it joins:
        `worker_instance_id`, else ``<hostname>-<web_port>``, which a restarted
        worker keeps and two workers on one host cannot share (they cannot share
        a port). A pod that gets a new hostname on restart rejoins as a new
        member: the old one's partitions then wait for the session timeout."""
        if self.worker_instance_id:
            return self.worker_instance_id
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:180] or "host"
        return f"{host}-{self.web_port}"

    @property
    def clickhouse_dsn(self) -> str:
        embedded = (self.data_dir.resolve() / "clickhouse").as_posix()
        return self.clickhouse_url or f"chdb://{embedded}"

    @property
    def rules_path(self) -> Path:
        return self.rules_file or DEFAULT_RULES_FILE

    @property
    def web_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"


SECRET_FIELDS = frozenset(
    name
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
)
"""Settings that are secrets: never shown, and each may come from a file."""


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Variables as strings, except mappings, which are written in YAML flow
    style or JSON (``VOCFLOW_SL_THRESHOLD_BY_QUEUE='{voice.vip: 10}'``)."""
    fields = Settings.model_fields
    values: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in fields and key.removesuffix(SECRET_FILE_SUFFIX) not in SECRET_FIELDS:
            continue
        if key in fields and get_origin(fields[key].annotation) is dict:
            try:
                values[key] = yaml.safe_load(value) if value.strip() else {}
            except yaml.YAMLError:
                values[key] = value  # the model rejects it with the variable's name
        else:
            values[key] = value
    return values


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults < config file (arg or $VOCFLOW_CONFIG) < VOCFLOW_* env < explicit overrides."""
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(CONFIG_ENV):
        config_file = Path(environ[CONFIG_ENV])
    origin: dict[str, str] = {}
    merged: dict[str, Any] = {}
    doc: configfile.Document | None = None
    if config_file is not None:
        try:
            doc = configfile.load(
                config_file, what="config file", expect="a mapping of setting: value"
            )
        except configfile.ConfigFileError as exc:
            raise ConfigError(str(exc)) from None
        for key, value in doc.data.items():
            merged[key] = value
            origin[key] = "file"
    for key, value in _from_env(environ).items():
        merged[key] = value
        origin[key] = f"environment variable {ENV_PREFIX}{key.upper()}"
    for key, value in overrides.items():
        if value is not None:
            merged[key] = value
            origin[key] = f"option --{key.replace('_', '-')}"
    problems = [str(p) for p in doc.problems] if doc is not None else []

    def where(loc: tuple[str | int, ...]) -> str:
        found = origin.get(str(loc[0]) if loc else "", "settings")
        if found == "file" and doc is not None:
            return f"{doc.filename}:{doc.line_for(loc)}"
        return found

    for key, problem in _read_secret_files(merged):
        problems.append(f"{where((key,))}: {key}: {problem}")
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        for loc, message in configfile.explain(exc, merged, Settings):
            text = configfile.path_text(loc)
            problems.append(f"{where(loc)}: {text}: {message}" if text else message)
    if problems or settings is None:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return settings


def _read_secret_files(merged: dict[str, Any]) -> list[tuple[str, str]]:
    """Replace each ``<secret>_file`` in `merged` by the file's text (without
    its final newline); the problems as (key, reason). A reason never holds
    the file's content."""
    problems: list[tuple[str, str]] = []
    for name in sorted(SECRET_FIELDS):
        key = name + SECRET_FILE_SUFFIX
        if key not in merged:
            continue
        path = Path(str(merged.pop(key)))
        if name in merged:
            problems.append((key, f"{name} is set too: give the secret or its file, not both"))
            continue
        try:
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            problems.append((key, f"no such file: {path}"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            problems.append((key, f"cannot read {path}: {reason}"))
            continue
        if not text:
            problems.append((key, f"{path} is empty"))
            continue
        merged[name] = text
    return problems
