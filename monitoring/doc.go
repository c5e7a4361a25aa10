// Package monitoring holds no code of the gateway: it is the home of what
// Prometheus, Alertmanager and Grafana load (prometheus/, alertmanager/,
// grafana/), the runbook the alerts link to, the dashboard's generator
// (dashboard/) and the tests that run all of it against the real Prometheus,
// promtool, Alertmanager and amtool binaries (Debian's prometheus and
// prometheus-alertmanager packages; .ci/run installs them).
package monitoring
