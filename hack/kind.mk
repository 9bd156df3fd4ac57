# The kind path: a real cluster in Docker, Strimzi for Kafka, the chart, the example.
# Included from the Makefile (`include hack/kind.mk`); needs docker, kind, kubectl, curl.
#   make kind-up kind-images kind-strimzi kind-install kind-demo   ...   make kind-down

KIND            ?= kind
KUBECTL         ?= kubectl
DOCKER          ?= docker
# helm on PATH, else the project's Go-built one (`make tools`).
HELM            ?= $(shell command -v helm 2>/dev/null || echo .venv/bin/python -m inshape_hack.helm)
KIND_CLUSTER    ?= inshape
KIND_NAMESPACE  ?= inshape
IMAGE_REPO      ?= inshape
IMAGE_TAG       ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' charts/inshape/Chart.yaml)
IMAGE           := $(IMAGE_REPO):$(IMAGE_TAG)
# Strimzi's published install YAML, pinned; 0.45 runs Kafka 3.9 in KRaft mode (the chart's
# strimzi.kafkaVersion).
STRIMZI_VERSION ?= 0.45.0
STRIMZI_URL     := https://github.com/strimzi/strimzi-kafka-operator/releases/download/$(STRIMZI_VERSION)/strimzi-cluster-operator-$(STRIMZI_VERSION).yaml
DEMO_RECORDS    ?= 5000
KIND_KUBECTL    := $(KUBECTL) --context kind-$(KIND_CLUSTER) -n $(KIND_NAMESPACE)
KIND_HELM       := $(HELM) --kube-context kind-$(KIND_CLUSTER) -n $(KIND_NAMESPACE)

.PHONY: kind-up kind-images kind-strimzi kind-install kind-demo kind-down

kind-up: ## kind: create the cluster from kind-config.yaml (once)
	@$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' \
	  || $(KIND) create cluster --name $(KIND_CLUSTER) --config kind-config.yaml --wait 180s
	$(KUBECTL) --context kind-$(KIND_CLUSTER) create namespace $(KIND_NAMESPACE) \
	  --dry-run=client -o yaml | $(KUBECTL) --context kind-$(KIND_CLUSTER) apply -f -

kind-images: ## kind: build the inshape image (Dockerfile) and load it into the cluster
	$(DOCKER) build -t $(IMAGE) .
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)

kind-strimzi: ## kind: install Strimzi's cluster operator $(STRIMZI_VERSION), watching KIND_NAMESPACE
	curl -fsSL $(STRIMZI_URL) \
	  | sed 's/namespace: myproject/namespace: $(KIND_NAMESPACE)/' \
	  | $(KIND_KUBECTL) apply --server-side --force-conflicts -f -
	$(KIND_KUBECTL) rollout status deployment/strimzi-cluster-operator --timeout=300s

kind-install: ## kind: helm install the chart (operator, MLflow, Strimzi Kafka), wait until ready
	$(KIND_HELM) upgrade --install inshape charts/inshape \
	  --set image.repository=$(IMAGE_REPO),image.tag=$(IMAGE_TAG),image.pullPolicy=Never \
	  --set strimzi.enabled=true
	$(KIND_KUBECTL) rollout status deployment/inshape-operator --timeout=300s
	$(KIND_KUBECTL) rollout status deployment/inshape-mlflow --timeout=300s
	$(KIND_KUBECTL) wait kafka/inshape-kafka --for=condition=Ready --timeout=900s

kind-demo: ## kind: add the example policy + serving Deployment, stream digits, wait for a promotion
	$(KIND_HELM) upgrade inshape charts/inshape --reuse-values --set example.enabled=true
	$(KIND_KUBECTL) delete pod producer --ignore-not-found
	$(KIND_KUBECTL) run producer --rm -i --restart=Never --image=$(IMAGE) --image-pull-policy=Never \
	  --command -- python -m inshape_jobs produce --stream digits \
	  --bootstrap-servers inshape-kafka-kafka-bootstrap:9092 --topic digits-events \
	  --count $(DEMO_RECORDS)
	$(KIND_KUBECTL) wait modelupdatepolicy/digits --for=jsonpath='{.status.lastRun.outcome}'=Promoted \
	  --timeout=900s
	$(KIND_KUBECTL) rollout status deployment/digits-serving --timeout=600s
	$(KIND_KUBECTL) get modelupdatepolicies

kind-down: ## kind: delete the cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
