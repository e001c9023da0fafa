{{- define "wagate.name" -}}{{ .Chart.Name }}{{- end -}}
{{- define "wagate.fullname" -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "wagate.labels" -}}
app.kubernetes.io/name: {{ include "wagate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "wagate.secretName" -}}{{ default (printf "%s-secrets" (include "wagate.fullname" .)) .Values.secrets.existingSecret }}{{- end -}}
