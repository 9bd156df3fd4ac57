# inshape — developer entry points. `make help` lists them.
# Everything is installed into .venv and ~/.cache/inshape by these targets; nothing by hand.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest -p no:cacheprovider

.DEFAULT_GOAL := help

.PHONY: help setup native tools strimzi-crds images kind-up kind-down env docker-up docker-down operator demo demo-down \
	demo-local test test-unit test-integration test-e2e lint format bench crd clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# pip's chatter goes to stderr, so `eval "$$(make -s env)"` reads exports only.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) >&2
	$(PY) -m pip install -q --upgrade 'pip>=25.1' >&2
	$(PY) -m pip install -q -e . --group dev >&2
	@touch $@

setup: $(STAMP) native ## Install Python deps, the compiled decoder, Debian packages (kcat, Java, Maven, docker.io, debootstrap), the Kafka jars (cached)
	@hack/ensure-packages.sh
	$(PY) -m inshape_hack.kafka fetch

# Every time, but a lookup unless the crate changed: its wheel is cached by a source hash.
native: $(STAMP) ## Build (cargo + maturin, cached) and install the compiled record decoder
	$(PY) -m inshape_hack.native_wheel --install >&2

tools: $(STAMP) ## Build the Go tools: Kubernetes, etcd, helm, kind, crictl, coredns, local-path (cached)
	$(PY) -m inshape_hack.gotools --kind

strimzi-crds: $(STAMP) ## Strimzi's CRDs of 0.45.0 (v1beta2) and 1.2.0 (v1), made from Maven Central's jars (cached)
	$(PY) -m inshape_hack.strimzi_crds

images: setup ## Docker (own daemon if none answers), the kind node image, the project's and Kafka's images (cached)
	$(PY) -m inshape_hack.kindtesting prepare

docker-up: $(STAMP) ## Use the Docker daemon that answers, else install docker.io and start the project's own
	$(PY) -m inshape_hack.docker up

docker-down: $(STAMP) ## Stop the project's own Docker daemon (never a user's); images stay cached
	$(PY) -m inshape_hack.docker down

kind-up: images ## Create (or reuse) the kind cluster `inshape` from kind-config.yaml
	$(PY) -m inshape_hack.kindcluster up

kind-down: $(STAMP) ## Delete the kind cluster `inshape`
	$(PY) -m inshape_hack.kindcluster down

env: $(STAMP) ## Exports pointing kubectl, helm and docker at the cluster: eval "$$(make -s env)"
	@$(PY) -m inshape_hack.kindcluster env

operator: $(STAMP) ## Run the operator on the host against the demo cluster (after make demo)
	KUBECONFIG=.run/kind/inshape.kubeconfig INSHAPE_POLL_SECONDS=2 $(PY) -m inshape_operator

demo: images ## The whole loop on kind: helm install, stream drifting data, watch promotions
	$(PY) -m inshape_hack.demo $(DEMO_ARGS)

demo-down: ## Delete the demo's kind cluster (and stop the project's own Docker daemon)
	@test -x $(PY) && $(PY) -m inshape_hack.demo down || true

demo-local: setup ## The update Job alone on Kafka + MLflow (no Kubernetes): cycles and decisions
	$(PY) -m inshape_hack.demo_local $(DEMO_ARGS)

test: images lint ## Lint, then every test tier: unit, integration, e2e on kind
	$(PYTEST) tests

test-unit: native ## Pure-logic tests only (no services)
	$(PYTEST) tests/unit

test-integration: setup ## Tests against real Kafka, MLflow (on the host) and a kind API server
	$(PYTEST) tests -m integration

test-e2e: images ## End-to-end tests on a kind cluster the session creates and deletes
	$(PYTEST) tests -m e2e

lint: $(STAMP) ## ruff (lint + format check) and mypy (strict)
	$(VENV)/bin/ruff check api jobs operator hack tests bench
	$(VENV)/bin/ruff format --check api jobs operator hack tests bench
	$(VENV)/bin/mypy api jobs operator hack bench

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix api jobs operator hack tests bench
	$(VENV)/bin/ruff format api jobs operator hack tests bench

bench: setup ## Benchmarks: one JSON object per line (ours, the reference's, ratio)
	$(PY) -m bench.drain_throughput
	$(PY) -m bench.drain_throughput --partitions 32 --plain-budget 20
	$(PY) -m bench.drain_secure
	$(PY) -m bench.update_memory
	$(PY) -m bench.prequential_quality
	$(PY) -m bench.operator_latency --runs 20
	$(PY) -m bench.operator_scale
	$(PY) -m bench.schedule_latency
	$(PY) -m bench.loop_latency --loops 5
	$(PY) -m bench.job_start
	$(PY) -m bench.mlflow_log

crd: $(STAMP) ## Regenerate the CRD from the policy's Python model (the one source of truth)
	$(PY) -m inshape_operator.crd -o manifests/crd/modelupdatepolicies.inshape.dev.yaml
	cp manifests/crd/modelupdatepolicies.inshape.dev.yaml charts/inshape/files/

clean: demo-down ## Delete the demo cluster, remove run state (.run); the tool cache stays
	rm -rf .run
