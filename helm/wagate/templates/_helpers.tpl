{{- define "wagate.name" -}}{{ .Chart.Name }}{{- end -}}
{{- define "wagate.fullname" -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "wagate.labels" -}}
app.kubernetes.io/name: {{ include "wagate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "wagate.secretName" -}}{{ default (printf "%s-secrets" (include "wagate.fullname" .)) .Values.secrets.existingSecret }}{{- end -}}

{{- define "wagate.grpcScheme" -}}{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}{{- end -}}
{{- define "wagate.tlsSecretName" -}}{{ required "tls.secretName is required when tls.enabled (a kubernetes.io/tls Secret with tls.crt, tls.key, ca.crt)" .Values.tls.secretName }}{{- end -}}
