# vocflow: two commands on a fresh machine.
#   make demo   set up everything, run the pipeline with live traffic (DURATION=60 for a bounded run)
#   make test   set up everything, run the full suite (starts its own Kafka broker)
#   make bench  measure everything, write docs/benchmarks.md with the goals (BENCH_ARGS=--check)
# Downloads are cached outside the clone (VOCFLOW_CACHE_DIR, default ~/.cache/vocflow).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export VOCFLOW_CACHE_DIR ?= $(HOME)/.cache/vocflow
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help prereqs system-deps setup broker-jars demo test test-clock unit lint bench clean \
	deploy-check deploy-configs capacity

help:
	@sed -n 's/^#   //p' Makefile

prereqs:
	@sh deploy/local/check-prereqs.sh

# Real components the suite runs (promtool, Alertmanager, headless Chromium, libfaketime
# and gcc for its wait shim in the clock matrix) and the bench's HTTP load tool come
# from Debian's packages; installed when missing.
SYSTEM_TOOLS := promtool:prometheus amtool:prometheus-alertmanager \
	prometheus-alertmanager:prometheus-alertmanager chromium:chromium wrk:wrk \
	faketime:faketime gcc:gcc
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	dpkg-query -W -f='$${Status}' fonts-noto-cjk 2>/dev/null | grep -q "ok installed" || \
	  missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "vocflow: missing Debian packages:$$missing (as root: apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@sh deploy/local/check-prereqs.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip --cache-dir "$(VOCFLOW_CACHE_DIR)/pip"
	$(BIN)/python -m pip install -q --cache-dir "$(VOCFLOW_CACHE_DIR)/pip" -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) broker-jars system-deps

broker-jars: $(STAMP)
	@if [ -z "$$VOCFLOW_KAFKA_BOOTSTRAP" ]; then $(BIN)/vocflow broker fetch; fi

demo: setup
	$(BIN)/vocflow demo $(if $(DURATION),--duration $(DURATION))

# Two lanes at once, each with its own Kafka broker: the suite at the real time
# (unit, agents, integration, e2e, faults) and the clock matrix. Most of both is
# waiting on brokers, workers and real-time pacing, so side by side they take
# about as long as the longer one; the matrix's output is printed when both are
# done (also in test-output/clock-matrix.log). Exit status: non-zero if either failed.
test: setup
	@$(MAKE) --no-print-directory lint
	$(BIN)/vocflow schemas --check
	@mkdir -p test-output; \
	$(BIN)/python -m tests.clock_matrix > test-output/clock-matrix.log 2>&1 & matrix=$$!; \
	main=0; $(BIN)/pytest -m "not clock" --durations=25 $(PYTEST_ARGS) || main=$$?; \
	clock=0; wait $$matrix || clock=$$?; \
	echo; echo "=== clock matrix (test-output/clock-matrix.log) ==="; cat test-output/clock-matrix.log; \
	echo "suite at the real time: exit $$main; clock matrix: exit $$clock"; \
	[ $$main -eq 0 ] && [ $$clock -eq 0 ]

# The clock-sensitive tests again at 00:03, 07:59:50 and 23:58 Asia/Shanghai (libfaketime),
# with the process time zone UTC and America/New_York (part of `make test`).
test-clock: setup
	$(BIN)/python -m tests.clock_matrix $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# ruff, then the import contract of the house plan ([tool.importlinter] in
# pyproject.toml, docs/architecture.md). import-linter finds packages on
# sys.path, so the three code folders are linked under one `vocflow/` first.
IMPORTS_ROOT := build/import-contract
lint: $(STAMP)
	$(BIN)/ruff check streams schemas sinks tests deploy
	@rm -rf $(IMPORTS_ROOT) && mkdir -p $(IMPORTS_ROOT)/vocflow && \
	  for d in streams sinks schemas; do ln -s "$(CURDIR)/$$d" "$(IMPORTS_ROOT)/vocflow/$$d"; done
	PYTHONPATH=$(IMPORTS_ROOT) $(BIN)/lint-imports --no-cache

# The deployment files without Docker or a cluster (also part of `make test`:
# tests/deploy/test_compose.py, test_k8s.py): the compose file against the Compose
# Specification's schema, the Dockerfile with hadolint, each kustomize overlay
# rendered by kubectl's built-in kustomize and checked against the Kubernetes
# schemas of kubernetes-validate (docs/operations.md, "Deploying").
K8S_VERSIONS := 1.31.0 1.37.0
deploy-check: $(STAMP)
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose/compose.yaml
	$(BIN)/hadolint Dockerfile && echo "hadolint Dockerfile: no findings"
	sh deploy/k8s/render-check.sh $(BIN) build/k8s $(K8S_VERSIONS)

# The compose stack's copies of alertmanager.yml and the Grafana datasource, and
# kustomize's copy of notify.yaml.
deploy-configs:
	sh deploy/compose/derive-configs.sh

# The capacity table of docs/operations.md from docs/benchmarks.md (after `make bench`).
capacity:
	$(PYTHON) deploy/capacity.py

# Every section in one run (about 45 minutes on the 2-core machine while the worker
# does ~1,000 events/s; most of it is the 1,000,000-event end-to-end run) and
# docs/benchmarks.md rewritten with the goals table on top. BENCH_ARGS=--check
# makes a missed goal fail the target; `vocflow bench --check --no-run` judges the
# written file again without measuring.
BENCH_EVENTS ?= 1000000
BENCH_ARGS ?=
bench: setup
	$(BIN)/vocflow bench --events $(BENCH_EVENTS) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .vocflow build *.egg-info test-output
