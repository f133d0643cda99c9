{{- define "conflux.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The StatefulSet's name: the release name when it already names the chart, else <release>-conflux.
     Cut to 40 characters so that <name>-headless, pod names and node ids stay valid. */}}
{{- define "conflux.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "conflux.headless" -}}
{{- printf "%s-headless" (include "conflux.fullname" .) -}}
{{- end -}}

{{- define "conflux.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conflux.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "conflux.labels" -}}
{{ include "conflux.selectorLabels" . }}
app.kubernetes.io/part-of: conflux
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "conflux.tlsSecret" -}}
{{- required "tls.secretName is required: a Secret with ca.crt, tls.crt and tls.key (see the chart's README.md)" .Values.tls.secretName -}}
{{- end -}}
