# inshape — developer entry points. `make help` lists them.
# Everything is installed into .venv and ~/.cache/inshape by these targets; nothing by hand.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest -p no:cacheprovider

.DEFAULT_GOAL := help

# The kind path (needs Docker): kind-up, kind-images, kind-strimzi, kind-install, kind-demo.
include hack/kind.mk
.PHONY: help setup tools operator demo demo-down demo-local test test-unit test-integration test-e2e lint format bench crd \
	cluster-up cluster-down cluster-status clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade 'pip>=25.1'
	$(PY) -m pip install -q -e . --group dev
	@touch $@

setup: $(STAMP) ## Install Python deps, kcat, and fetch the Kafka broker jars (cached)
	@hack/ensure-packages.sh
	$(PY) -m inshape_hack.kafka fetch

tools: $(STAMP) ## Build etcd, kube-apiserver, kube-controller-manager, kubectl, helm from Go modules (cached)
	$(PY) -m inshape_hack.gotools

cluster-up: setup tools ## Start the local cluster (etcd, apiserver, controllers, local kubelet, Kafka, MLflow)
	$(PY) -m inshape_hack.cluster up

cluster-down: ## Stop the local cluster; leaves no process behind
	@test -x $(PY) && $(PY) -m inshape_hack.cluster down || true

cluster-status: ## Components, pids, /readyz and endpoints of the local cluster
	$(PY) -m inshape_hack.cluster status

operator: $(STAMP) ## Run the operator against the local cluster (after make cluster-up)
	KUBECONFIG=.run/cluster/admin.kubeconfig INSHAPE_POLL_SECONDS=2 $(PY) -m inshape_operator

demo: setup tools ## The whole loop on the local cluster: helm install, stream, watch promotions
	$(PY) -m inshape_hack.demo $(DEMO_ARGS)

demo-down: ## Remove the demo release and stop the local cluster
	@test -x $(PY) && $(PY) -m inshape_hack.demo down || true

demo-local: setup ## The update Job alone on Kafka + MLflow (no Kubernetes): cycles and decisions
	$(PY) -m inshape_hack.demo_local $(DEMO_ARGS)

test: setup tools lint ## Lint, then every test tier (the kind tier skips, saying why, without Docker)
	$(PYTEST) tests

test-unit: $(STAMP) ## Pure-logic tests only (no services)
	$(PYTEST) tests/unit

test-integration: setup tools ## Tests against real Kafka, MLflow and kube-apiserver
	$(PYTEST) tests -m integration

test-e2e: setup tools ## End-to-end tests on a local cluster the session starts and stops
	$(PYTEST) tests -m e2e

lint: $(STAMP) ## ruff (lint + format check) and mypy (strict)
	$(VENV)/bin/ruff check jobs operator hack tests bench
	$(VENV)/bin/ruff format --check jobs operator hack tests bench
	$(VENV)/bin/mypy jobs operator hack bench

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix jobs operator hack tests bench
	$(VENV)/bin/ruff format jobs operator hack tests bench

bench: setup ## Benchmarks: one JSON object per line (ours, the reference's, ratio)
	$(PY) -m bench.drain_throughput
	$(PY) -m bench.drain_throughput --partitions 32 --plain-budget 20
	$(PY) -m bench.update_memory
	$(PY) -m bench.prequential_quality
	$(PY) -m bench.operator_latency --runs 20
	$(PY) -m bench.operator_scale
	$(PY) -m bench.loop_latency --loops 5

crd: $(STAMP) ## Regenerate the CRD from the policy's Python model (the one source of truth)
	$(PY) -m inshape_operator.crd -o manifests/crd/modelupdatepolicies.inshape.dev.yaml
	cp manifests/crd/modelupdatepolicies.inshape.dev.yaml charts/inshape/files/

clean: cluster-down ## Stop the local cluster, remove run state (.run); the tool cache stays
	rm -rf .run
