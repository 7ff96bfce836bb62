{{/*
Names, labels and small pieces shared by the templates. tests/charts/ renders the chart with
the real helm (lint --strict, template) over the documented values.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "canary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: fullnameOverride, else the release name when it is the chart's
name, else "<release>-<chart>". */}}
{{- define "canary.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if eq .Release.Name (include "canary.name" .) -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "canary.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What the Deployment, the Service, the PodDisruptionBudget and the ServiceMonitor
select the controller's Pods (and its Service) by. */}}
{{- define "canary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* The labels of every object the chart makes. */}}
{{- define "canary.labels" -}}
{{ include "canary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: canary
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The ServiceAccount the controller runs as. */}}
{{- define "canary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "canary.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret whose keys are the API's tokens. */}}
{{- define "canary.apiTokensSecret" -}}
{{- default (printf "%s-api-tokens" (include "canary.fullname" .)) .Values.api.tokens.existingSecret -}}
{{- end -}}

{{/* The ServiceAccount as the subject of a binding. */}}
{{- define "canary.subjects" -}}
- kind: ServiceAccount
  name: {{ include "canary.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}


{{/* The controller's image: repository@digest when a digest is given, else repository:tag
(the tag defaults to the chart's appVersion). */}}
{{- define "canary.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Prometheus label matchers of this release's controller series: the job a
ServiceMonitor of this chart gives them (the Service's name), or prometheusRule.selector. Not
the namespace: the controller's series carry the Rollout's namespace as `namespace`, which the
ServiceMonitor keeps (honorLabels). */}}
{{- define "canary.seriesSelector" -}}
{{- default (printf "job=\"%s\"" (include "canary.fullname" .)) .Values.prometheusRule.selector -}}
{{- end -}}

{{/* The user name the API server gives the controller's ServiceAccount. */}}
{{- define "canary.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "canary.serviceAccountName" .) -}}
{{- end -}}

{{/* Where the CA bundle for a TLS Prometheus is mounted. */}}
{{- define "canary.caBundleDir" -}}/etc/canary/prometheus-ca{{- end -}}
