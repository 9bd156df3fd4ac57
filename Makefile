# inshape — developer entry points. `make help` lists them.
# Everything is installed into .venv and ~/.cache/inshape by these targets; nothing by hand.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest -p no:cacheprovider

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-unit test-integration lint format bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade 'pip>=25.1'
	$(PY) -m pip install -q -e . --group dev
	@touch $@

setup: $(STAMP) ## Install Python deps, kcat, and fetch the Kafka broker jars (cached)
	@hack/ensure-packages.sh
	$(PY) -m inshape_hack.kafka fetch

demo: setup ## Start Kafka + MLflow, stream data, run update cycles, show promotions
	$(PY) -m inshape_hack.demo $(DEMO_ARGS)

test: setup lint ## Lint, then every test tier that can run on this machine
	$(PYTEST) tests -m "not kind"

test-unit: $(STAMP) ## Pure-logic tests only (no services)
	$(PYTEST) tests/unit

test-integration: setup ## Tests against real Kafka and MLflow
	$(PYTEST) tests -m integration

lint: $(STAMP) ## ruff (lint + format check) and mypy (strict)
	$(VENV)/bin/ruff check jobs operator hack tests bench
	$(VENV)/bin/ruff format --check jobs operator hack tests bench
	$(VENV)/bin/mypy jobs operator hack

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix jobs operator hack tests bench
	$(VENV)/bin/ruff format jobs operator hack tests bench

bench: setup ## Benchmarks: one JSON object per line (ours, the reference's, ratio)
	$(PY) -m bench.drain_throughput
	$(PY) -m bench.update_memory
	$(PY) -m bench.prequential_quality

clean: ## Remove run state (.run); the tool cache in ~/.cache/inshape stays
	rm -rf .run
