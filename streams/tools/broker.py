"""The local single-node KRaft broker: fetch its jars with Maven, start, stop, check.

Only for development, tests and the demo: production points
VOCFLOW_KAFKA_BOOTSTRAP at a real cluster and never calls this module.
Kafka 3.9 is pinned (see docs/operations.md): it still speaks every old
protocol version that aiokafka (faust) and kafka-python use.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

KAFKA_VERSION = "3.9.2"
DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka"
MIN_JAVA = 17


class BrokerError(Exception):
    """Something the operator must fix; the message says what."""


def cache_dir() -> Path:
    return Path(os.environ.get("VOCFLOW_CACHE_DIR", Path.home() / ".cache" / "vocflow"))


def libs_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def _require_tool(name: str, package_hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BrokerError(
            f"'{name}' was not found on PATH. The local Kafka broker needs Java {MIN_JAVA}+ and "
            f"Maven: install them (Debian/Ubuntu: apt-get install {package_hint}) or set "
            "VOCFLOW_KAFKA_BOOTSTRAP to use an existing Kafka cluster."
        )
    return path


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise BrokerError(f"cannot tell the Java version from: {out.stderr.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def fetch(quiet: bool = True) -> Path:
    """Resolve the broker jars from Maven Central into the cache (once)."""
    target = libs_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    java = _require_tool("java", "openjdk-17-jre-headless")
    if (major := java_major_version(java)) < MIN_JAVA:
        raise BrokerError(f"Java {major} found; Kafka {KAFKA_VERSION} here needs Java {MIN_JAVA}+")
    mvn = _require_tool("mvn", "maven")
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-B",
        *(["-q"] if quiet else []),
        f"-Dmaven.repo.local={cache_dir() / 'm2'}",
        "-f",
        str(DEPLOY_DIR / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={target}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise BrokerError("mvn could not fetch the Kafka jars:\n" + "\n".join(tail))
    marker.write_text(KAFKA_VERSION + "\n")
    return target


@dataclass(frozen=True)
class LocalBroker:
    """A broker whose files live under `home` (normally <data dir>/kafka).

    Alone by default (node 1, its own controller quorum, every topic with one
    replica); `LocalCluster` makes several of them one KRaft cluster.
    `extra_config` is appended to the rendered server.properties: a later key
    wins in a Java properties file, so a test can add listeners (TLS, SASL)
    beside the plaintext one that `up` and the probes use."""

    home: Path
    port: int = 9092
    node_id: int = 1
    voters: str | None = None  # controller.quorum.voters; None: this node alone
    cluster_id: str | None = None  # None: a new random id when first formatted
    replication: int = 1
    min_isr: int = 1
    extra_config: str = ""

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def answers(self, timeout: float = 1.0) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout):
                return True
        except OSError:
            return False

    def _render_config(self) -> Path:
        template = Template((DEPLOY_DIR / "server.properties").read_text())
        config = template.substitute(
            port=self.port,
            controller_port=self.controller_port,
            log_dir=self.home / "data",
            node_id=self.node_id,
            voters=self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}",
            replication=self.replication,
            min_isr=self.min_isr,
        )
        if self.extra_config:
            config += "\n# ---- extra_config\n" + self.extra_config
        path = self.home / "server.properties"
        path.write_text(config)
        return path

    def _format_storage(self, java: str, config: Path, classpath: str) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        result = subprocess.run(
            [
                java,
                *self._jvm_opts(),
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                # One argument: an id may start with "-", which argparse would
                # read as an option (about one start in 64 failed that way).
                f"--cluster-id={cluster_id}",
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError("formatting the KRaft storage failed:\n" + result.stderr[-2000:])

    def _jvm_opts(self) -> list[str]:
        return [
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j.configuration=file:{DEPLOY_DIR / 'log4j.properties'}",
        ]

    def up(self, timeout: float = 90.0) -> bool:
        """Start the broker and wait until it accepts connections. False if already running."""
        proc = self.start()
        if proc is None:
            return False
        self.wait_ready(proc, timeout)
        return True

    def start(self) -> subprocess.Popen[bytes] | None:
        """Start the broker's process without waiting for it; None if it is running."""
        if self.pid() is not None and self.answers():
            return None
        if self.answers():
            raise BrokerError(
                f"port {self.port} on 127.0.0.1 is taken by another program; stop it or set "
                "VOCFLOW_BROKER_PORT"
            )
        classpath = str(fetch() / "*")
        java = _require_tool("java", "openjdk-17-jre-headless")
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        config = self._render_config()
        self._format_storage(java, config, classpath)
        stdout = (self.log_dir / "stdout.log").open("ab")
        proc = subprocess.Popen(
            [java, *self._jvm_opts(), "-cp", classpath, "kafka.Kafka", str(config)],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
        """Until the broker answers with cluster metadata; BrokerError with its log if
        it exits or does not answer within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {proc.returncode}; see {self.log_dir}/server.log "
                    f"and stdout.log:\n{self._log_tail()}"
                )
            if self.answers() and _metadata_ready(self.bootstrap):
                return
            time.sleep(0.5)
        self.down()
        raise BrokerError(f"the broker did not answer within {timeout:.0f}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        lines: list[str] = []
        for name in ("stdout.log", "server.log"):
            path = self.log_dir / name
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()[-10:]
        return "\n".join(lines)

    def down(self, timeout: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after `timeout`). False if not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> dict[str, object]:
        return {
            "running": self.pid() is not None,
            "answers": self.answers(),
            "pid": self.pid(),
            "bootstrap": self.bootstrap,
            "kafka_version": KAFKA_VERSION,
            "home": str(self.home),
        }


@dataclass(frozen=True)
class LocalCluster:
    """`size` local brokers as one KRaft cluster on loopback (each node broker and
    controller), every topic replicated `size` times and writable while a majority
    of replicas is in sync: what the fault suite kills one broker of."""

    home: Path
    ports: tuple[int, ...]  # one free pair (broker, controller) per node

    @property
    def brokers(self) -> list[LocalBroker]:
        size = len(self.ports)
        voters = ",".join(f"{n + 1}@127.0.0.1:{p + 1}" for n, p in enumerate(self.ports))
        cluster_id = self._cluster_id()
        return [
            LocalBroker(
                home=self.home / f"node{n + 1}",
                port=port,
                node_id=n + 1,
                voters=voters,
                cluster_id=cluster_id,
                replication=size,
                min_isr=size // 2 + 1,
            )
            for n, port in enumerate(self.ports)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    def _cluster_id(self) -> str:
        path = self.home / "cluster.id"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id())
        return path.read_text().strip()

    def up(self, timeout: float = 120.0) -> None:
        """Start every node at once (a quorum needs a majority to elect a leader),
        then wait for each."""
        started = [(b, b.start()) for b in self.brokers]
        for broker, proc in started:
            if proc is not None:
                broker.wait_ready(proc, timeout)

    def down(self) -> None:
        for broker in self.brokers:
            broker.down()


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _reap(pid: int) -> None:
    """Collect a child we started ourselves, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _metadata_ready(bootstrap: str) -> bool:
    from kafka.errors import KafkaError

    from vocflow.streams.core import kafka_clients

    try:
        admin = kafka_clients.admin(bootstrap, request_timeout_ms=3000, bootstrap_timeout_ms=3000)
    except KafkaError:
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except KafkaError:
        return False
    finally:
        admin.close()


def local_broker(settings) -> LocalBroker:  # type: ignore[no-untyped-def]
    return LocalBroker(home=settings.data_dir.resolve() / "kafka", port=settings.broker_port)
