# vocflow's image: one image, every long-running command (`vocflow worker`, `sink`,
# `ingest`, `notify`); the command is the container's argument.
#   docker build -t vocflow:0.1.0 .
#   docker run --rm vocflow:0.1.0 --help
# Checked by hadolint in `make test` (tests/deploy/test_compose.py); the deployment
# that uses it: deploy/compose/compose.yaml, deploy/k8s/, docs/operations.md.
#
# The base is pinned to a Python patch release and Debian release; pin it by digest
# too (python:3.11.13-slim-bookworm@sha256:...) in your registry mirror: the build
# machine of this repository cannot reach a container registry to resolve one.

# ---- builder: the vocflow wheel and every dependency, in a virtualenv
FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
COPY sinks ./sinks

# The wheel is built from the sources (no editable install, no tests or docs in the
# image); the venv is copied whole into the runtime stage.
RUN python -m venv /opt/vocflow \
    && /opt/vocflow/bin/pip install --no-cache-dir "pip==25.3" "build==1.3.0" \
    && /opt/vocflow/bin/python -m build --wheel --outdir /dist . \
    && /opt/vocflow/bin/pip install --no-cache-dir /dist/vocflow-0.1.0-py3-none-any.whl \
    && /opt/vocflow/bin/pip uninstall -y build \
    && /opt/vocflow/bin/vocflow --help > /dev/null

# ---- runtime: the venv, a non-root user, nothing else
FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="vocflow" \
      org.opencontainers.image.description="Real-time contact-center event pipeline: Kafka, Faust, ClickHouse, Prometheus" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# A fixed uid/gid, so Kubernetes' runAsUser / fsGroup and volume ownership match it.
RUN groupadd --system --gid 10001 vocflow \
    && useradd --system --uid 10001 --gid vocflow --home-dir /var/lib/vocflow \
       --shell /usr/sbin/nologin vocflow \
    && mkdir -p /var/lib/vocflow /etc/vocflow \
    && chown vocflow:vocflow /var/lib/vocflow

COPY --from=builder /opt/vocflow /opt/vocflow

# Listen on every interface inside the container (the defaults are 127.0.0.1 for a
# developer's machine); VOCFLOW_DATA_DIR holds the notify outbox and, without a
# pseudonym key setting, nothing else that matters: mount a volume for notify.
ENV PATH="/opt/vocflow/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VOCFLOW_DATA_DIR=/var/lib/vocflow \
    VOCFLOW_WEB_HOST=0.0.0.0 \
    VOCFLOW_INGEST_HOST=0.0.0.0 \
    VOCFLOW_NOTIFY_HOST=0.0.0.0

USER 10001:10001
WORKDIR /var/lib/vocflow
# worker and sink: /metrics (and the worker's /healthz, /readyz, /api); ingest; notify
EXPOSE 6066 6070 6071

ENTRYPOINT ["vocflow"]
CMD ["worker"]
