{{/* The chart name, or nameOverride; 63 characters at most (a DNS label). */}}
{{- define "inshape.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: fullnameOverride, else <release>-<name> (just <release> when it already
contains the name); 63 characters at most.
*/}}
{{- define "inshape.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A name for one component: <fullname>-<suffix>, still within 63 characters. */}}
{{- define "inshape.componentName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "inshape.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "inshape.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: only the stable ones (a selector of a Deployment is immutable). */}}
{{- define "inshape.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "inshape.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Every object's labels; call with (list $ "component"). */}}
{{- define "inshape.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "inshape.chart" $root }}
{{ include "inshape.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: inshape
{{- end }}

{{/* The image reference: [global.imageRegistry/]repository, then @digest when set, else
:tag (default the appVersion). */}}
{{- define "inshape.image" -}}
{{- $repository := .Values.image.repository }}
{{- with (.Values.global).imageRegistry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The names of global.imagePullSecrets and imagePullSecrets (a list, as JSON); each entry
is a Secret name or a {name: ...} reference. */}}
{{- define "inshape.imagePullSecretNames" -}}
{{- $names := list }}
{{- range concat ((.Values.global).imagePullSecrets | default list) .Values.imagePullSecrets }}
{{- if kindIs "string" . }}
{{- $names = append $names . }}
{{- else }}
{{- $names = append $names .name }}
{{- end }}
{{- end }}
{{- $names | uniq | toJson }}
{{- end }}

{{/* A pod's imagePullSecrets field, or nothing. */}}
{{- define "inshape.imagePullSecrets" -}}
{{- $refs := list }}
{{- range include "inshape.imagePullSecretNames" . | fromJsonArray }}
{{- $refs = append $refs (dict "name" .) }}
{{- end }}
{{- with $refs }}{{ dict "imagePullSecrets" . | toYaml }}{{ end }}
{{- end }}

{{/* A pod template's metadata: the component's labels plus its podLabels, and podAnnotations.
Call with (list $ "component" $componentValues). */}}
{{- define "inshape.podMetadata" -}}
{{- $values := index . 2 }}
{{- $labels := include "inshape.labels" (list (index . 0) (index . 1)) | fromYaml }}
{{- $metadata := dict "labels" (merge $labels ($values.podLabels | default dict)) }}
{{- with $values.podAnnotations }}{{ $_ := set $metadata "annotations" . }}{{ end }}
{{- toYaml $metadata }}
{{- end }}

{{/* Where a pod may run and how it pulls: imagePullSecrets, nodeSelector, tolerations,
affinity, topologySpreadConstraints, priorityClassName (only those set). Call with
(list $ $componentValues). */}}
{{- define "inshape.podPlacement" -}}
{{- $values := index . 1 }}
{{- $placement := include "inshape.imagePullSecrets" (index . 0) | fromYaml | default dict }}
{{- range $field := list "priorityClassName" "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints" }}
{{- with get $values $field }}{{ $_ := set $placement $field . }}{{ end }}
{{- end }}
{{- with $placement }}{{ toYaml . }}{{ end }}
{{- end }}

{{- define "inshape.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inshape.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches (a list, as JSON): empty when cluster-wide. */}}
{{- define "inshape.watchNamespaces" -}}
{{- if .Values.rbac.clusterWide }}
{{- list | toJson }}
{{- else if .Values.operator.watchNamespaces }}
{{- .Values.operator.watchNamespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{- define "inshape.mlflowName" -}}
{{- include "inshape.componentName" (list . "mlflow") }}
{{- end }}

{{/* The tracking URI every policy of the chart and the serving Deployment use. */}}
{{- define "inshape.mlflowUri" -}}
{{- if .Values.mlflow.external.uri }}
{{- .Values.mlflow.external.uri }}
{{- else }}
{{- printf "http://%s.%s:%d" (include "inshape.mlflowName" .) .Release.Namespace (int .Values.mlflow.server.port) }}
{{- end }}
{{- end }}

{{- define "inshape.kafkaName" -}}
{{- default (include "inshape.componentName" (list . "kafka")) .Values.strimzi.clusterName }}
{{- end }}

{{/* The kafka.strimzi.io version rendered: strimzi.apiVersion, else v1 where the cluster serves
it (Strimzi 0.49+), else v1beta2. */}}
{{- define "inshape.strimziApiVersion" -}}
{{- if .Values.strimzi.apiVersion }}
{{- printf "kafka.strimzi.io/%s" .Values.strimzi.apiVersion }}
{{- else if .Capabilities.APIVersions.Has "kafka.strimzi.io/v1/Kafka" }}
{{- "kafka.strimzi.io/v1" }}
{{- else }}
{{- "kafka.strimzi.io/v1beta2" }}
{{- end }}
{{- end }}

{{/* The KafkaUser (and its Secret) the example policy signs in as. */}}
{{- define "inshape.kafkaUser" -}}
{{- default (include "inshape.componentName" (list . "user")) .Values.strimzi.user }}
{{- end }}

{{/* The example policy from files/examples, with this release's Kafka, MLflow and target. */}}
{{- define "inshape.examplePolicy" -}}
{{- $file := printf "files/examples/%s.yaml" .Values.example.policy }}
{{- $policy := .Files.Get $file | fromYaml }}
{{- $kafka := $policy.spec.source.kafka }}
{{- if .Values.kafka.bootstrapServers }}
{{- $_ := set $kafka "bootstrapServers" .Values.kafka.bootstrapServers }}
{{- else if .Values.strimzi.enabled }}
{{- $_ := unset $kafka "bootstrapServers" }}
{{- $_ := set $kafka "strimziCluster" (include "inshape.kafkaName" .) }}
{{- $user := include "inshape.kafkaUser" . }}
{{- if eq .Values.strimzi.authentication "scram-sha-512" }}
{{- $password := dict "secretName" $user "password" "password" }}
{{- $_ := set $kafka "authentication" (dict "type" "scram-sha-512" "username" $user "passwordSecret" $password) }}
{{- else if eq .Values.strimzi.authentication "tls" }}
{{- $key := dict "secretName" $user "certificate" "user.crt" "key" "user.key" }}
{{- $_ := set $kafka "authentication" (dict "type" "tls" "certificateAndKey" $key) }}
{{- end }}
{{- else }}
{{- fail "example.enabled needs a Kafka: set kafka.bootstrapServers or strimzi.enabled" }}
{{- end }}
{{- with .Values.example.topic }}{{ $_ := set $kafka "topic" . }}{{ end }}
{{- with .Values.example.modelName }}{{ $_ := set $policy.spec.model "name" . }}{{ end }}
{{- /* Model names carry the namespace (admission.namespaceScopedNames): prefix the example's. */}}
{{- $prefix := printf "%s-" .Release.Namespace }}
{{- if not (hasPrefix $prefix $policy.spec.model.name) }}
{{- $_ := set $policy.spec.model "name" (printf "%s%s" $prefix $policy.spec.model.name) }}
{{- end }}
{{- with .Values.example.minNewRecords }}{{ $_ := set $policy.spec.trigger "minNewRecords" . }}{{ end }}
{{- $_ := set $policy.spec.mlflow "trackingUri" (include "inshape.mlflowUri" .) }}
{{- with include "inshape.exampleMlflowSecret" . }}
{{- $_ := set $policy.spec.mlflow "credentialsSecret" . }}
{{- end }}
{{- $_ := set $policy.metadata "namespace" .Release.Namespace }}
{{- $policy | toJson }}
{{- end }}

{{/* The restricted container security context every container of the chart runs with. */}}
{{- define "inshape.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{- define "inshape.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* "true" when the MLflow server needs its volume: a sqlite backend store, artifacts on the
volume, or basic auth's sqlite user store; empty when everything is external. */}}
{{- define "inshape.mlflowVolume" -}}
{{- $server := .Values.mlflow.server }}
{{- if or (not $server.backendStore.uriSecret.name) (not $server.artifacts.destination) $server.auth.enabled }}true{{ end }}
{{- end }}

{{/* The Secret the example signs in to MLflow with; empty for none. */}}
{{- define "inshape.exampleMlflowSecret" -}}
{{- if .Values.example.mlflowCredentialsSecret }}
{{- .Values.example.mlflowCredentialsSecret }}
{{- else if and (not .Values.mlflow.external.uri) .Values.mlflow.server.auth.enabled }}
{{- .Values.mlflow.server.auth.adminSecret.name }}
{{- end }}
{{- end }}
