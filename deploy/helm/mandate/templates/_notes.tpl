{{/*
The release notes (NOTES.txt renders this; internal/testenv/deploytest renders it with
helm template, which skips NOTES.txt).
*/}}
{{- define "mandate.notes" -}}
{{- $cfg := include "mandate.configDict" . | fromYaml }}
{{- $publicURL := dig "server" "public_url" "" $cfg | toString | trimSuffix "/" }}
Mandate {{ .Values.image.tag | default .Chart.AppVersion }} is deployed as {{ include "mandate.fullname" . }} in namespace {{ .Release.Namespace }}.

MCP endpoint (give this to AI clients):  {{ $publicURL }}/mcp
Session mode:                            {{ .Values.sessionMode }}
{{- if include "mandate.peerRouting" . }}
Peer routing:                            on (any pod forwards a session's requests to the pod holding it;
                                         peer secret from Secret {{ .Values.peerRouting.secret.name }}, key {{ .Values.peerRouting.secret.key }})
{{- end }}
{{- if .Values.ingress.enabled }}
Ingress host:                            {{ .Values.ingress.host }} (class {{ .Values.ingress.className }}; exposes /mcp and /.well-known/oauth-protected-resource only)
{{- end }}

Check it from inside the cluster:
  kubectl -n {{ .Release.Namespace }} port-forward svc/{{ include "mandate.fullname" . }} 8080:{{ .Values.service.port }}
  curl -s localhost:8080/readyz
  curl -s localhost:8080/.well-known/oauth-protected-resource
{{- if eq .Values.audit.sink "file" }}

Audit: one hash-chained file per pod in {{ .Values.audit.volume.mountPath }}/<pod>.jsonl{{ if not .Values.audit.volume.existingClaim }} (emptyDir: lost when the pod goes; set audit.volume.existingClaim to keep it){{ end }}.
{{- else }}

Audit: JSON lines on each pod's standard output (kubectl logs); collect them with your log pipeline.
{{- end }}
{{- if or (contains "example.com" $publicURL) (contains "example.com" (dig "identity" "issuer" "" $cfg | toString)) }}

WARNING: config.server.public_url or config.identity.issuer is still an example.com
placeholder. Set them to your MCP URL and your IdP's issuer; until then /readyz
stays 503 and no token is accepted.
{{- end }}
{{- if and .Values.ingress.enabled (ne .Values.ingress.host (urlParse $publicURL).hostname) }}

WARNING: ingress.host ({{ .Values.ingress.host }}) is not the host of config.server.public_url
({{ $publicURL }}). Clients compare the protected-resource metadata's resource
with the URL they called, byte for byte.
{{- end }}
{{- if eq .Values.sessionMode "stateful" }}

Stateful sessions live in the pod that created them: a rollout, scale-down or
eviction ends that pod's sessions, and their clients start new ones.
{{- end }}
{{- end }}
