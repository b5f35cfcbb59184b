package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/gateway"
)

// helmBin returns the helm binary: $MANDATE_HELM_BIN or <repo>/.tools/bin/helm.
// Missing, the test skips, or fails when MANDATE_E2E=1.
func helmBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("MANDATE_HELM_BIN")
	if p == "" {
		p = filepath.Join(repoRoot(t), ".tools", "bin", "helm")
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		msg := "helm not found at " + p + ": run deploy/tools/build-helm.sh (or set MANDATE_HELM_BIN)"
		if e2eRequired() {
			t.Fatal(msg + " [MANDATE_E2E=1]")
		}
		t.Skip(msg)
	}
	return p
}

func chartDir(t *testing.T) string { return filepath.Join(repoRoot(t), "deploy", "helm", "mandate") }

// runHelm runs helm with a private HOME/config so no user state leaks in.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CACHE_HOME="+home+"/cache",
		"HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// valueSets are the chart configurations the tests render; file is the
// content of an extra -f values file ("" for none). peer is the expected
// peer routing: the Secret and key of the peer secret, and whether pod IPs
// are IPv6 (zero: peer routing off).
var valueSets = []struct {
	name string
	set  string
	file string
	peer peerWant
}{
	{name: "defaults"},
	{name: "stateful-ingress", set: "sessionMode=stateful,ingress.enabled=true,peerRouting.secret.name=mandate-peer," +
		"networkPolicy.httpFrom[0].namespaceSelector.matchLabels.team=ingress",
		peer: peerWant{secret: "mandate-peer", key: "peer-secret"}},
	{name: "stateful-hpa-ipv6", set: "sessionMode=stateful,replicaCount=1,autoscaling.enabled=true,ingress.enabled=true," +
		"peerRouting.secret.name=gw-peer,peerRouting.secret.key=secret,peerRouting.ipFamily=IPv6",
		peer: peerWant{secret: "gw-peer", key: "secret", ipv6: true}},
	{name: "stateful-one-pod", set: "sessionMode=stateful,replicaCount=1,peerRouting.enabled=false,ingress.enabled=true"},
	{name: "stateless-all", set: "sessionMode=stateless,autoscaling.enabled=true,serviceMonitor.enabled=true,ingress.enabled=true," +
		"networkPolicy.adminFrom[0].namespaceSelector.matchLabels.team=monitoring,networkPolicy.adminFrom[0].podSelector.matchLabels.app=prometheus," +
		"networkPolicy.httpFrom[0].namespaceSelector.matchLabels.team=ingress"},
	{name: "no-networkpolicy", set: "networkPolicy.enabled=false"},
	{name: "secrets-audit-file", file: `
sessionMode: stateful
replicaCount: 1
audit:
  sink: file
  volume:
    existingClaim: mandate-audit
secretEnv:
  - name: CRM_CLIENT_SECRET
    secretName: mandate-credentials
    key: crm-client-secret
  - name: SF_CONSUMER_KEY
    secretName: mandate-credentials
    key: sf-consumer-key
secretMounts:
  - name: salesforce-key
    secretName: mandate-salesforce-jwt
    mountPath: /run/secrets/salesforce
extraEnv:
  - name: OTEL_EXPORTER_OTLP_ENDPOINT
    value: http://otel-collector.observability:4318
config:
  server:
    public_url: https://mcp.acme.test
  identity:
    issuer: https://login.acme.test/
  upstreams:
    - name: crm
      kind: mcp
      url: https://crm.internal/mcp
      credentials:
        flow: token_exchange
        token_url: https://login.acme.test/oauth/token
        client_id: mandate
        client_secret: ${CRM_CLIENT_SECRET}
        audience: https://crm.internal
    - name: salesforce
      kind: salesforce
      url: https://acme.my.salesforce.com
      credentials:
        flow: jwt_bearer
        token_url: https://login.salesforce.com/services/oauth2/token
        client_id: ${SF_CONSUMER_KEY}
        private_key_file: /run/secrets/salesforce/tls.key
        assertion_audience: https://login.salesforce.com
        subject: "{{ .Email }}"
  policy:
    default: deny
    rules:
      - name: sales-use-salesforce
        effect: allow
        when: 'upstream == "salesforce" && "sales" in user.roles'
  telemetry:
    traces: otlp
`},
}

// peerWant is the peer routing a value set must render.
type peerWant struct {
	secret, key string // the Secret holding the peer secret ("": off)
	ipv6        bool   // pod IPs are IPv6: peer_url brackets ${POD_IP}
}

// Values the invariants test gives the environment variables the rendered
// config uses (others get "placeholder-<name>").
const (
	testPodIPv4      = "10.1.2.3"
	testPodIPv6      = "fd00::7"
	testPeerSecret   = "0123456789abcdef0123456789abcdef-peer" // >= 32 characters
	chartPeerSecret  = "${MANDATE_PEER_SECRET}"                // what the chart renders
	chartPeerURLIPv4 = "http://${POD_IP}:8080"
	chartPeerURLIPv6 = "http://[${POD_IP}]:8080"
)

// helmArgs returns the value flags of a value set.
func helmArgs(t *testing.T, set, file string) []string {
	var args []string
	if set != "" {
		args = append(args, "--set", set)
	}
	if file != "" {
		p := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-f", p)
	}
	return args
}

func TestHelmLint(t *testing.T) {
	t.Parallel()
	helmBin(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, err := runHelm(t, append([]string{"lint", "--strict", chartDir(t)}, helmArgs(t, vs.set, vs.file)...)...)
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, out, errOut)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint output lacks \"0 chart(s) failed\":\n%s", out)
			}
		})
	}
}

// Kubernetes object subsets the invariants look at.
type (
	object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name        string            `yaml:"name"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		raw map[string]any
	}
	secCtx struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		Env []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
				FieldRef     *struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		EnvFrom         []any  `yaml:"envFrom"`
		SecurityContext secCtx `yaml:"securityContext"`
		LivenessProbe   *probe `yaml:"livenessProbe"`
		ReadinessProbe  *probe `yaml:"readinessProbe"`
		Resources       struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
			SubPath   string `yaml:"subPath"`
		} `yaml:"volumeMounts"`
	}
	volume struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		EmptyDir              map[string]any `yaml:"emptyDir"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	}
	deployment struct {
		Spec struct {
			Replicas *int `yaml:"replicas"`
			Template struct {
				Spec struct {
					SecurityContext              secCtx      `yaml:"securityContext"`
					AutomountServiceAccountToken *bool       `yaml:"automountServiceAccountToken"`
					Containers                   []container `yaml:"containers"`
					Volumes                      []volume    `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
)

// render runs helm template and decodes every document.
func render(t *testing.T, set, file string) []object {
	t.Helper()
	args := append([]string{"template", "mandate", chartDir(t), "--namespace", "mcp"}, helmArgs(t, set, file)...)
	out, errOut, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding rendered manifests: %v\n%s", err, out)
		}
		if n.Kind == 0 || len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null" {
			continue
		}
		var o object
		if err := n.Decode(&o); err != nil {
			t.Fatal(err)
		}
		if err := n.Decode(&o.raw); err != nil {
			t.Fatal(err)
		}
		if o.Kind == "" {
			continue
		}
		objs = append(objs, o)
	}
	return objs
}

func byKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// as re-decodes an object into a typed subset.
func as[T any](t *testing.T, o object) T {
	t.Helper()
	b, err := yaml.Marshal(o.raw)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
	return v
}

func one(t *testing.T, objs []object, kind string) object {
	t.Helper()
	k := byKind(objs, kind)
	if len(k) != 1 {
		t.Fatalf("want one %s, got %d", kind, len(k))
	}
	return k[0]
}

func dig(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

const hashAnnotation = "nginx.ingress.kubernetes.io/upstream-hash-by"

func TestHelmTemplateInvariants(t *testing.T) {
	t.Parallel()
	helmBin(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, vs.set, vs.file)
			set := map[string]string{}
			if vs.set != "" {
				for _, kv := range strings.Split(vs.set, ",") {
					k, v, _ := strings.Cut(kv, "=")
					set[k] = v
				}
			}
			var fileVals map[string]any
			if err := yaml.Unmarshal([]byte(vs.file), &fileVals); err != nil {
				t.Fatal(err)
			}
			mode := "stateless" // the chart's default
			if m := set["sessionMode"]; m != "" {
				mode = m
			} else if m, ok := fileVals["sessionMode"].(string); ok {
				mode = m
			}

			dep := as[deployment](t, one(t, objs, "Deployment"))
			ps := dep.Spec.Template.Spec
			if ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			if u := ps.SecurityContext.RunAsUser; u == nil || *u != 65532 {
				t.Errorf("pod securityContext.runAsUser = %v, want 65532 (the image's USER)", u)
			}
			if ps.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
				t.Errorf("pod seccompProfile %q, want RuntimeDefault", ps.SecurityContext.SeccompProfile.Type)
			}
			if a := ps.AutomountServiceAccountToken; a == nil || *a {
				t.Error("automountServiceAccountToken is not false (Mandate does not call the Kubernetes API)")
			}
			if len(ps.Containers) != 1 {
				t.Fatalf("want one container, got %d", len(ps.Containers))
			}
			c := ps.Containers[0]
			sc := c.SecurityContext
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("container readOnlyRootFilesystem is not true")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Error("container allowPrivilegeEscalation is not false")
			}
			if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("container capabilities drop=%v add=%v, want drop [ALL], no add", sc.Capabilities.Drop, sc.Capabilities.Add)
			}
			if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Error("container runAsNonRoot is not true")
			}
			for name, p := range map[string]struct {
				pr   *probe
				path string
			}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
				if p.pr == nil || p.pr.HTTPGet == nil || p.pr.HTTPGet.Path != p.path || p.pr.HTTPGet.Port != "http" {
					t.Errorf("%s probe %+v: want httpGet %s on port http", name, p.pr, p.path)
				}
			}
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
					t.Errorf("resources %s: requests %q limits %q, want both set", r, c.Resources.Requests[r], c.Resources.Limits[r])
				}
			}
			if !slices.Equal(c.Args, []string{"serve", "--config", "/etc/mandate/config.yaml"}) {
				t.Errorf("args %v, want serve --config /etc/mandate/config.yaml", c.Args)
			}
			if len(c.Ports) != 2 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 ||
				c.Ports[1].Name != "admin" || c.Ports[1].ContainerPort != 9090 {
				t.Errorf("ports %+v, want http 8080 and admin 9090", c.Ports)
			}
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m.MountPath
				if m.SubPath != "" {
					t.Errorf("volumeMount %s uses subPath: ConfigMap/Secret updates would not reach the pod", m.Name)
				}
			}
			vols := map[string]volume{}
			for _, v := range ps.Volumes {
				vols[v.Name] = v
			}
			if mounts["config"] != "/etc/mandate" || vols["config"].ConfigMap == nil {
				t.Errorf("config volume %+v mounted at %q: want the ConfigMap at /etc/mandate", vols["config"], mounts["config"])
			}

			// The ConfigMap's config.yaml is valid for the gateway, and every
			// ${VAR} it uses is set in the container (unless envFrom is used).
			cm := one(t, objs, "ConfigMap")
			data, _ := dig(cm.raw, "data", "config.yaml").(string)
			if data == "" {
				t.Fatal("ConfigMap has no data.config.yaml")
			}
			env := map[string]bool{}
			for _, e := range c.Env {
				env[e.Name] = true
			}
			// Every *_file key must name a file in a mounted Secret. The
			// gateway stats those files, so the test recreates each Secret
			// mount as a temporary directory holding the named files.
			secretDirs := map[string]string{} // mountPath -> temp dir
			for _, m := range c.VolumeMounts {
				if vols[m.Name].Secret != nil {
					secretDirs[m.MountPath] = t.TempDir()
				}
			}
			for _, m := range regexp.MustCompile(`(?m)^\s*-?\s*([a-z_]+_file):\s*(\S+)\s*$`).FindAllStringSubmatch(data, -1) {
				key, path := m[1], strings.Trim(m[2], `"'`)
				var local string
				for mp, dir := range secretDirs {
					if rest, ok := strings.CutPrefix(path, mp+"/"); ok {
						local = filepath.Join(dir, rest)
					}
				}
				if local == "" {
					t.Errorf("config %s: %s is not in a mounted Secret (secretMounts)", key, path)
					continue
				}
				if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(local, []byte("placeholder"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for mp, dir := range secretDirs {
				data = strings.ReplaceAll(data, mp+"/", dir+"/")
			}
			var used []string
			podIP := testPodIPv4
			if vs.peer.ipv6 {
				podIP = testPodIPv6
			}
			cfg, err := gateway.ParseConfig("config.yaml", []byte(data), func(name string) (string, bool) {
				used = append(used, name)
				switch name {
				case "POD_IP":
					return podIP, true
				case "MANDATE_PEER_SECRET":
					return testPeerSecret, true
				}
				return "placeholder-" + strings.ToLower(name), true
			})
			if err != nil {
				t.Fatalf("gateway.ParseConfig rejects the rendered config.yaml: %v\n%s", err, data)
			}
			for _, v := range used {
				if !env[v] && len(c.EnvFrom) == 0 {
					t.Errorf("config.yaml uses ${%s}, which the container does not set", v)
				}
			}
			if cfg.Server.Session.Mode != mode {
				t.Errorf("config server.session.mode = %q, want %q (sessionMode)", cfg.Server.Session.Mode, mode)
			}
			if cfg.Server.Listen != ":8080" {
				t.Errorf("config server.listen = %q, want :8080 (containerPort, all interfaces)", cfg.Server.Listen)
			}
			if cfg.Server.AdminListen != ":9090" {
				t.Errorf("config server.admin_listen = %q, want :9090 (adminPort: /admin/ and /metrics off the http port)", cfg.Server.AdminListen)
			}
			if cfg.Audit.Sink == "file" {
				if !strings.HasPrefix(cfg.Audit.Path, mounts["audit"]+"/placeholder-pod_name") || mounts["audit"] == "" {
					t.Errorf("audit path %q (POD_NAME expanded) is not a per-pod file under the audit mount %q", cfg.Audit.Path, mounts["audit"])
				}
				if v := vols["audit"]; v.PersistentVolumeClaim == nil && v.EmptyDir == nil {
					t.Errorf("audit volume %+v: want a PVC or an emptyDir", v)
				}
			} else if _, ok := mounts["audit"]; ok {
				t.Error("audit volume mounted while audit.sink is stdout")
			}

			// Peer routing: server.session.peer_url is this pod's IP (from
			// the downward API) and the container port; peer_secret comes
			// from the named Secret.
			rawSession, _ := dig(mustYAML(t, data), "server", "session").(map[string]any)
			envByName := map[string]int{}
			for i, e := range c.Env {
				envByName[e.Name] = i
			}
			if vs.peer.secret != "" {
				wantURL, wantExpanded := chartPeerURLIPv4, "http://"+podIP+":8080"
				if vs.peer.ipv6 {
					wantURL, wantExpanded = chartPeerURLIPv6, "http://["+podIP+"]:8080"
				}
				if rawSession["peer_url"] != wantURL || rawSession["peer_secret"] != chartPeerSecret {
					t.Errorf("config server.session peer_url %q peer_secret %q, want %q and %q",
						rawSession["peer_url"], rawSession["peer_secret"], wantURL, chartPeerSecret)
				}
				if cfg.Server.Session.PeerURL != wantExpanded || cfg.Server.Session.PeerSecret.Reveal() != testPeerSecret {
					t.Errorf("parsed peer_url %q (secret set: %v), want %q and the Secret's value",
						cfg.Server.Session.PeerURL, cfg.Server.Session.PeerSecret.Reveal() == testPeerSecret, wantExpanded)
				}
				if i, ok := envByName["POD_IP"]; !ok || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil ||
					c.Env[i].ValueFrom.FieldRef.FieldPath != "status.podIP" {
					t.Errorf("env POD_IP: want valueFrom.fieldRef status.podIP (have it: %v)", ok)
				}
				if i, ok := envByName["MANDATE_PEER_SECRET"]; !ok || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.SecretKeyRef == nil ||
					*c.Env[i].ValueFrom.SecretKeyRef != (struct{ Name, Key string }{vs.peer.secret, vs.peer.key}) {
					t.Errorf("env MANDATE_PEER_SECRET: want secretKeyRef %s/%s (have it: %v)", vs.peer.secret, vs.peer.key, ok)
				}
			} else {
				if _, ok := rawSession["peer_url"]; ok || cfg.Server.Session.PeerURL != "" || !cfg.Server.Session.PeerSecret.IsZero() {
					t.Errorf("config has peer routing (peer_url %v) while it should be off", rawSession["peer_url"])
				}
				for _, n := range []string{"POD_IP", "MANDATE_PEER_SECRET"} {
					if _, ok := envByName[n]; ok {
						t.Errorf("env %s set while peer routing is off", n)
					}
				}
			}

			// Secrets: env from secretKeyRef and files from Secret volumes.
			for _, se := range asList(fileVals["secretEnv"]) {
				name := se["name"].(string)
				found := false
				for _, e := range c.Env {
					if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
						e.ValueFrom.SecretKeyRef.Name == se["secretName"] && e.ValueFrom.SecretKeyRef.Key == se["key"] {
						found = true
					}
				}
				if !found {
					t.Errorf("env %s from secret %v/%v missing", name, se["secretName"], se["key"])
				}
			}
			for _, sm := range asList(fileVals["secretMounts"]) {
				name := sm["name"].(string)
				if v := vols[name]; v.Secret == nil || v.Secret.SecretName != sm["secretName"] {
					t.Errorf("volume %s: want Secret %v, got %+v", name, sm["secretName"], v)
				}
				ro := false
				for _, m := range c.VolumeMounts {
					if m.Name == name && m.MountPath == sm["mountPath"] {
						ro = m.ReadOnly
					}
				}
				if !ro {
					t.Errorf("secret %s not mounted read-only at %v", name, sm["mountPath"])
				}
			}

			// NetworkPolicy: /admin/ and /metrics are on the admin port
			// (above), which admits networkPolicy.adminFrom only — by default
			// no pod; the http port is open, or open to httpFrom and, with
			// peer routing, to the chart's own pods.
			nps := byKind(objs, "NetworkPolicy")
			if set["networkPolicy.enabled"] == "false" {
				if len(nps) != 0 {
					t.Error("NetworkPolicy rendered while disabled")
				}
			} else {
				np := one(t, objs, "NetworkPolicy")
				selector := dig(one(t, objs, "Deployment").raw, "spec", "selector", "matchLabels")
				if sel := dig(np.raw, "spec", "podSelector", "matchLabels"); !reflect.DeepEqual(sel, selector) || selector == nil {
					t.Errorf("NetworkPolicy podSelector %v, want the Deployment's selector %v", sel, selector)
				}
				if pt := dig(np.raw, "spec", "policyTypes"); !reflect.DeepEqual(pt, []any{"Ingress"}) {
					t.Errorf("NetworkPolicy policyTypes %v, want [Ingress]", pt)
				}
				var adminPeers, httpPeers []any
				httpOpen := false
				rules, _ := dig(np.raw, "spec", "ingress").([]any)
				for _, r := range rules {
					ports, _ := dig(r, "ports").([]any)
					from, hasFrom := dig(r, "from").([]any)
					if len(ports) == 0 {
						t.Errorf("NetworkPolicy rule %v admits every port (the admin port too)", r)
					}
					for _, p := range ports {
						switch port := dig(p, "port"); port {
						case "http", 8080:
							if hasFrom {
								httpPeers = append(httpPeers, from...)
							} else {
								httpOpen = true
							}
						case "admin", 9090:
							if len(from) == 0 {
								t.Errorf("NetworkPolicy rule %v opens the admin port (/admin/, /metrics) to every source", r)
							}
							adminPeers = append(adminPeers, from...)
						default:
							t.Errorf("NetworkPolicy rule admits port %v", port)
						}
					}
				}
				if want := listFromSet(set, "networkPolicy.adminFrom"); !reflect.DeepEqual(adminPeers, want) {
					t.Errorf("admin port admits %v, want exactly networkPolicy.adminFrom %v (none: no pod)", adminPeers, want)
				}
				wantHTTP := listFromSet(set, "networkPolicy.httpFrom")
				if wantHTTP != nil && vs.peer.secret != "" {
					wantHTTP = append(wantHTTP, map[string]any{"podSelector": map[string]any{"matchLabels": selector}})
				}
				if httpOpen != (wantHTTP == nil) || !reflect.DeepEqual(httpPeers, wantHTTP) {
					t.Errorf("http port: open to all %v, admits %v; want open to all %v, admits %v", httpOpen, httpPeers, wantHTTP == nil, wantHTTP)
				}
			}

			// Service, PDB, HPA, ServiceMonitor, Ingress.
			svc := one(t, objs, "Service")
			if dig(svc.raw, "spec", "sessionAffinity") != "None" {
				t.Errorf("Service sessionAffinity %v, want None", dig(svc.raw, "spec", "sessionAffinity"))
			}
			var svcPorts []string
			for _, p := range dig(svc.raw, "spec", "ports").([]any) {
				svcPorts = append(svcPorts, fmt.Sprintf("%v:%v", dig(p, "name"), dig(p, "targetPort")))
			}
			wantSvc := []string{"http:http"}
			if set["serviceMonitor.enabled"] == "true" {
				wantSvc = append(wantSvc, "admin:admin") // for the ServiceMonitor
			}
			if !slices.Equal(svcPorts, wantSvc) {
				t.Errorf("Service ports %v, want %v", svcPorts, wantSvc)
			}
			pdb := one(t, objs, "PodDisruptionBudget")
			if pdb.APIVersion != "policy/v1" {
				t.Errorf("PDB apiVersion %s", pdb.APIVersion)
			}
			hpas := byKind(objs, "HorizontalPodAutoscaler")
			if set["autoscaling.enabled"] == "true" {
				if len(hpas) != 1 || hpas[0].APIVersion != "autoscaling/v2" {
					t.Errorf("want one autoscaling/v2 HPA, got %d", len(hpas))
				}
				if dep.Spec.Replicas != nil {
					t.Error("Deployment sets replicas while the HPA owns them")
				}
			} else if len(hpas) != 0 {
				t.Error("HPA rendered while autoscaling is disabled")
			}
			sms := byKind(objs, "ServiceMonitor")
			if set["serviceMonitor.enabled"] == "true" {
				if len(sms) != 1 || sms[0].APIVersion != "monitoring.coreos.com/v1" {
					t.Fatalf("want one monitoring.coreos.com/v1 ServiceMonitor, got %d", len(sms))
				}
				ep, _ := dig(sms[0].raw, "spec", "endpoints").([]any)
				if len(ep) != 1 || dig(ep[0], "path") != "/metrics" || dig(ep[0], "port") != "admin" {
					t.Errorf("ServiceMonitor endpoints %v, want /metrics on port admin", ep)
				}
			} else if len(sms) != 0 {
				t.Error("ServiceMonitor rendered while disabled")
			}
			ings := byKind(objs, "Ingress")
			if set["ingress.enabled"] != "true" {
				if len(ings) != 0 {
					t.Error("Ingress rendered while disabled")
				}
				return
			}
			if len(ings) != 1 {
				t.Fatalf("want one Ingress, got %d", len(ings))
			}
			ing := ings[0]
			// No affinity in either mode: stateless needs none, stateful
			// runs one pod or peer routing.
			if hash, has := ing.Metadata.Annotations[hashAnnotation]; has {
				t.Errorf("%s ingress has %s = %q: want no affinity", mode, hashAnnotation, hash)
			}
			for k := range ing.Metadata.Annotations {
				if strings.Contains(k, "affinity") || strings.Contains(k, "session-cookie") {
					t.Errorf("%s ingress has affinity annotation %s", mode, k)
				}
			}
			if ing.Metadata.Annotations["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
				t.Error("ingress does not turn proxy buffering off (SSE responses would stall)")
			}
			var paths []string
			rules, _ := dig(ing.raw, "spec", "rules").([]any)
			for _, r := range rules {
				ps, _ := dig(r, "http", "paths").([]any)
				for _, p := range ps {
					paths = append(paths, dig(p, "path").(string))
				}
			}
			slices.Sort(paths)
			if want := []string{"/.well-known/oauth-protected-resource", "/mcp"}; !slices.Equal(paths, want) {
				t.Errorf("ingress paths %v, want %v (no /metrics, /admin, probes outside)", paths, want)
			}
		})
	}
}

// listFromSet rebuilds the list a --set gave as prefix[i].a.b=v (nil when
// none; keys without escaped dots).
func listFromSet(set map[string]string, prefix string) []any {
	var out []any
	for i := 0; ; i++ {
		item := map[string]any{}
		for k, v := range set {
			rest, ok := strings.CutPrefix(k, fmt.Sprintf("%s[%d].", prefix, i))
			if !ok {
				continue
			}
			cur := item
			parts := strings.Split(rest, ".")
			for _, part := range parts[:len(parts)-1] {
				next, _ := cur[part].(map[string]any)
				if next == nil {
					next = map[string]any{}
					cur[part] = next
				}
				cur = next
			}
			cur[parts[len(parts)-1]] = v
		}
		if len(item) == 0 {
			return out
		}
		out = append(out, item)
	}
}

// mustYAML decodes a YAML document into a generic value.
func mustYAML(t *testing.T, data string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	return v
}

func asList(v any) []map[string]any {
	l, _ := v.([]any)
	var out []map[string]any
	for _, e := range l {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestHelmTemplateRejects checks that inconsistent values fail to render
// with a message naming the problem.
func TestHelmTemplateRejects(t *testing.T) {
	t.Parallel()
	helmBin(t)
	for _, tc := range []struct {
		set, want string
	}{
		{"sessionMode=sticky", "value must be one of 'stateful', 'stateless'"}, // values.schema.json
		{"sesionMode=stateful", "additional properties 'sesionMode' not allowed"},
		{"audit.volume.mountPath=relative", "/audit/volume/mountPath"},
		{"config.server.listen=0.0.0.0:9000", "config.server.listen is set by the chart"},
		{"config.server.session.mode=stateful", "config.server.session.mode is set by the chart"},
		{"config.audit.sink=file", "config.audit is set by the chart"},
		{"audit.sink=syslog", "value must be one of 'stdout', 'file'"},
		{`ingress.enabled=true,sessionMode=stateless,ingress.annotations.nginx\.ingress\.kubernetes\.io/upstream-hash-by=x`, "needs no session affinity"},
		{`ingress.enabled=true,sessionMode=stateful,peerRouting.secret.name=p,ingress.annotations.nginx\.ingress\.kubernetes\.io/upstream-hash-by=$http_mcp_session_id`,
			"sessionMode stateful needs no session affinity"},
		{`ingress.enabled=true,sessionMode=stateful,replicaCount=1,ingress.annotations.nginx\.ingress\.kubernetes\.io/affinity=cookie`,
			"sessionMode stateful needs no session affinity"},
		// Stateful mode with more than one pod: peer routing, or no render.
		{"sessionMode=stateful,replicaCount=2,peerRouting.enabled=false", "sessionMode stateful with more than one pod (replicaCount 2) needs peerRouting.enabled=true"},
		{"sessionMode=stateful,replicaCount=1,autoscaling.enabled=true,peerRouting.enabled=false",
			"sessionMode stateful with more than one pod (autoscaling.maxReplicas 10) needs peerRouting.enabled=true"},
		{"sessionMode=stateful,replicaCount=3", "peerRouting.secret.name is required"},
		{"sessionMode=stateful,peerRouting.secret.name=p,peerRouting.secret.key=", "/peerRouting/secret/key"},
		{"sessionMode=stateful,peerRouting.secret.name=p,peerRouting.ipFamily=IPv5", "value must be one of 'IPv4', 'IPv6'"},
		{"sessionMode=stateful,peerRouting.secret.name=p,extraEnv[0].name=POD_IP,extraEnv[0].value=1.2.3.4", "env POD_IP is set by the chart"},
		{"config.server.session.peer_url=http://10.0.0.1:8080", "config.server.session.peer_url is set by the chart"},
		{"config.server.session.peer_secret=x", "config.server.session.peer_secret is set by the chart"},
		{"serviceMonitor.enabled=true,config.telemetry.metrics=none", "serviceMonitor.enabled needs config.telemetry.metrics: prometheus"},
		{"serviceMonitor.enabled=true", "list Prometheus in networkPolicy.adminFrom"},
		{"config.server.admin_listen=:9000", "config.server.admin_listen is set by the chart"},
		{"adminPort=8080", "adminPort (8080) must differ from containerPort"},
		{"networkPolicy.enabled=true,networkPolicy.adminFrom=x", "/networkPolicy/adminFrom"},
		{"podDisruptionBudget.minAvailable=1", "not both"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			t.Parallel()
			_, errOut, err := runHelm(t, "template", "mandate", chartDir(t), "--set", tc.set)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded; want an error containing %q", tc.set, tc.want)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("error %q does not contain %q", errOut, tc.want)
			}
		})
	}
}

// renderNotes renders the chart's release notes. helm template skips
// NOTES.txt (and install --dry-run needs a cluster), so the test copies the
// chart and adds a template that emits the "mandate.notes" definition that
// NOTES.txt includes.
func renderNotes(t *testing.T, set string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "mandate")
	if err := os.CopyFS(dst, os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	nt, err := os.ReadFile(filepath.Join(dst, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(nt)) != `{{ include "mandate.notes" . }}` {
		t.Fatalf("NOTES.txt is %q: want it to include mandate.notes only (the test renders that)", nt)
	}
	if err := os.WriteFile(filepath.Join(dst, "templates", "notes-test.yaml"), []byte(`notes: {{ include "mandate.notes" . | toJson }}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"template", "mandate", dst, "--show-only", "templates/notes-test.yaml"}
	if set != "" {
		args = append(args, "--set", set)
	}
	out, errOut, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	var v struct {
		Notes string `yaml:"notes"`
	}
	if err := yaml.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return v.Notes
}

func TestHelmNotes(t *testing.T) {
	t.Parallel()
	helmBin(t)
	const (
		peerOn          = "Peer routing:                            on"
		statefulEnds    = "a rollout, scale-down or\neviction ends that pod's sessions"
		placeholderWarn = "is still an example.com"
		hostWarn        = "is not the host of config.server.public_url"
	)
	real := "config.server.public_url=https://mcp.acme.test,config.identity.issuer=https://login.acme.test/"
	for _, tc := range []struct {
		name, set   string
		want, avoid []string
	}{
		{"defaults", "",
			[]string{"MCP endpoint (give this to AI clients):  https://mcp.example.com/mcp", "Session mode:                            stateless", placeholderWarn, "standard output"},
			[]string{peerOn, statefulEnds, hostWarn}},
		{"real urls", real,
			[]string{"https://mcp.acme.test/mcp"},
			[]string{placeholderWarn, peerOn}},
		{"stateful two replicas", real + ",sessionMode=stateful,replicaCount=2,peerRouting.secret.name=mandate-peer",
			[]string{peerOn, "peer secret from Secret mandate-peer, key peer-secret", statefulEnds}, nil},
		{"stateful autoscaled", real + ",sessionMode=stateful,replicaCount=1,autoscaling.enabled=true,peerRouting.secret.name=mandate-peer",
			[]string{peerOn, statefulEnds}, nil},
		{"stateful one replica", real + ",sessionMode=stateful,replicaCount=1",
			[]string{statefulEnds}, []string{peerOn}},
		{"ingress host matches", real + ",ingress.enabled=true,ingress.host=mcp.acme.test",
			[]string{"Ingress host:                            mcp.acme.test"}, []string{hostWarn}},
		{"ingress host differs", real + ",ingress.enabled=true,ingress.host=mcp.other.test",
			[]string{hostWarn}, nil},
		{"audit file on emptyDir", real + ",audit.sink=file",
			[]string{"/var/lib/mandate/<pod>.jsonl", "emptyDir: lost when the pod goes"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			notes := renderNotes(t, tc.set)
			for _, w := range tc.want {
				if !strings.Contains(notes, w) {
					t.Errorf("notes lack %q:\n%s", w, notes)
				}
			}
			for _, a := range tc.avoid {
				if strings.Contains(notes, a) {
					t.Errorf("notes contain %q:\n%s", a, notes)
				}
			}
		})
	}
}
