{{/*
Names. The fullname is the release name when it already contains the chart
name (so `helm install k8s-cloud-node-manager …` gives plain names), else
<release>-<chart>; truncated to 63 characters as DNS labels require.
*/}}
{{- define "cnm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cnm.fullname" -}}
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

{{- define "cnm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cnm.labels" -}}
helm.sh/chart: {{ include "cnm.chart" . }}
{{ include "cnm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: k8s-cloud-node-manager
{{- end }}

{{/* Selector labels never change across upgrades (a Deployment's selector is immutable). */}}
{{- define "cnm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cnm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cnm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cnm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The API group this server serves, and its APIService's fixed name. */}}
{{- define "cnm.group" -}}infraops.michael.io{{- end }}
{{- define "cnm.apiServiceName" -}}v1.{{ include "cnm.group" . }}{{- end }}

{{/* The Secret holding tls.crt and tls.key of the serving certificate. */}}
{{- define "cnm.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existingSecret" }}
{{- required "tls.existingSecret.name is required when tls.mode is existingSecret" .Values.tls.existingSecret.name }}
{{- else }}
{{- printf "%s-tls" (include "cnm.fullname" .) }}
{{- end }}
{{- end }}

{{/* The DNS name kube-apiserver verifies the serving certificate for. */}}
{{- define "cnm.serviceDNSName" -}}
{{- printf "%s.%s.svc" (include "cnm.fullname" .) .Release.Namespace }}
{{- end }}

{{- define "cnm.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
RBAC subjects of one binding entry (users, groups, serviceAccounts). Fails
when the entry names none: a binding without subjects grants nothing and
is most likely a values mistake.
*/}}
{{- define "cnm.subjects" -}}
{{- $n := add (len (default list .users)) (len (default list .groups)) (len (default list .serviceAccounts)) }}
{{- if eq (int $n) 0 }}
{{- fail (printf "rbac binding %q names no users, groups or serviceAccounts" .name) }}
{{- end }}
{{- range (default list .users) }}
- kind: User
  apiGroup: rbac.authorization.k8s.io
  name: {{ . | quote }}
{{- end }}
{{- range (default list .groups) }}
- kind: Group
  apiGroup: rbac.authorization.k8s.io
  name: {{ . | quote }}
{{- end }}
{{- range (default list .serviceAccounts) }}
- kind: ServiceAccount
  name: {{ .name | quote }}
  namespace: {{ .namespace | quote }}
{{- end }}
{{- end }}
