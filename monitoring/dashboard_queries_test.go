package monitoring_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestDashboardQueriesExtractAndParse: every query of every provisioned
// dashboard comes out of dashboardFileQueries with Grafana's variables
// replaced, ready for a real Prometheus (the end-to-end tests ask them), and
// is valid PromQL: promtool parses each one as the expression of a recording
// rule. Runs without a server, so the MinIO and MySQL dashboards, whose
// servers the end-to-end test of the mlops profile brings, are checked here
// too.
func TestDashboardQueriesExtractAndParse(t *testing.T) {
	t.Parallel()
	var rules []map[string]any
	for _, file := range []string{mainDashboardFile, minioDashboardFile, mysqlDashboardFile} {
		queries := dashboardFileQueries(t, file)
		if len(queries) < 8 {
			t.Errorf("%s: only %d queries", file, len(queries))
		}
		for _, q := range queries {
			if strings.Contains(q.expr, "$") {
				t.Errorf("%s: a Grafana variable is left unreplaced: %s", q.source, q.expr)
			}
			rules = append(rules, map[string]any{"record": fmt.Sprintf("dashboard_query_%d", len(rules)), "expr": q.expr})
		}
	}
	path := writeYAML(t, t.TempDir(), "queries.yml", map[string]any{
		"groups": []any{map[string]any{"name": "dashboard_queries", "rules": rules}},
	})
	out := lintRunTool(t, "promtool", "check", "rules", path)
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Errorf("promtool check rules %s: want %q, got:\n%s", filepath.Base(path), want, out)
	}
}
