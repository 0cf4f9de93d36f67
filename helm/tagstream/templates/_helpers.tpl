{{/*
Names and labels.
*/}}
{{- define "tagstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tagstream.fullname" -}}
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

{{- define "tagstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tagstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tagstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tagstream.labels" -}}
helm.sh/chart: {{ include "tagstream.chart" . }}
{{ include "tagstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: worker
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tagstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tagstream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tagstream.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Kafka security protocol, derived from the two toggles so it can never disagree with them.
*/}}
{{- define "tagstream.securityProtocol" -}}
{{- if and .Values.kafka.sasl.enabled .Values.kafka.tls.enabled }}SASL_SSL
{{- else if .Values.kafka.sasl.enabled }}SASL_PLAINTEXT
{{- else if .Values.kafka.tls.enabled }}SSL
{{- else }}PLAINTEXT
{{- end }}
{{- end }}

{{/*
Seconds Kubernetes waits after SIGTERM before SIGKILL: the worker's drain timeout plus a
margin, rounded up. One value (worker.drainTimeoutSeconds) drives both.
*/}}
{{- define "tagstream.terminationGracePeriodSeconds" -}}
{{- addf .Values.worker.drainTimeoutSeconds .Values.worker.terminationGraceMarginSeconds | ceil | int }}
{{- end }}

{{/*
PromQL label matchers for this release's series (alerts).
*/}}
{{- define "tagstream.seriesSelector" -}}
{{- if .Values.prometheusRule.seriesSelector }}
{{- .Values.prometheusRule.seriesSelector }}
{{- else }}
{{- printf "job=%q,namespace=%q" (include "tagstream.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
Mount point of the Kafka TLS Secret.
*/}}
{{- define "tagstream.tlsDir" -}}/etc/tagstream/kafka-tls{{- end }}

{{/*
Consistency checks that a JSON schema cannot express; each fails the render with the fix.
*/}}
{{- define "tagstream.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are both true: choose one (two autoscalers would fight over the replica count)" }}
{{- end }}
{{- if ge (mulf .Values.worker.drainTimeoutSeconds 1000) (float64 .Values.kafka.maxPollIntervalMs) }}
{{- fail (printf "worker.drainTimeoutSeconds (%v s) must be shorter than kafka.maxPollIntervalMs (%v ms)" .Values.worker.drainTimeoutSeconds .Values.kafka.maxPollIntervalMs) }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.enabled needs kafka.sasl.existingSecret: the name of a Secret with the SASL user name and password" }}
{{- end }}
{{- if .Values.kafka.tls.enabled }}
{{- $tls := .Values.kafka.tls }}
{{- if and (or $tls.caKey $tls.certKey $tls.keyKey $tls.keyPasswordKey) (not $tls.existingSecret) }}
{{- fail "kafka.tls needs kafka.tls.existingSecret: the name of a Secret holding the CA (and client certificate and key)" }}
{{- end }}
{{- if ne (empty $tls.certKey) (empty $tls.keyKey) }}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey must be set together (mutual TLS)" }}
{{- end }}
{{- end }}
{{- $partitions := int .Values.inputPartitions }}
{{- if gt $partitions 0 }}
{{- $most := int .Values.replicaCount }}
{{- if .Values.autoscaling.enabled }}{{ $most = int .Values.autoscaling.maxReplicas }}{{ end }}
{{- if .Values.keda.enabled }}{{ $most = int .Values.keda.maxReplicaCount }}{{ end }}
{{- if gt $most $partitions }}
{{- fail (printf "up to %d replicas but the input topic has %d partitions (inputPartitions): %d would sit idle; lower the replica count or add partitions" $most $partitions (sub $most $partitions)) }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- fail "keda.minReplicaCount is above keda.maxReplicaCount" }}
{{- end }}
{{- end }}
