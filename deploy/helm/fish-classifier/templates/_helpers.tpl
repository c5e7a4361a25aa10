{{/* The chart's name, and the prefix of every object's name. */}}
{{- define "fc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "fc.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "fc.gateway.fullname" -}}{{ include "fc.fullname" . | trunc 55 | trimSuffix "-" }}-gateway{{- end -}}
{{- define "fc.triton.fullname" -}}{{ include "fc.fullname" . | trunc 56 | trimSuffix "-" }}-triton{{- end -}}
{{- define "fc.jaeger.fullname" -}}{{ include "fc.fullname" . | trunc 56 | trimSuffix "-" }}-jaeger{{- end -}}

{{/*
Whether the chart deploys its own Jaeger: tracing on, tracing.jaeger.deploy,
and no collector of the user's (tracing.endpoint). Setting both, or neither,
is refused: the spans would go somewhere the values do not say.
*/}}
{{- define "fc.tracing.deployJaeger" -}}
{{- $t := .Values.tracing -}}
{{- if $t.enabled -}}
{{- if and $t.endpoint $t.jaeger.deploy -}}
{{- fail "tracing.endpoint is set: set tracing.jaeger.deploy=false too (the chart's Jaeger would receive nothing)" -}}
{{- else if and (not $t.endpoint) (not $t.jaeger.deploy) -}}
{{- fail "tracing.enabled with tracing.jaeger.deploy=false needs tracing.endpoint (a collector's OTLP/HTTP URL)" -}}
{{- else if $t.jaeger.deploy -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* The OTLP/HTTP base URL both the gateway and Triton export to. */}}
{{- define "fc.tracing.endpoint" -}}
{{- if include "fc.tracing.deployJaeger" . -}}
http://{{ include "fc.jaeger.fullname" . }}.{{ .Release.Namespace }}.svc:4318
{{- else -}}
{{- .Values.tracing.endpoint | trimSuffix "/" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; component is "gateway" or "triton". */}}
{{- define "fc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "fc.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: {{ .component }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "fc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fc.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The component whose pods run the gateway: its own, or Triton's in sidecar mode. */}}
{{- define "fc.gateway.podComponent" -}}
{{- if .Values.sidecar.enabled -}}triton{{- else -}}gateway{{- end -}}
{{- end -}}

{{- define "fc.gateway.image" -}}
{{ .Values.gateway.image.repository }}:{{ .Values.gateway.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "fc.triton.image" -}}
{{ .Values.triton.image.repository }}:{{ .Values.triton.image.tag }}
{{- end -}}

{{/*
The gateway container, shared by its Deployment and, in sidecar mode, Triton's
pod. Every non-empty gateway.config entry becomes an environment variable; the
chart supplies BACKEND, TRITON_URL and MODEL_NAME unless given, with
tracing.enabled the OTEL_* variables of tracing.* unless given, and always
GATEWAY_LISTEN_ADDR and SHUTDOWN_TIMEOUT.
*/}}
{{- define "fc.gateway.container" -}}
{{- $cfg := .Values.gateway.config -}}
{{- if $cfg.GATEWAY_LISTEN_ADDR }}{{ fail "gateway.config.GATEWAY_LISTEN_ADDR: set gateway.port instead" }}{{ end -}}
{{- if $cfg.SHUTDOWN_TIMEOUT }}{{ fail "gateway.config.SHUTDOWN_TIMEOUT: set gateway.shutdownTimeoutSeconds instead" }}{{ end -}}
{{- $env := dict -}}
{{- range $k, $v := $cfg -}}
{{- if ne (toString $v) "" }}{{ $_ := set $env $k (toString $v) }}{{ end -}}
{{- end -}}
{{- if not (hasKey $env "BACKEND") }}{{ $_ := set $env "BACKEND" "triton" }}{{ end -}}
{{- if not (hasKey $env "MODEL_NAME") }}{{ $_ := set $env "MODEL_NAME" .Values.triton.model.name }}{{ end -}}
{{- if not (hasKey $env "TRITON_URL") -}}
{{- if .Values.sidecar.enabled -}}
{{- $_ := set $env "TRITON_URL" (printf "localhost:%v" .Values.triton.ports.grpc) -}}
{{- else -}}
{{- $_ := set $env "TRITON_URL" (printf "dns:///%s.%s.svc:%v" (include "fc.triton.fullname" .) .Release.Namespace .Values.triton.ports.grpc) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.sidecar.enabled (not (hasKey $env "TRITON_SHARED_MEMORY")) -}}
{{- $_ := set $env "TRITON_SHARED_MEMORY" .Values.sidecar.sharedMemory -}}
{{- end -}}
{{- if .Values.tracing.enabled -}}
{{- $t := .Values.tracing -}}
{{- $otel := dict "OTEL_EXPORTER_OTLP_ENDPOINT" (include "fc.tracing.endpoint" .) "OTEL_SERVICE_NAME" $t.serviceName "OTEL_TRACES_SAMPLER" $t.sampler "OTEL_TRACES_SAMPLER_ARG" $t.samplerArg "OTEL_RESOURCE_ATTRIBUTES" $t.resourceAttributes -}}
{{- range $k, $v := $otel -}}
{{- if and (ne (toString $v) "") (not (hasKey $env $k)) }}{{ $_ := set $env $k (toString $v) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $_ := set $env "GATEWAY_LISTEN_ADDR" (printf ":%v" .Values.gateway.port) -}}
{{- $_ := set $env "SHUTDOWN_TIMEOUT" (printf "%vs" .Values.gateway.shutdownTimeoutSeconds) -}}
name: gateway
image: {{ include "fc.gateway.image" . }}
imagePullPolicy: {{ .Values.gateway.image.pullPolicy }}
ports:
  - name: http
    containerPort: {{ .Values.gateway.port }}
    protocol: TCP
env:
{{- range $k := keys $env | sortAlpha }}
  - name: {{ $k }}
    value: {{ get $env $k | quote }}
{{- end }}
# /health: the process serves (a stuck process is restarted); /ready: a backend
# can serve the model (with FALLBACK=onnx, either one), else the pod leaves the
# Service's endpoints without being restarted.
startupProbe:
  httpGet: {path: /health, port: http}
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet: {path: /health, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /ready, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
lifecycle:
  preStop:
    exec:
      command: ["sleep", "{{ .Values.gateway.preStopSleepSeconds }}"]
resources:
  {{- toYaml .Values.gateway.resources | nindent 2 }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
volumeMounts:
  - name: gateway-tmp
    mountPath: /tmp
{{- if and .Values.sidecar.enabled (eq (get $env "TRITON_SHARED_MEMORY") "system") }}
  - name: dshm
    mountPath: /dev/shm
{{- end }}
{{- end -}}

{{/* The gateway pod's grace period: the pre-stop wait, the drain, a margin. */}}
{{- define "fc.gateway.grace" -}}
{{- add .Values.gateway.preStopSleepSeconds .Values.gateway.shutdownTimeoutSeconds .Values.gateway.terminationGraceExtraSeconds -}}
{{- end -}}
