"""deploy/k8s without a cluster: every overlay rendered by kubectl's built-in
kustomize, every object checked against the Kubernetes API schemas of
kubernetes-validate (strict: unknown fields fail), and what a schema cannot see:
probes, disruption budgets, the ServiceMonitor's selectors, the non-root user of
the image, and the settings each container gets, loaded by vocflow's own settings
loader with the files its Secrets mount.

An overlay needs the operator's secret files (overlays/<name>/secrets/, git-ignored):
the fixture renders a copy of deploy/k8s with placeholder files, named after each
overlay's secretGenerator and its secrets/README.md.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DEPLOY, ROOT, project_version, run, setting_env_names
from vocflow.streams.core.settings import load_settings
from vocflow.streams.notify.config import load_notify_config
from vocflow.streams.sources.ingest import load_sources

try:
    import kubernetes_validate
except ImportError:  # a missing validator fails every test here with the advice
    pytest.fail(
        "kubernetes-validate is not installed: `make setup` installs it (pyproject.toml, "
        "dev extra)",
        pytrace=False,
    )

K8S = DEPLOY / "k8s"
OVERLAYS = ("staging", "production", "production-mtls")
# The oldest Kubernetes the manifests are meant for, and the newest the schemas know.
K8S_VERSIONS = ("1.31.0", "1.37.0")
WORKLOADS = ("Deployment", "StatefulSet")
UID = 10001  # the Dockerfile's USER


def env_vars(path: Path) -> list[str]:
    """The ${VAR}s a config file reads (not those in comments)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    live = [ln.split(" #")[0] for ln in lines if not ln.lstrip().startswith("#")]
    return sorted(set(re.findall(r"\$\{([A-Z0-9_]+)\}", "\n".join(live))))


def placeholder_secrets(overlay_dir: Path) -> list[str]:
    """Write a placeholder for every file the overlay's secretGenerator reads."""
    kustomization = yaml.safe_load((overlay_dir / "kustomization.yaml").read_text())
    names = []
    for gen in kustomization.get("secretGenerator", []):
        for entry in gen.get("files", []) + gen.get("envs", []):
            path = overlay_dir / entry
            names.append(path.name)
            if path.name == "ingest.env":
                keys = env_vars(K8S / "base" / "ingest-sources.yaml")
            elif path.name == "notify.env":
                keys = env_vars(K8S / "base" / "notify-routes.yaml")
            else:
                path.write_text(f"placeholder {path.name} of {overlay_dir.name}\n")
                continue
            path.write_text("".join(f"{k}=placeholder-{k.lower()}-0123456789\n" for k in keys))
    return sorted(names)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[dict[str, Any]]]]:
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy)
    out = {}
    for overlay in OVERLAYS:
        placeholder_secrets(copy / "overlays" / overlay)
        result = run("kubectl", "kustomize", str(copy / "overlays" / overlay))
        assert result.returncode == 0, result.stderr
        out[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    yield out


def of_kind(docs: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in kinds]


def named(docs: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """The object of `kind` whose name is `prefix` (or `prefix-<kustomize hash>`)."""
    found = [
        d
        for d in of_kind(docs, kind)
        if re.fullmatch(re.escape(prefix) + r"(-[a-z0-9]{10})?", d["metadata"]["name"])
    ]
    assert len(found) == 1, (kind, prefix, [d["metadata"]["name"] for d in of_kind(docs, kind)])
    return found[0]


# ---- rendering and the schemas --------------------------------------------------------


def test_each_overlay_renders_the_same_kinds_of_object(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for overlay, docs in rendered.items():
        kinds = sorted(f"{d['kind']}/{re.sub(r'-[a-z0-9]{10}$', '', d['metadata']['name'])}"
                       for d in docs)  # fmt: skip
        assert kinds == [
            "ConfigMap/vocflow-config",
            "ConfigMap/vocflow-ingest-sources",
            "ConfigMap/vocflow-kafka",
            "ConfigMap/vocflow-notify-routes",
            "Deployment/vocflow-ingest",
            "Deployment/vocflow-notify",
            "Deployment/vocflow-sink",
            "HorizontalPodAutoscaler/vocflow-ingest",
            "PersistentVolumeClaim/vocflow-notify-outbox",
            "PodDisruptionBudget/vocflow-ingest",
            "PodDisruptionBudget/vocflow-notify",
            "PodDisruptionBudget/vocflow-sink",
            "PodDisruptionBudget/vocflow-worker",
            "Secret/vocflow-ingest",
            "Secret/vocflow-notify",
            "Secret/vocflow-secrets",
            "Secret/vocflow-tls",
            "Service/vocflow-ingest",
            "Service/vocflow-notify",
            "Service/vocflow-sink",
            "Service/vocflow-worker",
            "ServiceAccount/vocflow",
            "ServiceMonitor/vocflow",
            "StatefulSet/vocflow-worker",
        ], overlay
        namespaces = {d["metadata"].get("namespace") for d in docs}
        assert namespaces == {"vocflow-staging" if overlay == "staging" else "vocflow"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], version: str
) -> None:
    for overlay, docs in rendered.items():
        no_schema = []
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                no_schema.append(doc["kind"])
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']}: {exc}")
        # The Prometheus Operator's CRD is not a Kubernetes API: checked by hand below.
        assert no_schema == ["ServiceMonitor"], overlay


def test_the_schema_check_catches_a_misspelt_field(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    worker = named(rendered["staging"], "StatefulSet", "vocflow-worker")
    broken = {**worker, "spec": {**worker["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_the_secret_readmes_list_exactly_the_files_each_overlay_needs(tmp_path: Path) -> None:
    production = set()
    for overlay in OVERLAYS:
        copy = tmp_path / overlay
        shutil.copytree(K8S / "overlays" / overlay, copy)
        needed = placeholder_secrets(copy)
        readme = (K8S / "overlays" / overlay / "secrets" / "README.md").read_text()
        listed = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M)
        if overlay == "production":
            production = set(listed)
        if overlay == "production-mtls":  # "the files of production's README except ..."
            assert "except `kafka-sasl-password`" in readme
            listed += sorted(production - {"kafka-sasl-password"})
        assert sorted(listed) == needed, overlay
        gitignore = (K8S / "overlays" / overlay / "secrets" / ".gitignore").read_text()
        assert gitignore.splitlines()[1:] == ["*", "!.gitignore", "!README.md"]


# ---- workloads -----------------------------------------------------------------------------


def test_every_workload_has_probes_a_pdb_and_runs_as_the_image_user(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for overlay, docs in rendered.items():
        pdbs = of_kind(docs, "PodDisruptionBudget")
        for workload in of_kind(docs, *WORKLOADS):
            name = f"{overlay}: {workload['metadata']['name']}"
            pod = workload["spec"]["template"]
            labels = pod["metadata"]["labels"]
            assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
            covering = [
                p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
            ]
            assert len(covering) == 1, name
            security = pod["spec"]["securityContext"]
            assert (security["runAsNonRoot"], security["runAsUser"]) == (True, UID), name
            assert pod["spec"]["automountServiceAccountToken"] is False, name
            for container in pod["spec"]["containers"]:
                assert container["image"] == f"vocflow:{project_version()}", name
                ports = {p["name"] for p in container["ports"]}
                for probe in ("livenessProbe", "readinessProbe"):
                    spec = container.get(probe)
                    assert spec is not None, f"{name}: no {probe}"
                    action = spec.get("httpGet") or spec.get("tcpSocket")
                    assert action is not None and action["port"] in ports, (name, probe)
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True, name
                assert context["allowPrivilegeEscalation"] is False, name
                assert context["capabilities"] == {"drop": ["ALL"]}, name
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert "/tmp" in mounts, name  # jieba's cache on a read-only root


def test_workers_are_ready_when_assigned_and_caught_up_and_keep_their_member_names(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for docs in rendered.values():
        worker = named(docs, "StatefulSet", "vocflow-worker")
        service = named(docs, "Service", "vocflow-worker")
        assert worker["spec"]["serviceName"] == service["metadata"]["name"]
        assert service["spec"]["clusterIP"] == "None"
        container = worker["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["worker"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        env = {e["name"]: e for e in container["env"]}
        assert env["VOCFLOW_SINK_ENABLED"]["value"] == "false"
        assert env["VOCFLOW_WORKER_INSTANCE_ID"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.name"}
        }
        assert named(docs, "PodDisruptionBudget", "vocflow-worker")["spec"] == {
            "maxUnavailable": 1,
            "selector": worker["spec"]["selector"],
        }


def test_ingest_scales_on_cpu_and_stays_alive_while_kafka_is_down(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for overlay, docs in rendered.items():
        hpa = named(docs, "HorizontalPodAutoscaler", "vocflow-ingest")
        ingest = named(docs, "Deployment", "vocflow-ingest")
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": ingest["metadata"]["name"],
        }
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        container = ingest["spec"]["template"]["spec"]["containers"][0]
        assert "cpu" in container["resources"]["requests"]  # utilization needs a request
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        assert "tcpSocket" in container["livenessProbe"]  # /healthz is 503 without Kafka
        expected = (3, 10) if overlay.startswith("production") else (2, 6)
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == expected
        pdb = named(docs, "PodDisruptionBudget", "vocflow-ingest")
        assert pdb["spec"]["minAvailable"] == 1


def test_the_service_monitor_scrapes_every_service_with_the_rules_job_names(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    rules = (DEPLOY / "prometheus" / "rules" / "vocflow-pipeline.yml").read_text()
    jobs = set(re.findall(r'job="([^"]+)"', rules))
    assert jobs == {"vocflow-worker"}
    for docs in rendered.values():
        monitor = named(docs, "ServiceMonitor", "vocflow")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = monitor["spec"]["selector"]["matchLabels"]
        endpoints = monitor["spec"]["endpoints"]
        assert [(e["port"], e["path"]) for e in endpoints] == [("http", "/metrics")]
        selected = [
            s["metadata"]["name"]
            for s in of_kind(docs, "Service")
            if selector.items() <= s["metadata"]["labels"].items()
        ]
        # The job label is the Service's name: the worker's is the rules' job.
        assert sorted(selected) == [
            "vocflow-ingest", "vocflow-notify", "vocflow-sink", "vocflow-worker"
        ]  # fmt: skip
        for service in of_kind(docs, "Service"):
            assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
            pods = [
                w
                for w in of_kind(docs, *WORKLOADS)
                if service["spec"]["selector"].items()
                <= w["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert len(pods) == 1, service["metadata"]["name"]


# ---- settings -------------------------------------------------------------------------------


def container_environ(
    docs: list[dict[str, Any]], workload: dict[str, Any], files: Path
) -> dict[str, str]:
    """The environment the container would get, with the Secret volumes written under
    `files` and every path into them rewritten there."""
    spec = workload["spec"]["template"]["spec"]
    container = spec["containers"][0]
    environ: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environ.update(named(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            data = named(docs, "Secret", source["secretRef"]["name"])["data"]
            environ.update({k: base64.b64decode(v).decode() for k, v in data.items()})
    for var in container.get("env", []):
        if "value" in var:
            environ[var["name"]] = var["value"]
        else:
            environ[var["name"]] = f"{workload['metadata']['name']}-0"  # metadata.name
    volumes = {v["name"]: v for v in spec["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = files / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        if "secret" in volume:
            data = named(docs, "Secret", volume["secret"]["secretName"])["data"]
            for key, value in data.items():
                (target / key).write_bytes(base64.b64decode(value))
        elif "configMap" in volume:
            data = named(docs, "ConfigMap", volume["configMap"]["name"])["data"]
            for key, value in data.items():
                (target / key).write_text(value)
    for key, value in environ.items():
        if value.startswith(("/etc/vocflow/", "/var/lib/vocflow")):
            environ[key] = str(files / value.lstrip("/"))
    return environ


def test_every_variable_is_a_setting_and_every_container_settings_load(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    known = setting_env_names()
    for overlay, docs in rendered.items():
        for config in of_kind(docs, "ConfigMap"):
            for key in config["data"]:
                assert not key.startswith("VOCFLOW_") or key in known, (overlay, key)
        for workload in of_kind(docs, *WORKLOADS):
            name = workload["metadata"]["name"]
            environ = container_environ(docs, workload, tmp_path / overlay / name)
            unknown = sorted(k for k in environ if k.startswith("VOCFLOW_") and k not in known)
            assert unknown == [], (overlay, name)
            settings = load_settings(environ=environ)  # raises ConfigError with the reason
            if name == "vocflow-notify":
                routes = load_notify_config(Path(environ["VOCFLOW_NOTIFY_ROUTES_FILE"]), environ)
                assert len(routes.receivers) == 7
                continue
            protocol = "SSL" if overlay.endswith("mtls") else "SASL_SSL"
            assert settings.kafka_security_protocol == protocol, (overlay, name)
            assert settings.replication_factor == 3
            assert settings.clickhouse_url is not None
            assert settings.clickhouse_url.startswith("https://")
            assert settings.clickhouse_password is not None
            assert settings.clickhouse_password.get_secret_value() == (
                f"placeholder clickhouse-password of {overlay}"
            )
            assert settings.pseudonym_key is not None
            assert settings.pseudonym_key.get_secret_value() == (
                f"placeholder pseudonym-key of {overlay}"
            )
            if protocol == "SSL":
                assert settings.kafka_ssl_certfile is not None
                assert settings.kafka_sasl_password is None
            else:
                assert settings.kafka_sasl_password is not None
            if name == "vocflow-ingest":
                assert settings.ingest_host == "0.0.0.0"
                sources = load_sources(Path(environ["VOCFLOW_INGEST_SOURCES_FILE"]), environ)
                assert sorted(sources) == ["chat-main", "cti-main"]
            if name == "vocflow-worker":
                assert settings.api_token is not None
                token = settings.api_token.get_secret_value()
                assert token == f"placeholder api-token of {overlay}"
                assert settings.group_instance_id == "vocflow-worker-0"
                assert settings.sink_enabled is False


def test_production_sizes_follow_the_capacity_table(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """components/production-size is the 10k events/s row of docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    row = re.search(r"^\| 10,000 \|.*$", text, flags=re.M)
    assert row is not None, "no 10,000 events/s row in the capacity table"
    cells = [c.strip() for c in row.group(0).strip("|").split("|")]
    workers, partitions = int(cells[1]), int(cells[2])
    for overlay in ("production", "production-mtls"):
        docs = rendered[overlay]
        assert named(docs, "StatefulSet", "vocflow-worker")["spec"]["replicas"] == workers
        config = named(docs, "ConfigMap", "vocflow-config")["data"]
        assert int(config["VOCFLOW_PARTITIONS"]) == partitions
