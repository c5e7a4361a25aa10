// Package helm holds the tests of the Helm chart in fish-classifier/: lint,
// rendering of each values profile (fish-classifier/ci), validation of every
// rendered object against the Kubernetes and custom-resource schemas (offline,
// scripts/chart-tools.sh installs them), what each profile must contain, and
// that the chart's copies of the monitoring rules and dashboards and its
// gateway configuration keep up with the repository's.
package helm
