// Package monitoring holds no code of the gateway: it is the home of what
// Prometheus, Alertmanager and Grafana load (prometheus/, alertmanager/,
// grafana/), the runbook the alerts link to, the dashboard's generator
// (dashboard/) and the tests that run all of it against the real Prometheus,
// promtool, Alertmanager and amtool binaries (Debian's prometheus and
// prometheus-alertmanager packages; .ci/run installs them), and, in
// triton_e2e_test.go, the gateway and the dashboard against the real NVIDIA
// Triton Inference Server on the CPU (scripts/triton-ci.sh, triton-ci/).
package monitoring
