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
Mount point of the OAUTHBEARER token (a Secret's key or a projected service-account token,
always the file "token" there).
*/}}
{{- define "tagstream.oauthDir" -}}/etc/tagstream/kafka-oauth{{- end }}

{{/*
Mount point of the Kerberos keytab (krb5.keytab) and krb5.conf.
*/}}
{{- define "tagstream.kerberosDir" -}}/etc/tagstream/kerberos{{- end }}

{{/*
The OAUTHBEARER token's source: secret, serviceAccountToken, provider, or "" (none set).
Exactly one is allowed (tagstream.validate).
*/}}
{{- define "tagstream.oauthSource" -}}
{{- $o := .Values.kafka.sasl.oauthbearer }}
{{- if $o.tokenSecret }}secret
{{- else if $o.serviceAccountToken.audience }}serviceAccountToken
{{- else if $o.tokenProvider }}provider
{{- end }}
{{- end }}

{{/*
The worker's SASL environment beyond its ConfigMap: Secret references and the variables of the
Kerberos and AWS libraries (list items of a container's env, or nothing).
*/}}
{{- define "tagstream.saslEnv" -}}
{{- $sasl := .Values.kafka.sasl }}
{{- if $sasl.enabled }}
{{- if has $sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512") }}
- name: TAGSTREAM_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $sasl.existingSecret }}
      key: {{ $sasl.usernameKey }}
- name: TAGSTREAM_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $sasl.existingSecret }}
      key: {{ $sasl.passwordKey }}
{{- else if eq $sasl.mechanism "GSSAPI" }}
{{- $dir := include "tagstream.kerberosDir" . }}
# MIT Kerberos: the configuration and the client keytab (initial credentials come from it).
- name: KRB5_CONFIG
  value: {{ printf "%s/krb5.conf" $dir | quote }}
- name: KRB5_CLIENT_KTNAME
  value: {{ printf "%s/krb5.keytab" $dir | quote }}
{{- if and .Values.keda.enabled $sasl.gssapi.principal }}
{{- $principal := splitList "@" $sasl.gssapi.principal }}
# Not read by the worker: KEDA's TriggerAuthentication takes its Kerberos user and realm from
# here (parameters username and realm, source env).
- name: KEDA_KAFKA_KERBEROS_USER
  value: {{ first $principal | quote }}
- name: KEDA_KAFKA_KERBEROS_REALM
  value: {{ last $principal | quote }}
{{- end }}
{{- else if eq $sasl.mechanism "AWS_MSK_IAM" }}
# botocore's region; the credentials come from the pod's identity (IRSA or EKS Pod Identity).
- name: AWS_REGION
  value: {{ $sasl.awsMskIam.awsRegion | quote }}
{{- end }}
{{- if and .Values.keda.enabled (eq $sasl.mechanism "OAUTHBEARER") }}
{{- $auth := .Values.keda.auth.oauthbearer }}
# Not read by the worker: KEDA's TriggerAuthentication takes its OAuth token request's
# parameters from here (oauthTokenEndpointUri, scopes, oauthExtensions; source env).
- name: KEDA_KAFKA_OAUTH_TOKEN_ENDPOINT_URI
  value: {{ $auth.tokenEndpointUri | quote }}
{{- with $auth.scopes }}
- name: KEDA_KAFKA_OAUTH_SCOPES
  value: {{ join "," . | quote }}
{{- end }}
{{- with $auth.extensions }}
{{- $pairs := list }}
{{- range $name, $value := . }}
{{- $pairs = append $pairs (printf "%s=%s" $name $value) }}
{{- end }}
- name: KEDA_KAFKA_OAUTH_EXTENSIONS
  value: {{ join "," $pairs | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

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
{{- include "tagstream.validateSasl" . }}
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

{{/*
The SASL values against the mechanism, as the worker checks its settings (worker/settings/kafka.py
check_sasl), plus what the pod and KEDA need mounted or referenced. Each fails the render with the
value to set.
*/}}
{{- define "tagstream.validateSasl" -}}
{{- $sasl := .Values.kafka.sasl }}
{{- if $sasl.enabled }}
{{- $m := $sasl.mechanism }}
{{- $password := has $m (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512") }}
{{- if and $password (not $sasl.existingSecret) }}
{{- fail (printf "kafka.sasl.mechanism %s needs kafka.sasl.existingSecret: the name of a Secret with the SASL user name and password" $m) }}
{{- end }}
{{- if and (not $password) $sasl.existingSecret }}
{{- fail (printf "kafka.sasl.existingSecret (a user name and password) is for PLAIN and SCRAM-*, not %s: unset it" $m) }}
{{- end }}
{{- $o := $sasl.oauthbearer }}
{{- $oauthSources := list }}
{{- if $o.tokenSecret }}{{ $oauthSources = append $oauthSources "kafka.sasl.oauthbearer.tokenSecret" }}{{ end }}
{{- if $o.serviceAccountToken.audience }}{{ $oauthSources = append $oauthSources "kafka.sasl.oauthbearer.serviceAccountToken.audience" }}{{ end }}
{{- if $o.tokenProvider }}{{ $oauthSources = append $oauthSources "kafka.sasl.oauthbearer.tokenProvider" }}{{ end }}
{{- if eq $m "OAUTHBEARER" }}
{{- if ne (len $oauthSources) 1 }}
{{- fail (printf "kafka.sasl.mechanism OAUTHBEARER needs exactly one token source: kafka.sasl.oauthbearer.tokenSecret (an existing Secret holding the token), kafka.sasl.oauthbearer.serviceAccountToken.audience (a projected service-account token) or kafka.sasl.oauthbearer.tokenProvider (module:function in the image); set: %s" (default "none" (join ", " $oauthSources))) }}
{{- end }}
{{- else if $oauthSources }}
{{- fail (printf "%s: only used by OAUTHBEARER, not %s; unset it" (join ", " $oauthSources) $m) }}
{{- end }}
{{- if and (has $m (list "PLAIN" "OAUTHBEARER")) (not .Values.kafka.tls.enabled) (not $sasl.allowPlaintextCredentials) }}
{{- fail (printf "kafka.sasl.mechanism %s without kafka.tls.enabled sends the %s unencrypted: enable kafka.tls, or set kafka.sasl.allowPlaintextCredentials=true if the network is trusted" $m (ternary "password" "bearer token" (eq $m "PLAIN"))) }}
{{- end }}
{{- $g := $sasl.gssapi }}
{{- if eq $m "GSSAPI" }}
{{- if not $g.keytabSecret }}
{{- fail "kafka.sasl.mechanism GSSAPI needs kafka.sasl.gssapi.keytabSecret: the name of a Secret holding the client keytab (key kafka.sasl.gssapi.keytabKey)" }}
{{- end }}
{{- if not (or $g.krb5ConfigMap $g.krb5ConfigSecret) }}
{{- fail "kafka.sasl.mechanism GSSAPI needs krb5.conf: set kafka.sasl.gssapi.krb5ConfigMap (a ConfigMap) or kafka.sasl.gssapi.krb5ConfigSecret (a Secret) holding it under kafka.sasl.gssapi.krb5ConfigKey" }}
{{- end }}
{{- if and $g.krb5ConfigMap $g.krb5ConfigSecret }}
{{- fail "kafka.sasl.gssapi.krb5ConfigMap and kafka.sasl.gssapi.krb5ConfigSecret: set one of them" }}
{{- end }}
{{- if and .Values.keda.enabled (not $g.principal) }}
{{- fail "keda.enabled with kafka.sasl.mechanism GSSAPI needs kafka.sasl.gssapi.principal (user@REALM): KEDA authenticates with the keytab as that principal" }}
{{- end }}
{{- else if $g.keytabSecret }}
{{- fail (printf "kafka.sasl.gssapi.keytabSecret: only used by GSSAPI, not %s; unset it" $m) }}
{{- end }}
{{- if eq $m "AWS_MSK_IAM" }}
{{- if not .Values.kafka.tls.enabled }}
{{- fail "kafka.sasl.mechanism AWS_MSK_IAM needs kafka.tls.enabled (MSK takes IAM authentication on its TLS listener only)" }}
{{- end }}
{{- if not $sasl.awsMskIam.awsRegion }}
{{- fail "kafka.sasl.mechanism AWS_MSK_IAM needs kafka.sasl.awsMskIam.awsRegion: the region of the MSK cluster (AWS_REGION)" }}
{{- end }}
{{- else if $sasl.awsMskIam.awsRegion }}
{{- fail (printf "kafka.sasl.awsMskIam.awsRegion: only used by AWS_MSK_IAM, not %s; unset it" $m) }}
{{- end }}
{{- if .Values.keda.enabled }}
{{- $oauth := .Values.keda.auth.oauthbearer }}
{{- if and (eq $m "OAUTHBEARER") (not $oauth.existingSecret) }}
{{- fail "keda.enabled with kafka.sasl.mechanism OAUTHBEARER needs keda.auth.oauthbearer.existingSecret: a Secret with the OAuth client id and secret KEDA requests its own token with (KEDA cannot use the worker's token)" }}
{{- end }}
{{- if and (eq $m "OAUTHBEARER") (not $oauth.tokenEndpointUri) }}
{{- fail "keda.enabled with kafka.sasl.mechanism OAUTHBEARER needs keda.auth.oauthbearer.tokenEndpointUri: the OAuth token endpoint KEDA requests its token from" }}
{{- end }}
{{- $aws := .Values.keda.auth.awsMskIam }}
{{- if eq $m "AWS_MSK_IAM" }}
{{- if and (eq $aws.identityOwner "workload") $aws.roleArn }}
{{- fail "keda.auth.awsMskIam.roleArn is for identityOwner keda (KEDA refuses a roleArn with identityOwner workload): unset one of them" }}
{{- end }}
{{- if and (eq $aws.identityOwner "workload") .Values.serviceAccount.create (not (hasKey .Values.serviceAccount.annotations "eks.amazonaws.com/role-arn")) }}
{{- fail "keda.auth.awsMskIam.identityOwner workload needs serviceAccount.annotations eks.amazonaws.com/role-arn (IRSA): KEDA assumes the role named there" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The kafka trigger's `sasl` for a worker mechanism (KEDA apache-kafka scaler; AWS_MSK_IAM is
KEDA's oauthbearer with saslTokenProvider aws_msk_iam).
*/}}
{{- define "tagstream.kedaSasl" -}}
{{- get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" "OAUTHBEARER" "oauthbearer" "GSSAPI" "gssapi" "AWS_MSK_IAM" "oauthbearer") .Values.kafka.sasl.mechanism }}
{{- end }}
