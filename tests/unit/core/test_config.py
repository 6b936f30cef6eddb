from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from vocflow.streams.core.settings import ConfigError, load_settings
from vocflow.streams.kpi.config import fold_config, kpi_targets


def test_defaults() -> None:
    s = load_settings(environ={})
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.uses_local_broker is True
    assert s.partitions == 6
    assert s.clickhouse_dsn == f"chdb://{Path('.vocflow').resolve() / 'clickhouse'}"
    assert s.clickhouse_dsn.startswith("chdb:///")
    assert s.web_url == "http://127.0.0.1:6066"


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "vocflow.yaml"
    f.write_text("partitions: 3\nweb_port: 7000\ntopic_prefix: prod.\n")
    env = {"VOCFLOW_PARTITIONS": "12", "VOCFLOW_CONFIG": str(f), "OTHER": "x"}
    s = load_settings(environ=env, web_port=7100)
    assert (s.partitions, s.web_port, s.topic_prefix) == (12, 7100, "prod.")


def test_external_cluster_and_server_clickhouse() -> None:
    s = load_settings(
        environ={
            "VOCFLOW_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "VOCFLOW_CLICKHOUSE_URL": "http://ch:8123",
        }
    )
    assert s.uses_local_broker is False
    assert s.bootstrap_servers == "k1:9092,k2:9092"
    assert s.clickhouse_dsn == "http://ch:8123"


def test_bad_file_value_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("# comment\npartitions: 3\nweb_port: lots\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=f, environ={})
    assert f"{f}:3: web_port: Input should be a valid integer" in str(info.value)


def test_unknown_setting_in_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("partitions: 3\npartitons: 4\n")
    with pytest.raises(
        ConfigError, match=r"bad.yaml:2: partitons: unknown key \(did you mean 'partitions'\?\)"
    ):
        load_settings(config_file=f, environ={})


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("partitions: 3\nweb_port: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: invalid YAML"):
        load_settings(config_file=f, environ={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(config_file=Path("/nonexistent/v.yaml"), environ={})


def test_bad_env_var_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"VOCFLOW_KAFKA_BOOTSTRAP": "localhost"})
    assert "environment variable VOCFLOW_KAFKA_BOOTSTRAP: kafka_bootstrap" in str(info.value)
    assert "'localhost' is not host:port" in str(info.value)


def test_bad_clickhouse_scheme() -> None:
    with pytest.raises(ConfigError, match="must start with chdb://, http:// or https://"):
        load_settings(environ={"VOCFLOW_CLICKHOUSE_URL": "mysql://x"})


def test_per_queue_mappings_from_env_and_their_checks() -> None:
    settings = load_settings(
        environ={
            "VOCFLOW_SL_THRESHOLD_BY_QUEUE": "{voice.vip: 10}",
            "VOCFLOW_SHORT_ABANDON_SECONDS_BY_QUEUE": '{"chat.general": 12.5}',
        }
    )
    assert settings.sl_threshold_by_queue == {"voice.vip": 10.0}
    fold = fold_config(settings)
    assert fold.short_abandon_threshold("chat.general") == 12_500
    assert fold.short_abandon_threshold("voice.vip") == 5_000
    assert kpi_targets(settings).sl_threshold("voice.vip") == 10_000
    assert kpi_targets(settings).sl_threshold("other") == 20_000
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"VOCFLOW_SHORT_ABANDON_SECONDS_BY_QUEUE": "{chat: 5000}"})
    assert "VOCFLOW_SHORT_ABANDON_SECONDS_BY_QUEUE" in str(err.value)
    assert "queue 'chat': 5000.0 s is outside 0..3600" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"VOCFLOW_SL_THRESHOLD_BY_QUEUE": "voice.vip=10"})
    assert "VOCFLOW_SL_THRESHOLD_BY_QUEUE" in str(err.value)


def test_worker_instance_id_is_a_plain_name() -> None:
    with pytest.raises(ConfigError, match="worker_instance_id"):
        load_settings(environ={"VOCFLOW_WORKER_INSTANCE_ID": "two words"})
    settings = load_settings(environ={"VOCFLOW_WORKER_INSTANCE_ID": "cc-worker-1"})
    assert settings.worker_instance_id == "cc-worker-1"


def test_the_static_member_name_defaults_to_host_and_port() -> None:
    settings = load_settings(environ={"VOCFLOW_WEB_PORT": "7001"})
    host = socket.gethostname()
    assert settings.group_instance_id == re.sub(r"[^A-Za-z0-9._-]", "-", host) + "-7001"
    named = load_settings(environ={"VOCFLOW_WORKER_INSTANCE_ID": "cc-worker-1"})
    assert named.group_instance_id == "cc-worker-1"
