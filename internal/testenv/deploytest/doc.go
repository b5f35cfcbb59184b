// Package deploytest holds the tests of Mandate's deployment artifacts under
// deploy/: the Dockerfile, the Helm chart and the multi-replica behaviour the
// chart relies on. It has no non-test code besides this comment.
//
// What the tests check (go test ./internal/testenv/deploytest/):
//
//   - Dockerfile: parsed instruction by instruction; multi-stage, the build
//     stage's Go version matches go.mod, the final stage is distroless or
//     scratch with a numeric non-root USER, no remote ADD, no RUN in the final
//     stage, a HEALTHCHECK in exec form that calls `/mandate health` on the
//     EXPOSEd port, exec-form ENTRYPOINT.
//   - The build stage's `go build` command is taken from the Dockerfile
//     itself and run on this machine: the result must be a static ELF (no
//     PT_INTERP, no DT_NEEDED), stripped (-s -w), built with -trimpath, report
//     the -X version in `mandate version`, and `mandate health` must exit 0
//     on HTTP 200 and non-zero otherwise.
//   - Build context: Dockerfile.dockerignore applied to the repository; the
//     binary must build from what is left (the same go build line).
//   - Helm chart: `helm lint` and `helm template` for several value sets; the
//     rendered manifests are decoded and checked (non-root, read-only root
//     filesystem, dropped capabilities, seccomp, probes on /healthz and
//     /readyz, requests and limits, PDB, HPA, ServiceMonitor, no session
//     affinity on the ingress in either mode), and the rendered config.yaml
//     must be accepted by gateway.ParseConfig, what `mandate validate` runs
//     (every ${VAR} set in the container, every *_file in a mounted Secret).
//     Stateful mode with more than one pod renders peer routing: peer_url
//     http://${POD_IP}:<port> (POD_IP from status.podIP, brackets for IPv6)
//     and peer_secret ${MANDATE_PEER_SECRET} (from the named Secret).
//     Inconsistent values (chart-owned config keys, a typo, affinity
//     annotations, stateful mode with several pods and peer routing off or
//     without its Secret) fail to render with a message naming the fix. The
//     release notes warn about placeholders and host mismatch, and say
//     whether peer routing is on.
//   - Replicas: two `mandate serve` processes behind a loopback proxy, with
//     the real dev IdP. Stateless mode + round robin: every call succeeds and
//     both replicas serve. Stateful mode + round robin: calls fail on the
//     replica that does not hold the session. Stateful mode + a plain hash of
//     the Mcp-Session-Id header (ingress-nginx upstream-hash-by): a session
//     works only when its id happens to hash to the replica that created it.
//     Stateful mode + learned stickiness (the proxy records which replica
//     answered initialize with a session id): every call succeeds. Stateful
//     mode + peer routing configured as the chart renders it: every call
//     succeeds with round robin and with the header hash (which creates
//     every session on one replica, why the chart refuses it).
//
// Helm comes from deploy/tools/build-helm.sh (<repo>/.tools/bin/helm) or
// $MANDATE_HELM_BIN. Without it the helm tests skip, unless MANDATE_E2E=1,
// where they fail.
package deploytest
