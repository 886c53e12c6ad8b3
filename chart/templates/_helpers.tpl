{{/* Chart name, truncated to the 63 characters Kubernetes allows in a name. */}}
{{- define "gpt2-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; the release name alone when it already contains the chart name. */}}
{{- define "gpt2-gateway.fullname" -}}
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

{{/* A name made of the fullname and a suffix, within the 63 characters of a DNS label: the
fullname is cut to leave room for the suffix, so the suffix survives and stays unique per object.
The API server copies some names into labels (a Job's name into its pods' job-name label), which
are 63 at most. Call with (dict "ctx" . "suffix" "-model-build"). */}}
{{- define "gpt2-gateway.suffixedName" -}}
{{- $prefix := include "gpt2-gateway.fullname" .ctx | trunc (int (sub 63 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s%s" $prefix .suffix | trimSuffix "-" }}
{{- end }}

{{- define "gpt2-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "gpt2-gateway.labels" -}}
helm.sh/chart: {{ include "gpt2-gateway.chart" . }}
{{ include "gpt2-gateway.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: no version, so an upgrade never orphans pods. */}}
{{- define "gpt2-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpt2-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gpt2-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gpt2-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gpt2-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* SeldonDeployment name. Seldon names services <sdep>-<predictor>[-<graph>] and replaces names
over 63 characters with a hash, so keep it short. */}}
{{- define "gpt2-gateway.seldonName" -}}
{{- if .Values.seldon.name }}
{{- .Values.seldon.name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $prefix := include "gpt2-gateway.fullname" . | trunc 33 | trimSuffix "-" }}
{{- printf "%s-triton" $prefix }}
{{- end }}
{{- end }}

{{/* The SeldonDeployment the gateway watches: an explicit one, or this chart's. */}}
{{- define "gpt2-gateway.watchedSeldonDeployment" -}}
{{- if .Values.triton.seldonDeployment }}
{{- .Values.triton.seldonDeployment }}
{{- else if .Values.seldon.enabled }}
{{- include "gpt2-gateway.seldonName" . }}
{{- end }}
{{- end }}

{{/* The model claim. Its name depends only on the release name, never on anything random or
per-install: a reinstall of the same release renders the same name, so Helm adopts the claim that
the uninstall kept (helm.sh/resource-policy: keep) and the PV stays bound to it. */}}
{{- define "gpt2-gateway.claimName" -}}
{{- if .Values.modelStorage.existingClaim }}
{{- .Values.modelStorage.existingClaim }}
{{- else }}
{{- include "gpt2-gateway.suffixedName" (dict "ctx" . "suffix" "-models") }}
{{- end }}
{{- end }}

{{/* PVs are cluster-wide: the namespace is part of the name so two namespaces never collide.
Cut, namespace and fullname could lose the release (a long namespace fills the name), so a cut
name carries a hash of the whole: still stable per release, still unique, and the default
volumeHandle built from it too. */}}
{{- define "gpt2-gateway.pvName" -}}
{{- if .Values.modelStorage.persistentVolume.name }}
{{- .Values.modelStorage.persistentVolume.name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $whole := printf "%s-%s" .Release.Namespace (include "gpt2-gateway.fullname" .) }}
{{- if le (len $whole) 56 }}
{{- printf "%s-models" $whole }}
{{- else }}
{{- printf "%s-%s-models" ($whole | trunc 47 | trimSuffix "-") ($whole | sha256sum | trunc 8) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The container port the gateway serves /metrics on, by name and by number. Everything that
scrapes or admits scrapes (pod annotations, ServiceMonitor, NetworkPolicy) takes it from here, so
a separate metrics port is a change in one place. */}}
{{/* Where /metrics is served: its own port when metrics.port is set (METRICS_PORT), else http. */}}
{{- define "gpt2-gateway.metricsPortName" -}}
{{- if .Values.metrics.port }}metrics{{ else }}http{{ end }}
{{- end }}

{{- define "gpt2-gateway.metricsPortNumber" -}}
{{- .Values.metrics.port | default 8080 }}
{{- end }}

{{/* The API keys file as the container sees it (auth.existingSecret mounted read-only). */}}
{{- define "gpt2-gateway.apiKeysDir" -}}
/etc/gpt2-gateway/api-keys
{{- end }}

{{/* The model Job; NOTES.txt names it too. */}}
{{- define "gpt2-gateway.jobName" -}}
{{- include "gpt2-gateway.suffixedName" (dict "ctx" . "suffix" "-model-build") }}
{{- end }}
