{{- /* The release's prefix: its name if it says peaceland, else <release>-peaceland. */ -}}
{{- define "peaceland.fullname" -}}
{{- if contains "peaceland" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-peaceland" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "peaceland-operator.name" -}}
{{- printf "%s-operator" (include "peaceland.fullname" .) -}}
{{- end -}}

{{- define "peaceland.api.name" -}}
{{- printf "%s-api" (include "peaceland.fullname" .) -}}
{{- end -}}

{{- define "peaceland.common.labels" -}}
app.kubernetes.io/name: peaceland
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "peaceland-operator.labels" -}}
{{ include "peaceland.common.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "peaceland-operator.selector" -}}
app.kubernetes.io/name: peaceland
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "peaceland.api.labels" -}}
{{ include "peaceland.common.labels" . }}
app.kubernetes.io/component: api
{{- end -}}

{{- define "peaceland.api.selector" -}}
app.kubernetes.io/name: peaceland
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end -}}

{{- define "peaceland.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "peaceland.gateway.name" -}}
{{- printf "%s-gateway" (include "peaceland.fullname" .) -}}
{{- end -}}

{{- define "peaceland.gateway.labels" -}}
{{ include "peaceland.common.labels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "peaceland.gateway.selector" -}}
app.kubernetes.io/name: peaceland
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "peaceland.forcesNamespace" -}}
{{- $forces := required "api.forcesNamespace is required: a namespace of the forces' own (the control plane and the gateway read its Secrets)" .Values.api.forcesNamespace -}}
{{- if eq $forces .Release.Namespace -}}
{{- fail (printf "api.forcesNamespace must not be the release's namespace (%s): the control plane and the gateway may read the forces' namespace's Secrets, and the platform's own are here" .Release.Namespace) -}}
{{- end -}}
{{- if and .Values.watchNamespaces (not (has $forces .Values.watchNamespaces)) -}}
{{- fail (printf "api.forcesNamespace (%s) is not among watchNamespaces: the operator would never make its forces" $forces) -}}
{{- end -}}
{{- $forces -}}
{{- end -}}
