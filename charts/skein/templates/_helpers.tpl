{{/* Names, labels and images shared by the templates. */}}

{{- define "skein.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource: the release name, with the chart name unless it already has it. */}}
{{- define "skein.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "skein.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Names of the components; 53 characters leave room for the controllers' pod suffixes. */}}
{{- define "skein.agent.name" -}}
{{- printf "%s-agent" (include "skein.fullname" . | trunc 47 | trimSuffix "-") -}}
{{- end -}}
{{- define "skein.operator.name" -}}
{{- printf "%s-operator" (include "skein.fullname" . | trunc 44 | trimSuffix "-") -}}
{{- end -}}
{{- define "skein.config.name" -}}
{{- printf "%s-config" (include "skein.fullname" . | trunc 46 | trimSuffix "-") -}}
{{- end -}}

{{- define "skein.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skein.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "skein.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "skein.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: skein
{{- end -}}

{{/* An image reference from {registry, repository, tag, digest}; the digest wins over the tag. */}}
{{- define "skein.imageRef" -}}
{{- $repo := .image.repository -}}
{{- if .image.registry -}}{{- $repo = printf "%s/%s" .image.registry .image.repository -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .appVersion) -}}
{{- end -}}
{{- end -}}

{{- define "skein.image" -}}
{{- include "skein.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "skein.envoyImage" -}}
{{- include "skein.imageRef" (dict "image" .Values.envoy.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{/* The environment both Skein processes share: logging from the settings ConfigMap, the API server. */}}
{{- define "skein.commonEnv" -}}
- name: SKEIN_LOG_LEVEL
  valueFrom:
    configMapKeyRef:
      name: {{ include "skein.config.name" . }}
      key: SKEIN_LOG_LEVEL
- name: SKEIN_LOG_FORMAT
  valueFrom:
    configMapKeyRef:
      name: {{ include "skein.config.name" . }}
      key: SKEIN_LOG_FORMAT
{{- if .Values.k8sServiceHost }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.k8sServiceHost | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ .Values.k8sServicePort | default 443 | quote }}
{{- end }}
{{- end -}}

{{/* Rolls the pods when the settings change (env from a ConfigMap is read only at container start). */}}
{{- define "skein.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}
