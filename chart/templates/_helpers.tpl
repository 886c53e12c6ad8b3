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
{{- default (printf "%s-triton" (include "gpt2-gateway.fullname" .)) .Values.seldon.name | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* The SeldonDeployment the gateway watches: an explicit one, or this chart's. */}}
{{- define "gpt2-gateway.watchedSeldonDeployment" -}}
{{- if .Values.triton.seldonDeployment }}
{{- .Values.triton.seldonDeployment }}
{{- else if .Values.seldon.enabled }}
{{- include "gpt2-gateway.seldonName" . }}
{{- end }}
{{- end }}

{{- define "gpt2-gateway.claimName" -}}
{{- default (printf "%s-models" (include "gpt2-gateway.fullname" .)) .Values.modelStorage.existingClaim }}
{{- end }}

{{- define "gpt2-gateway.pvName" -}}
{{- default (printf "%s-%s-models" .Release.Namespace (include "gpt2-gateway.fullname" .)) .Values.modelStorage.persistentVolume.name | trunc 63 | trimSuffix "-" }}
{{- end }}
