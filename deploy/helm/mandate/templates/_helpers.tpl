{{/* Chart name. */}}
{{- define "mandate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (release-scoped). */}}
{{- define "mandate.fullname" -}}
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

{{- define "mandate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mandate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mandate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mandate.labels" -}}
helm.sh/chart: {{ include "mandate.chart" . }}
{{ include "mandate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "mandate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mandate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mandate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* Where config.yaml is mounted in the pod. */}}
{{- define "mandate.configDir" -}}/etc/mandate{{- end }}

{{/*
"true" when the pods run peer routing (server.session.peer_url/peer_secret),
else "": stateful mode with more than one pod (replicaCount > 1, or
autoscaling with maxReplicas > 1). Fails when such a setup has peer routing
turned off (sessions would break whenever a request reached another pod) or
no Secret for the peer secret.
*/}}
{{- define "mandate.peerRouting" -}}
{{- $pods := printf "replicaCount %d" (int .Values.replicaCount) }}
{{- $multi := gt (int .Values.replicaCount) 1 }}
{{- if .Values.autoscaling.enabled }}
{{- $pods = printf "autoscaling.maxReplicas %d" (int .Values.autoscaling.maxReplicas) }}
{{- $multi = gt (int .Values.autoscaling.maxReplicas) 1 }}
{{- end }}
{{- if and (eq .Values.sessionMode "stateful") $multi }}
{{- if not .Values.peerRouting.enabled }}
{{- fail (printf "sessionMode stateful with more than one pod (%s) needs peerRouting.enabled=true: a session lives in one pod, and without peer routing a request that reaches another pod fails with 404. Or run one pod (replicaCount: 1, autoscaling off), or use sessionMode: stateless (deploy/README.md)" $pods) }}
{{- end }}
{{- if not .Values.peerRouting.secret.name }}
{{- fail (printf "peerRouting.secret.name is required: sessionMode stateful with more than one pod (%s) uses peer routing, whose secret (at least 32 characters, the same for every pod) comes from an existing Secret: kubectl create secret generic mandate-peer --from-literal=%s=\"$(openssl rand -base64 48)\", then set peerRouting.secret.name=mandate-peer" $pods .Values.peerRouting.secret.key) }}
{{- end }}
{{- range concat (.Values.secretEnv | default list) (.Values.extraEnv | default list) }}
{{- if has .name (list "POD_IP" "MANDATE_PEER_SECRET") }}
{{- fail (printf "env %s is set by the chart for peer routing; remove it from secretEnv/extraEnv (use peerRouting.secret)" .name) }}
{{- end }}
{{- end }}
{{- print "true" }}
{{- end }}
{{- end }}

{{/*
The config.yaml Mandate runs with, as a dict: .Values.config plus the keys
the chart owns (server.listen, server.admin_listen, server.session.mode,
peer_url, peer_secret, audit). Setting an owned
key in .Values.config is an error, so that values and config cannot disagree.
*/}}
{{- define "mandate.configDict" -}}
{{- if not (has .Values.sessionMode (list "stateful" "stateless")) }}
{{- fail (printf "sessionMode must be stateful or stateless, got %q" (toString .Values.sessionMode)) }}
{{- end }}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $server := get $cfg "server" | default dict }}
{{- if hasKey $server "listen" }}
{{- fail "config.server.listen is set by the chart (\":<containerPort>\"); remove it and set containerPort" }}
{{- end }}
{{- if hasKey $server "admin_listen" }}
{{- fail "config.server.admin_listen is set by the chart (\":<adminPort>\"); remove it and set adminPort" }}
{{- end }}
{{- if eq (int .Values.adminPort) (int .Values.containerPort) }}
{{- fail (printf "adminPort (%d) must differ from containerPort: /admin/ and /metrics get a port of their own" (int .Values.adminPort)) }}
{{- end }}
{{- $session := get $server "session" | default dict }}
{{- if hasKey $session "mode" }}
{{- fail "config.server.session.mode is set by the chart; remove it and set sessionMode" }}
{{- end }}
{{- range list "peer_url" "peer_secret" }}
{{- if hasKey $session . }}
{{- fail (printf "config.server.session.%s is set by the chart; remove it and use the peerRouting values" .) }}
{{- end }}
{{- end }}
{{- if include "mandate.peerRouting" $ }}
{{- $host := "${POD_IP}" }}
{{- if eq .Values.peerRouting.ipFamily "IPv6" }}
{{- $host = "[${POD_IP}]" }}
{{- end }}
{{- $_ := set $session "peer_url" (printf "http://%s:%d" $host (int .Values.containerPort)) }}
{{- $_ := set $session "peer_secret" "${MANDATE_PEER_SECRET}" }}
{{- end }}
{{- if hasKey $cfg "audit" }}
{{- fail "config.audit is set by the chart; use the audit values (audit.sink, audit.fsync, audit.volume)" }}
{{- end }}
{{- $_ := set $session "mode" .Values.sessionMode }}
{{- $_ := set $server "session" $session }}
{{- $_ := set $server "listen" (printf ":%d" (int .Values.containerPort)) }}
{{- $_ := set $server "admin_listen" (printf ":%d" (int .Values.adminPort)) }}
{{- $_ := set $cfg "server" $server }}
{{- $audit := dict "sink" .Values.audit.sink }}
{{- if eq .Values.audit.sink "file" }}
{{- $_ := set $audit "path" (printf "%s/${POD_NAME}.jsonl" (.Values.audit.volume.mountPath | trimSuffix "/")) }}
{{- $_ := set $audit "fsync" .Values.audit.fsync }}
{{- if eq .Values.audit.fsync "interval" }}
{{- $_ := set $audit "fsync_interval" .Values.audit.fsync_interval }}
{{- end }}
{{- else if ne .Values.audit.sink "stdout" }}
{{- fail (printf "audit.sink must be stdout or file, got %q" (toString .Values.audit.sink)) }}
{{- end }}
{{- $_ := set $cfg "audit" $audit }}
{{- toYaml $cfg }}
{{- end }}

{{/* Checksum of the parts of config.yaml that need a restart to change. */}}
{{- define "mandate.restartChecksum" -}}
{{- $cfg := include "mandate.configDict" . | fromYaml }}
{{- pick $cfg "server" "identity" "audit" "telemetry" | toYaml | sha256sum }}
{{- end }}
