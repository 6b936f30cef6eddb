"""deploy/compose and the Dockerfile, without Docker: the compose file against the
Compose Specification's JSON Schema (vendored in check-jsonschema), the Dockerfile
with hadolint, and what neither checks: pinned images, the settings each vocflow
container gets, secrets and files that exist, the derived Alertmanager and Grafana
files, Prometheus' config (promtool) and the config files the stack mounts, loaded
by vocflow's own loaders with the secrets `init-secrets.sh` writes.

promtool and amtool come from Debian (`make setup`); the rest from the dev extra.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DEPLOY, ROOT, project_version, run, setting_env_names
from vocflow.streams.notify.config import load_notify_config
from vocflow.streams.sources.ingest import load_sources
from vocflow.streams.tools.broker import KAFKA_VERSION

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
VOCFLOW_SERVICES = ("worker-1", "worker-2", "sink", "ingest", "notify")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def services() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = compose()["services"]
    return out


def debian_tool(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} not found; install it with `apt-get install -y {package}`")
    return exe


# ---- the schema and the linter ------------------------------------------------------


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    result = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok -- validation done"


def test_the_schema_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    """The validator really applies the schema: a typo in a service is refused."""
    text = COMPOSE.read_text(encoding="utf-8")
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace("    read_only: true", "    readonly: true"), encoding="utf-8")
    result = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode == 1
    assert "readonly" in result.stdout


def test_hadolint_passes_the_dockerfile_with_no_finding() -> None:
    result = run("hadolint", "--no-color", str(DOCKERFILE))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:latest\nRUN cd /tmp\n", encoding="utf-8")
    result = run("hadolint", "--no-color", str(tmp_path / "Dockerfile"))
    assert result.returncode == 1
    assert {"DL3007", "DL3003"} <= set(re.findall(r"DL\d{4}", result.stdout))


# ---- the Dockerfile ---------------------------------------------------------------------


def test_the_image_is_multi_stage_pinned_and_runs_as_a_non_root_user() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert froms == [
        "FROM python:3.11.13-slim-bookworm AS builder",
        "FROM python:3.11.13-slim-bookworm AS runtime",
    ]
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users == ["USER 10001:10001"]  # after the last FROM: the runtime stage's user
    assert lines.index(users[0]) > lines.index(froms[1])
    assert "COPY --from=builder /opt/vocflow /opt/vocflow" in lines
    assert 'ENTRYPOINT ["vocflow"]' in lines
    # The wheel the builder installs is the project's current version.
    wheel = f"/dist/vocflow-{project_version()}-py3-none-any.whl"
    assert f"&& /opt/vocflow/bin/pip install --no-cache-dir {wheel} \\" in lines


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    kept = [
        ln[1:].rstrip("/")
        for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.startswith("!")
    ]
    copied = []
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied += line.split()[1:-1]
    assert (
        sorted(copied)
        == sorted(kept)
        == sorted(["pyproject.toml", "README.md", "streams", "schemas", "sinks"])
    )
    for path in copied:
        assert (ROOT / path).exists(), path


# ---- the compose file -----------------------------------------------------------------


def test_every_image_is_pinned_to_a_version() -> None:
    images = {name: svc["image"] for name, svc in services().items()}
    vocflow = f"vocflow:{project_version()}"
    assert images == {
        "kafka-1": f"apache/kafka:{KAFKA_VERSION}",
        "kafka-2": f"apache/kafka:{KAFKA_VERSION}",
        "kafka-3": f"apache/kafka:{KAFKA_VERSION}",
        "clickhouse": "clickhouse/clickhouse-server:25.8.8.26",
        **dict.fromkeys(VOCFLOW_SERVICES, vocflow),
        "prometheus": "prom/prometheus:v3.5.0",
        "alertmanager": "prom/alertmanager:v0.28.1",
        "grafana": "grafana/grafana:12.0.2",
    }
    for name in VOCFLOW_SERVICES:
        assert services()[name]["build"] == {"context": "../..", "dockerfile": "Dockerfile"}


def test_three_kraft_brokers_replicate_everything_three_times() -> None:
    brokers = {n: s["environment"] for n, s in services().items() if n.startswith("kafka-")}
    assert sorted(brokers) == ["kafka-1", "kafka-2", "kafka-3"]
    for name, env in brokers.items():
        node = name.removeprefix("kafka-")
        assert env["KAFKA_NODE_ID"] == node
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
            "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        )
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        # A KRaft cluster id is 16 bytes, base64url without padding.
        raw = base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")
        assert len(raw) == 16
        assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == env["CLUSTER_ID"]
        assert s_volumes(name) == [f"{name}:/var/lib/kafka/data"]


def s_volumes(name: str) -> list[str]:
    volumes: list[str] = services()[name].get("volumes", [])
    return volumes


def test_vocflow_containers_get_only_settings_that_exist() -> None:
    known = setting_env_names()
    for name in VOCFLOW_SERVICES:
        env = services()[name]["environment"]
        unknown = sorted(k for k in env if k.startswith("VOCFLOW_") and k not in known)
        assert unknown == [], f"{name}: no such setting {unknown}"


def test_the_workers_leave_clickhouse_to_the_sink_and_keep_their_member_names() -> None:
    svc = services()
    for name in ("worker-1", "worker-2"):
        assert svc[name]["command"] == ["worker"]
        assert svc[name]["environment"]["VOCFLOW_SINK_ENABLED"] == "false"
        assert svc[name]["environment"]["VOCFLOW_WORKER_INSTANCE_ID"] == name
        assert "/readyz" in " ".join(svc[name]["healthcheck"]["test"])
    assert svc["sink"]["command"] == ["sink"]
    assert "VOCFLOW_SINK_ENABLED" not in svc["sink"]["environment"]
    for name in ("worker-1", "worker-2", "sink", "ingest"):
        env = svc[name]["environment"]
        assert env["VOCFLOW_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert env["VOCFLOW_REPLICATION_FACTOR"] == "3"
        assert env["VOCFLOW_CLICKHOUSE_URL"] == "http://clickhouse:8123"
        assert env["VOCFLOW_PSEUDONYM_KEY_FILE"] == "/run/secrets/pseudonym_key"
        assert env["VOCFLOW_CLICKHOUSE_PASSWORD_FILE"] == "/run/secrets/clickhouse_password"
        assert env["VOCFLOW_API_TOKEN_FILE"] == "/run/secrets/api_token"
        assert svc[name]["secrets"] == ["pseudonym_key", "clickhouse_password", "api_token"]
        assert svc[name]["read_only"] is True


def test_every_secret_file_variable_points_at_a_secret_the_service_mounts() -> None:
    doc = compose()
    for name, svc in doc["services"].items():
        mounted = set(svc.get("secrets", []))
        assert mounted <= set(doc["secrets"]), name
        for key, value in (svc.get("environment") or {}).items():
            if key.endswith("_FILE") and str(value).startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in mounted, f"{name}: {key}"


def test_every_mounted_file_exists_and_init_secrets_writes_every_secret(tmp_path: Path) -> None:
    doc = compose()
    for name, svc in doc["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source}"
    for config in doc["configs"].values():
        assert (COMPOSE_DIR / config["file"]).is_file(), config["file"]
    result = subprocess.run(
        ["sh", str(COMPOSE_DIR / "init-secrets.sh"), str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = {p.name for p in tmp_path.iterdir()}
    wanted = {Path(s["file"]).name for s in doc["secrets"].values()}
    for svc in doc["services"].values():
        wanted |= {Path(f).name for f in svc.get("env_file", [])}
        for f in svc.get("env_file", []):
            assert f.startswith("secrets/"), f  # git-ignored (secrets/.gitignore)
    for secret in doc["secrets"].values():
        assert secret["file"].startswith("./secrets/"), secret
    assert written == wanted
    assert len((tmp_path / "pseudonym.key").read_text().strip()) == 64
    again = subprocess.run(
        ["sh", str(COMPOSE_DIR / "init-secrets.sh"), str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.stdout.count("kept") == len(wanted)  # never rotates a key behind your back


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_ingest_and_notify_start_with_their_mounted_files_and_the_written_secrets(
    tmp_path: Path,
) -> None:
    subprocess.run(["sh", str(COMPOSE_DIR / "init-secrets.sh"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    configs = compose()["configs"]
    sources = load_sources(
        COMPOSE_DIR / configs["ingest_sources"]["file"], environ=env_file(tmp_path / "ingest.env")
    )
    assert sorted(sources) == ["chat-main", "cti-main"]
    notify = load_notify_config(
        COMPOSE_DIR / configs["notify_routes"]["file"], environ=env_file(tmp_path / "notify.env")
    )
    assert len(notify.receivers) == 7


def test_the_derived_alertmanager_and_grafana_files_are_current(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(COMPOSE_DIR / "derive-configs.sh"), str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("alertmanager.yml", "grafana-datasource.yaml"):
        assert (tmp_path / name).read_text() == (COMPOSE_DIR / name).read_text(), (
            f"deploy/compose/{name} is stale: run `make deploy-configs`"
        )
    am = yaml.safe_load((COMPOSE_DIR / "alertmanager.yml").read_text())
    urls = {c["url"] for r in am["receivers"] for c in r["webhook_configs"]}
    assert {u.split("/alertmanager/")[0] for u in urls} == {"http://notify:6071"}
    ds = yaml.safe_load((COMPOSE_DIR / "grafana-datasource.yaml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"


def test_amtool_accepts_the_compose_alertmanager_config() -> None:
    amtool = debian_tool("amtool", "prometheus-alertmanager")
    result = subprocess.run(
        [amtool, "check-config", str(COMPOSE_DIR / "alertmanager.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert " - 6 receivers" in result.stdout


def test_prometheus_scrapes_every_vocflow_process_with_the_project_rules(tmp_path: Path) -> None:
    promtool = debian_tool("promtool", "prometheus")
    shutil.copy(COMPOSE_DIR / "prometheus.yml", tmp_path / "prometheus.yml")
    # As mounted in the container: ../prometheus/rules beside the config.
    (tmp_path / "rules").symlink_to(DEPLOY / "prometheus" / "rules")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rule files found" in result.stdout
    mine = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    original = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert mine["rule_files"] == original["rule_files"]
    assert {k: v for k, v in mine["global"].items() if k != "external_labels"} == {
        k: v for k, v in original["global"].items() if k != "external_labels"
    }
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in mine["scrape_configs"]
    }
    assert targets == {
        "vocflow-worker": ["worker-1:6066", "worker-2:6066"],
        "vocflow-sink": ["sink:6066"],
        "vocflow-ingest": ["ingest:6070"],
        "vocflow-notify": ["notify:6071"],
    }
    mounts = services()["prometheus"]["volumes"]
    assert "../prometheus/rules:/etc/prometheus/rules:ro" in mounts


def test_grafana_gets_the_provisioned_dashboards() -> None:
    mounts = services()["grafana"]["volumes"]
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "vocflow.yaml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert f"../grafana/dashboards:{path}:ro" in mounts
    assert (
        "./grafana-datasource.yaml:/etc/grafana/provisioning/datasources/vocflow.yaml:ro" in mounts
    )
