# vocflow: two commands on a fresh machine.
#   make demo   set up everything, run the pipeline with live traffic (DURATION=60 for a bounded run)
#   make test   set up everything, run the full suite (starts its own Kafka broker)
# Downloads are cached outside the clone (VOCFLOW_CACHE_DIR, default ~/.cache/vocflow).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export VOCFLOW_CACHE_DIR ?= $(HOME)/.cache/vocflow
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help prereqs setup broker-jars demo test unit lint bench clean

help:
	@sed -n 's/^#   //p' Makefile

prereqs:
	@sh deploy/local/check-prereqs.sh

$(STAMP): pyproject.toml
	@sh deploy/local/check-prereqs.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip --cache-dir "$(VOCFLOW_CACHE_DIR)/pip"
	$(BIN)/python -m pip install -q --cache-dir "$(VOCFLOW_CACHE_DIR)/pip" -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) broker-jars

broker-jars: $(STAMP)
	@if [ -z "$$VOCFLOW_KAFKA_BOOTSTRAP" ]; then $(BIN)/vocflow broker fetch; fi

demo: setup
	$(BIN)/vocflow demo $(if $(DURATION),--duration $(DURATION))

test: setup
	$(BIN)/ruff check streams schemas sinks tests
	$(BIN)/vocflow schemas --check
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check streams schemas sinks tests

bench: setup
	$(BIN)/vocflow bench

clean:
	rm -rf $(VENV) .vocflow build *.egg-info test-output
