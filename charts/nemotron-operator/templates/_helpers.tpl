{{/*
Names, labels and the image reference shared by every template of the chart.
*/}}

{{- define "nemotron-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nemotron-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nemotron-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nemotron-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nemotron-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nemotron-operator.labels" -}}
helm.sh/chart: {{ include "nemotron-operator.chart" . }}
{{ include "nemotron-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: nemotron
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "nemotron-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nemotron-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "nemotron-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "nemotron-operator.routerImage" -}}
{{- default (include "nemotron-operator.image" .) .Values.operator.routerImage -}}
{{- end -}}

{{/* The namespaces the operator serves: the list, or the empty list for all. */}}
{{- define "nemotron-operator.clusterWide" -}}
{{- if empty .Values.operator.watchNamespaces -}}true{{- end -}}
{{- end -}}
