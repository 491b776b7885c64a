{{- define "peaceland-operator.name" -}}
{{- if contains "peaceland-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-peaceland-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "peaceland-operator.labels" -}}
app.kubernetes.io/name: peaceland-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "peaceland-operator.selector" -}}
app.kubernetes.io/name: peaceland-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "peaceland-operator.kafkaSecret" -}}
{{- .Values.kafka.existingSecret | default (printf "%s-kafka" (include "peaceland-operator.name" .)) -}}
{{- end -}}

{{- define "peaceland-operator.cassandraSecret" -}}
{{- .Values.cassandra.existingSecret | default (printf "%s-cassandra" (include "peaceland-operator.name" .)) -}}
{{- end -}}
