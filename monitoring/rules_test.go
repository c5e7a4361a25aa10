package monitoring_test

// The monitoring configuration is code: these tests run the real promtool and
// amtool on it (configuration checks and the rules' unit tests), and lint what
// the tools cannot see: every alert has a `for`, a severity, a summary, a
// templated description and a runbook section; every alert has a unit test
// that shows it firing and one that shows it silent; every recording rule has
// a unit test; every runbook section belongs to an alert; routing and
// inhibition name alerts that exist.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// lintRunbookURLBase is the runbook's address on GitHub; an alert's
// runbook_url is this followed by the anchor of its section.
const lintRunbookURLBase = "https://github.com/fish-classifier/fish-classifier/blob/main/monitoring/runbook.md#"

// lintSeverityReceivers maps each severity an alert may carry to the
// Alertmanager receiver that must get it.
var lintSeverityReceivers = map[string]string{
	"critical": "pager",
	"warning":  "team",
}

// lintPrometheusDuration is Prometheus' duration syntax (model.ParseDuration).
var lintPrometheusDuration = regexp.MustCompile(`^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$`)

// TestPrometheusConfigPassesPromtool checks prometheus.yml and, through its
// rule_files, every rule file, as Prometheus would load them.
func TestPrometheusConfigPassesPromtool(t *testing.T) {
	t.Parallel()
	out := lintRunTool(t, "promtool", "check", "config", monitoringPath(t, "prometheus.yml"))
	// rule_files resolve relative to the configuration file; a glob that
	// matches nothing is not an error to promtool, so make sure it found the rules.
	if got := strings.Count(out, "SUCCESS: "); got < 2 {
		t.Errorf("promtool check config: want the config and its rule files checked, got:\n%s", out)
	}
	for _, f := range []string{"alerts.yml", "recording.yml", "mlops.yml"} {
		if !strings.Contains(out, f) {
			t.Errorf("promtool check config did not load %s through rule_files:\n%s", f, out)
		}
	}
}

// TestPrometheusConfigScrapeJobs pins the scrape jobs: the compose services
// they point at, and the shape (one static_configs entry with one target, or
// for the mlops profile's jobs one DNS name) that the end-to-end tests rely on
// to rewrite targets by job name.
func TestPrometheusConfigScrapeJobs(t *testing.T) {
	t.Parallel()
	var cfg lintPrometheusConfig
	lintDecodeYAMLFile(t, monitoringPath(t, "prometheus.yml"), &cfg)

	if got, want := cfg.Global.ScrapeInterval, "15s"; got != want {
		t.Errorf("global.scrape_interval = %q, want %q", got, want)
	}
	if got, want := cfg.Global.EvaluationInterval, "15s"; got != want {
		t.Errorf("global.evaluation_interval = %q, want %q", got, want)
	}
	if got, want := cfg.RuleFiles, []string{"prometheus/rules/*.yml"}; !slices.Equal(got, want) {
		t.Errorf("rule_files = %q, want %q", got, want)
	}
	var alertmanagers []string
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			alertmanagers = append(alertmanagers, sc.Targets...)
		}
	}
	if got, want := alertmanagers, []string{"alertmanager:9093"}; !slices.Equal(got, want) {
		t.Errorf("alerting.alertmanagers targets = %q, want %q", got, want)
	}

	tests := []struct {
		job, target, metricsPath string
		dns                      bool // found by DNS: the mlops profile's services
	}{
		{job: "fish_api", target: "fish_api:8000", metricsPath: "/metrics"},
		{job: "triton", target: "triton:8002"},
		{job: "cadvisor", target: "cadvisor:8080"},
		{job: "prometheus", target: "localhost:9090"},
		{job: "alertmanager", target: "alertmanager:9093"},
		// MinIO's v2 metrics: the cluster's, and the buckets' (their own path
		// since RELEASE.2023-07-21).
		{job: "minio", target: "minio:9000", metricsPath: "/minio/v2/metrics/cluster", dns: true},
		{job: "minio_bucket", target: "minio:9000", metricsPath: "/minio/v2/metrics/bucket", dns: true},
		{job: "mysqld", target: "mysqld-exporter:9104", dns: true},
	}
	var gotJobs, wantJobs []string
	for _, sc := range cfg.ScrapeConfigs {
		gotJobs = append(gotJobs, sc.JobName)
	}
	for _, tt := range tests {
		wantJobs = append(wantJobs, tt.job)
	}
	if !slices.Equal(slices.Sorted(slices.Values(gotJobs)), slices.Sorted(slices.Values(wantJobs))) {
		t.Errorf("scrape jobs = %q, want exactly %q", gotJobs, wantJobs)
	}
	for _, tt := range tests {
		t.Run(tt.job, func(t *testing.T) {
			i := slices.IndexFunc(cfg.ScrapeConfigs, func(sc lintScrapeConfig) bool { return sc.JobName == tt.job })
			if i < 0 {
				t.Fatalf("no scrape job %q", tt.job)
			}
			sc := cfg.ScrapeConfigs[i]
			if got := sc.MetricsPath; got != tt.metricsPath {
				t.Errorf("job %q: metrics_path = %q, want %q", tt.job, got, tt.metricsPath)
			}
			if tt.dns {
				// One A-record lookup of the compose service's name: no
				// record while the profile is not running, hence no target
				// and no up series. The instance is named after the service,
				// not its address, which changes when the container does.
				host, port, _ := strings.Cut(tt.target, ":")
				if len(sc.StaticConfigs) != 0 || len(sc.DNSSDConfigs) != 1 {
					t.Fatalf("job %q: want one dns_sd_configs entry and no static_configs, got %+v, %+v", tt.job, sc.DNSSDConfigs, sc.StaticConfigs)
				}
				d := sc.DNSSDConfigs[0]
				if !slices.Equal(d.Names, []string{host}) || d.Type != "A" || strconv.Itoa(d.Port) != port {
					t.Errorf("job %q: dns_sd_configs %+v, want names [%s], type A, port %s", tt.job, d, host, port)
				}
				want := lintRelabelConfig{SourceLabels: []string{"__meta_dns_name"}, TargetLabel: "instance", Replacement: "$1:" + port}
				if len(sc.RelabelConfigs) != 1 || !reflect.DeepEqual(sc.RelabelConfigs[0], want) {
					t.Errorf("job %q: relabel_configs %+v, want only %+v", tt.job, sc.RelabelConfigs, want)
				}
				return
			}
			if len(sc.StaticConfigs) != 1 || len(sc.StaticConfigs[0].Targets) != 1 {
				t.Fatalf("job %q: want one static_configs entry with one target, got %+v", tt.job, sc.StaticConfigs)
			}
			if got := sc.StaticConfigs[0].Targets[0]; got != tt.target {
				t.Errorf("job %q: target = %q, want %q", tt.job, got, tt.target)
			}
		})
	}
}

// TestRulesPassPromtoolCheck runs `promtool check rules` on each rule file.
func TestRulesPassPromtoolCheck(t *testing.T) {
	t.Parallel()
	for _, path := range lintGlob(t, "prometheus", "rules", "*.yml") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			lintRunTool(t, "promtool", "check", "rules", path)
		})
	}
}

// TestRulesUnitTestsPassPromtool runs the rules' unit tests, one test file at a
// time so that a failure names its file.
func TestRulesUnitTestsPassPromtool(t *testing.T) {
	t.Parallel()
	for _, path := range lintGlob(t, "prometheus", "tests", "*.yml") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			lintRunTool(t, "promtool", "test", "rules", path)
		})
	}
}

// TestAlertmanagerConfigPassesAmtool checks alertmanager.yml as Alertmanager
// would load it.
func TestAlertmanagerConfigPassesAmtool(t *testing.T) {
	t.Parallel()
	lintRunTool(t, "amtool", "check-config", monitoringPath(t, "alertmanager", "alertmanager.yml"))
}

// TestAlertmanagerRoutesBySeverity asks amtool where each alert of alerts.yml
// is routed: critical to the pager, warning to the team. An alert without a
// known severity must still reach the team.
func TestAlertmanagerRoutesBySeverity(t *testing.T) {
	t.Parallel()
	type routeCase struct {
		name   string
		labels []string
		want   string
	}
	cases := []routeCase{
		{name: "no severity", labels: []string{"alertname=Unknown"}, want: "team"},
		{name: "unknown severity", labels: []string{"alertname=Unknown", "severity=info"}, want: "team"},
	}
	for _, a := range lintLoadAlerts(t) {
		want, ok := lintSeverityReceivers[a.Labels["severity"]]
		if !ok {
			continue // TestRulesAlertsAreComplete reports it
		}
		cases = append(cases, routeCase{
			name:   a.Alert,
			labels: []string{"alertname=" + a.Alert, "severity=" + a.Labels["severity"]},
			want:   want,
		})
	}
	config := monitoringPath(t, "alertmanager", "alertmanager.yml")
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"config", "routes", "test", "--config.file=" + config}, tt.labels...)
			if got := strings.TrimSpace(lintRunToolStdout(t, "amtool", args...)); got != tt.want {
				t.Errorf("labels %q routed to %q, want %q", tt.labels, got, tt.want)
			}
		})
	}
}

// TestAlertmanagerReceiversArePlainWebhooks keeps the receivers in the shape
// the end-to-end test rewrites: each one a list of webhook_configs with a url.
func TestAlertmanagerReceiversArePlainWebhooks(t *testing.T) {
	t.Parallel()
	var cfg lintAlertmanagerConfig
	lintDecodeYAMLFile(t, monitoringPath(t, "alertmanager", "alertmanager.yml"), &cfg)
	var names []string
	for _, r := range cfg.Receivers {
		names = append(names, r.Name)
		if len(r.WebhookConfigs) == 0 {
			t.Errorf("receiver %q: no webhook_configs", r.Name)
		}
		for i, w := range r.WebhookConfigs {
			if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
				t.Errorf("receiver %q webhook_configs[%d]: url = %q, want an http(s) URL", r.Name, i, w.URL)
			}
		}
	}
	for _, want := range []string{"pager", "team"} {
		if !slices.Contains(names, want) {
			t.Errorf("receivers = %q, want one named %q", names, want)
		}
	}
}

// TestAlertmanagerMatchersNameExistingAlerts checks that every alertname the
// routes and inhibit rules match on names an alert of alerts.yml (a regex
// matches at least one), and every severity is one the alerts use: a typo
// there would silently route or inhibit nothing.
func TestAlertmanagerMatchersNameExistingAlerts(t *testing.T) {
	t.Parallel()
	var cfg lintAlertmanagerConfig
	lintDecodeYAMLFile(t, monitoringPath(t, "alertmanager", "alertmanager.yml"), &cfg)
	var alerts []string
	for _, a := range lintLoadAlerts(t) {
		alerts = append(alerts, a.Alert)
	}

	type placedMatcher struct{ where, matcher string }
	var matchers []placedMatcher
	var walk func(where string, r lintAlertmanagerRoute)
	walk = func(where string, r lintAlertmanagerRoute) {
		for _, m := range r.Matchers {
			matchers = append(matchers, placedMatcher{where, m})
		}
		for i, child := range r.Routes {
			walk(fmt.Sprintf("%s.routes[%d]", where, i), child)
		}
	}
	walk("route", cfg.Route)
	for i, ir := range cfg.InhibitRules {
		for _, m := range ir.SourceMatchers {
			matchers = append(matchers, placedMatcher{fmt.Sprintf("inhibit_rules[%d].source_matchers", i), m})
		}
		for _, m := range ir.TargetMatchers {
			matchers = append(matchers, placedMatcher{fmt.Sprintf("inhibit_rules[%d].target_matchers", i), m})
		}
	}
	if len(cfg.InhibitRules) == 0 {
		t.Error("no inhibit_rules")
	}

	for _, pm := range matchers {
		label, op, value, err := lintParseMatcher(pm.matcher)
		if err != nil {
			t.Errorf("%s: %v", pm.where, err)
			continue
		}
		var known []string
		switch label {
		case "alertname":
			known = alerts
		case "severity":
			known = slices.Sorted(maps.Keys(lintSeverityReceivers))
		default:
			continue
		}
		if op == "=" || op == "!=" {
			if !slices.Contains(known, value) {
				t.Errorf("%s: matcher %q names no %s of the rules (have %q)", pm.where, pm.matcher, label, known)
			}
			continue
		}
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			t.Errorf("%s: matcher %q: %v", pm.where, pm.matcher, err)
			continue
		}
		if !slices.ContainsFunc(known, re.MatchString) {
			t.Errorf("%s: matcher %q matches no %s of the rules (have %q)", pm.where, pm.matcher, label, known)
		}
	}
}

// TestRulesAlertsAreComplete checks what every alert must carry: a `for`, a
// severity Alertmanager routes, a summary, a description templated with the
// alert's labels or value, and a runbook_url to its own runbook section.
func TestRulesAlertsAreComplete(t *testing.T) {
	t.Parallel()
	alerts := lintLoadAlerts(t)
	if len(alerts) == 0 {
		t.Fatal("no alerting rules found")
	}
	sections := lintRunbookSections(t)
	seen := map[string]bool{}
	for _, a := range alerts {
		t.Run(a.Alert, func(t *testing.T) {
			if seen[a.Alert] {
				t.Errorf("alert %q defined more than once", a.Alert)
			}
			seen[a.Alert] = true
			if a.For == "" {
				t.Errorf("%s: no `for` (write `for: 0m` for an alert that must fire at once)", a.where())
			} else if !lintPrometheusDuration.MatchString(a.For) {
				t.Errorf("%s: for = %q, not a Prometheus duration", a.where(), a.For)
			}
			if sev := a.Labels["severity"]; lintSeverityReceivers[sev] == "" {
				t.Errorf("%s: labels.severity = %q, want one of critical, warning", a.where(), sev)
			}
			if strings.TrimSpace(a.Annotations["summary"]) == "" {
				t.Errorf("%s: no summary annotation", a.where())
			}
			desc := a.Annotations["description"]
			if !strings.Contains(desc, "{{") || !(strings.Contains(desc, "$labels") || strings.Contains(desc, "$value")) {
				t.Errorf("%s: description = %q, want a template using $labels or $value", a.where(), desc)
			}
			anchor := lintGitHubAnchor(a.Alert)
			if got, want := a.Annotations["runbook_url"], lintRunbookURLBase+anchor; got != want {
				t.Errorf("%s: runbook_url = %q, want %q", a.where(), got, want)
			}
			if !slices.Contains(sections, a.Alert) {
				t.Errorf("%s: runbook.md has no section %q for anchor #%s", a.where(), "## "+a.Alert, anchor)
			}
		})
	}
}

// TestRulesEveryAlertFiresAndStaysSilentInUnitTests checks that every alert
// has at least one unit test case in which it fires and one in which it must
// not, and that no test case names an alert that does not exist (such a case
// with exp_alerts: [] would pass without testing anything).
func TestRulesEveryAlertFiresAndStaysSilentInUnitTests(t *testing.T) {
	t.Parallel()
	alerts := lintLoadAlerts(t)
	firing, silent := map[string]int{}, map[string]int{}
	for path, f := range lintLoadUnitTestFiles(t) {
		for i, group := range f.Tests {
			for _, c := range group.AlertRuleTests {
				if !slices.ContainsFunc(alerts, func(a lintLoadedRule) bool { return a.Alert == c.Alertname }) {
					t.Errorf("%s: tests[%d] at %s tests alert %q, which no rule defines", filepath.Base(path), i, c.EvalTime, c.Alertname)
				}
				if len(c.ExpAlerts) > 0 {
					firing[c.Alertname]++
				} else {
					silent[c.Alertname]++
				}
			}
		}
	}
	for _, a := range alerts {
		t.Run(a.Alert, func(t *testing.T) {
			if firing[a.Alert] == 0 {
				t.Errorf("%s: no unit test case in which it fires (non-empty exp_alerts)", a.Alert)
			}
			if silent[a.Alert] == 0 {
				t.Errorf("%s: no unit test case in which it must stay silent (exp_alerts: [])", a.Alert)
			}
		})
	}
}

// TestRulesEveryRecordingRuleHasUnitTest checks that every recording rule is
// queried by at least one promql_expr_test, which asserts its exact values.
func TestRulesEveryRecordingRuleHasUnitTest(t *testing.T) {
	t.Parallel()
	var exprs []string
	for _, f := range lintLoadUnitTestFiles(t) {
		for _, group := range f.Tests {
			for _, c := range group.PromQLExprTests {
				exprs = append(exprs, c.Expr)
			}
		}
	}
	records := lintLoadRecordingRules(t)
	if len(records) == 0 {
		t.Fatal("no recording rules found")
	}
	for _, r := range records {
		t.Run(r.Record, func(t *testing.T) {
			// The name as a whole word: p50_1h must not count as p50_1d's test.
			name := regexp.MustCompile(`(^|[^a-zA-Z0-9_:])` + regexp.QuoteMeta(r.Record) + `($|[^a-zA-Z0-9_:])`)
			if !slices.ContainsFunc(exprs, name.MatchString) {
				t.Errorf("%s: no promql_expr_test queries it", r.where())
			}
		})
	}
}

// TestRulesRunbookSectionsBelongToAlerts checks the runbook from the other
// side: each "## " section is named after an alert that exists, once.
func TestRulesRunbookSectionsBelongToAlerts(t *testing.T) {
	t.Parallel()
	var alerts []string
	for _, a := range lintLoadAlerts(t) {
		alerts = append(alerts, a.Alert)
	}
	seen := map[string]bool{}
	for _, s := range lintRunbookSections(t) {
		if seen[s] {
			t.Errorf("runbook.md: section %q appears twice", "## "+s)
		}
		seen[s] = true
		if !slices.Contains(alerts, s) {
			t.Errorf("runbook.md: section %q names no alert (alerts: %q)", "## "+s, alerts)
		}
	}
}

// TestRulesUnitTestsEvaluateRecordingRulesFirst checks group_eval_order in
// the unit test files that load alerts on top of recording rules. Without
// it promtool evaluates the groups in a random order at each step, so an alert
// reads its recording rule from this step or the one before, by chance.
func TestRulesUnitTestsEvaluateRecordingRulesFirst(t *testing.T) {
	t.Parallel()
	ruleFiles := lintLoadRuleFiles(t)
	for path, f := range lintLoadUnitTestFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			type groupKind struct {
				name      string
				recording bool
			}
			var groups []groupKind
			hasAlerts, hasRecords := false, false
			for _, rf := range f.RuleFiles {
				loaded, ok := ruleFiles[filepath.Clean(filepath.Join(filepath.Dir(path), rf))]
				if !ok {
					t.Fatalf("rule_files: %q is not one of the rule files under prometheus/rules", rf)
				}
				for _, g := range loaded.Groups {
					recording := slices.ContainsFunc(g.Rules, func(r lintRule) bool { return r.Record != "" })
					hasRecords = hasRecords || recording
					hasAlerts = hasAlerts || slices.ContainsFunc(g.Rules, func(r lintRule) bool { return r.Alert != "" })
					groups = append(groups, groupKind{g.Name, recording})
				}
			}
			if !hasAlerts || !hasRecords {
				return
			}
			lastRecording, firstAlerting := -1, len(f.GroupEvalOrder)
			for _, g := range groups {
				i := slices.Index(f.GroupEvalOrder, g.name)
				if i < 0 {
					t.Errorf("group_eval_order lacks group %q", g.name)
					continue
				}
				if g.recording {
					lastRecording = max(lastRecording, i)
				} else {
					firstAlerting = min(firstAlerting, i)
				}
			}
			if lastRecording > firstAlerting {
				t.Errorf("group_eval_order = %q: want every recording group before the alerting groups", f.GroupEvalOrder)
			}
		})
	}
}

// --- what the lints read of each file ---

// lintPrometheusConfig is the part of prometheus.yml the lints read.
type lintPrometheusConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []lintStaticConfig `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []lintScrapeConfig `yaml:"scrape_configs"`
}

type lintScrapeConfig struct {
	JobName        string              `yaml:"job_name"`
	MetricsPath    string              `yaml:"metrics_path"`
	StaticConfigs  []lintStaticConfig  `yaml:"static_configs"`
	DNSSDConfigs   []lintDNSSDConfig   `yaml:"dns_sd_configs"`
	RelabelConfigs []lintRelabelConfig `yaml:"relabel_configs"`
}

type lintDNSSDConfig struct {
	Names []string `yaml:"names"`
	Type  string   `yaml:"type"`
	Port  int      `yaml:"port"`
}

type lintRelabelConfig struct {
	SourceLabels []string `yaml:"source_labels"`
	TargetLabel  string   `yaml:"target_label"`
	Replacement  string   `yaml:"replacement"`
}

type lintStaticConfig struct {
	Targets []string `yaml:"targets"`
}

// lintRuleFile is a Prometheus rule file.
type lintRuleFile struct {
	Groups []struct {
		Name  string     `yaml:"name"`
		Rules []lintRule `yaml:"rules"`
	} `yaml:"groups"`
}

// lintRule is a recording rule (Record set) or an alerting rule (Alert set).
type lintRule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// lintLoadedRule is a rule with the file and group it comes from.
type lintLoadedRule struct {
	lintRule
	file, group string
}

func (r lintLoadedRule) where() string {
	name := r.Alert
	if name == "" {
		name = r.Record
	}
	return fmt.Sprintf("%s: group %s: %s", filepath.Base(r.file), r.group, name)
}

// lintUnitTestFile is a promtool unit test file.
type lintUnitTestFile struct {
	RuleFiles      []string `yaml:"rule_files"`
	GroupEvalOrder []string `yaml:"group_eval_order"`
	Tests          []struct {
		AlertRuleTests []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTests []struct {
			Expr     string `yaml:"expr"`
			EvalTime string `yaml:"eval_time"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

// lintAlertmanagerConfig is the part of alertmanager.yml the lints read.
type lintAlertmanagerConfig struct {
	Route     lintAlertmanagerRoute `yaml:"route"`
	Receivers []struct {
		Name           string `yaml:"name"`
		WebhookConfigs []struct {
			URL string `yaml:"url"`
		} `yaml:"webhook_configs"`
	} `yaml:"receivers"`
	InhibitRules []struct {
		SourceMatchers []string `yaml:"source_matchers"`
		TargetMatchers []string `yaml:"target_matchers"`
		Equal          []string `yaml:"equal"`
	} `yaml:"inhibit_rules"`
}

type lintAlertmanagerRoute struct {
	Receiver string                  `yaml:"receiver"`
	Matchers []string                `yaml:"matchers"`
	Routes   []lintAlertmanagerRoute `yaml:"routes"`
}

// --- loading ---

// lintGlob returns the files matching a pattern under monitoring/, failing
// the test when there are none.
func lintGlob(t *testing.T, elem ...string) []string {
	t.Helper()
	pattern := monitoringPath(t, elem...)
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no file matches %s", pattern)
	}
	return paths
}

// lintLoadRuleFiles reads every rule file, by cleaned absolute path.
func lintLoadRuleFiles(t *testing.T) map[string]lintRuleFile {
	t.Helper()
	files := map[string]lintRuleFile{}
	for _, path := range lintGlob(t, "prometheus", "rules", "*.yml") {
		var f lintRuleFile
		lintDecodeYAMLFile(t, path, &f)
		files[filepath.Clean(path)] = f
	}
	return files
}

// lintLoadRules returns every rule of every rule file, in file order.
func lintLoadRules(t *testing.T) []lintLoadedRule {
	t.Helper()
	files := lintLoadRuleFiles(t)
	var rules []lintLoadedRule
	for _, path := range slices.Sorted(maps.Keys(files)) {
		for _, g := range files[path].Groups {
			for _, r := range g.Rules {
				rules = append(rules, lintLoadedRule{lintRule: r, file: path, group: g.Name})
			}
		}
	}
	return rules
}

func lintLoadAlerts(t *testing.T) []lintLoadedRule {
	t.Helper()
	return slices.DeleteFunc(lintLoadRules(t), func(r lintLoadedRule) bool { return r.Alert == "" })
}

func lintLoadRecordingRules(t *testing.T) []lintLoadedRule {
	t.Helper()
	return slices.DeleteFunc(lintLoadRules(t), func(r lintLoadedRule) bool { return r.Record == "" })
}

// lintLoadUnitTestFiles reads every promtool unit test file, by path.
func lintLoadUnitTestFiles(t *testing.T) map[string]lintUnitTestFile {
	t.Helper()
	files := map[string]lintUnitTestFile{}
	for _, path := range lintGlob(t, "prometheus", "tests", "*.yml") {
		var f lintUnitTestFile
		lintDecodeYAMLFile(t, path, &f)
		files[filepath.Clean(path)] = f
	}
	return files
}

// lintRunbookSections returns the titles of the runbook's "## " sections,
// outside code blocks, in order.
func lintRunbookSections(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(monitoringPath(t, "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	var sections []string
	inCode := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if title, ok := strings.CutPrefix(line, "## "); ok && !inCode {
			sections = append(sections, strings.TrimSpace(title))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sections
}

// lintGitHubAnchor is the anchor GitHub gives a Markdown heading: lower case,
// punctuation dropped, spaces turned into hyphens.
func lintGitHubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// lintMatcher is one Alertmanager matcher: label, operator, quoted value.
var lintMatcher = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*$`)

// lintParseMatcher splits a matcher such as alertname=~"FishAPI.+". Only the
// quoted form is accepted: it is the one that means the same to every
// Alertmanager version.
func lintParseMatcher(m string) (label, op, value string, err error) {
	parts := lintMatcher.FindStringSubmatch(m)
	if parts == nil {
		return "", "", "", fmt.Errorf("matcher %q: want label, operator and a double-quoted value", m)
	}
	value, err = strconv.Unquote(parts[3])
	if err != nil {
		return "", "", "", fmt.Errorf("matcher %q: %v", m, err)
	}
	return parts[1], parts[2], value, nil
}

// --- running the tools ---

// lintToolTimeout bounds one run of promtool or amtool.
const lintToolTimeout = 2 * time.Minute

// lintRunTool runs a Prometheus or Alertmanager tool and returns what it
// printed; an exit status other than 0 fails the test with that output.
func lintRunTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, _ := lintExec(t, name, args...)
	return out
}

// lintRunToolStdout is lintRunTool returning standard output alone (amtool
// prints warnings on standard error beside the answer).
func lintRunToolStdout(t *testing.T, name string, args ...string) string {
	t.Helper()
	_, stdout := lintExec(t, name, args...)
	return stdout
}

func lintExec(t *testing.T, name string, args ...string) (combined, stdout string) {
	t.Helper()
	bin := requireBinary(t, name)
	ctx, cancel := context.WithTimeout(t.Context(), lintToolTimeout)
	defer cancel()
	// Two buffers: exec copies each stream in its own goroutine.
	var outBuf, errBuf bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	err := cmd.Run()
	combined = outBuf.String() + errBuf.String()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, combined)
	}
	return combined, outBuf.String()
}

// lintDecodeYAMLFile reads a YAML file into out.
func lintDecodeYAMLFile(t *testing.T, path string, out any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
