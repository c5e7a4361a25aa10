package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed dashboards' JSON from the generator")

// committedDashboard is the gateway dashboard's file Grafana provisions,
// relative to this package; the others are committed beside it.
var committedDashboard = filepath.Join("..", "grafana", "provisioning", "dashboards", mainDashboardFile)

// regenerate says how to bring the committed dashboard up to date.
const regenerate = "go generate ./monitoring/dashboard (or: go test ./monitoring/dashboard -update)"

// The lint tests below read the committed file, the one Grafana loads; the
// golden test makes sure it is what the generator writes.

// dashboardFiles are the file names of every generated dashboard.
func dashboardFiles() []string {
	var files []string
	for _, g := range dashboards {
		files = append(files, g.file)
	}
	return files
}

func TestCommittedDashboardIsGenerated(t *testing.T) {
	for _, g := range dashboards {
		t.Run(g.file, func(t *testing.T) {
			want, err := renderDashboard(g.build)
			if err != nil {
				t.Fatal(err)
			}
			path := committedFile(g.file)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read committed dashboard: %v (generate it with: %s)", err, regenerate)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generator's output from line %d on; regenerate with: %s",
					path, firstDifferentLine(got, want), regenerate)
			}
		})
	}
	// Nothing else in the folder: a dashboard whose generator was removed
	// would still be provisioned.
	committed, err := filepath.Glob(committedFile("*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range committed {
		names = append(names, filepath.Base(c))
	}
	if want := slices.Sorted(slices.Values(dashboardFiles())); !slices.Equal(names, want) {
		t.Errorf("committed dashboards %q, want exactly the generated %q", names, want)
	}
}

func TestDashboardUIDsAndTitlesAreUnique(t *testing.T) {
	uids, titles := map[string]string{}, map[string]string{}
	for _, file := range dashboardFiles() {
		d := loadDashboardFile(t, file)
		if other, dup := uids[d.UID]; dup || d.UID == "" {
			t.Errorf("%s: uid %q (also %s)", file, d.UID, other)
		}
		if other, dup := titles[d.Title]; dup || d.Title == "" {
			t.Errorf("%s: title %q (also %s)", file, d.Title, other)
		}
		uids[d.UID], titles[d.Title] = file, file
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	first, err := render()
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := render()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("two renders differ at line %d", firstDifferentLine(first, again))
		}
	}
	if !bytes.HasSuffix(first, []byte("}\n")) {
		t.Errorf("output ends with %q, want a closing brace and one newline", first[max(0, len(first)-10):])
	}
	if !json.Valid(first) {
		t.Error("output is not valid JSON")
	}
}

func TestWriteAllAndPrintOne(t *testing.T) {
	dir := t.TempDir()
	if err := writeAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, g := range dashboards {
		want, err := renderDashboard(g.build)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, g.file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("writeAll wrote %d bytes to %s that differ from the render's %d", len(got), g.file, len(want))
		}
		var stdout bytes.Buffer
		if err := printOne(g.file, &stdout); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stdout.Bytes(), want) {
			t.Errorf("printOne %s wrote %d bytes that differ from the render's %d", g.file, stdout.Len(), len(want))
		}
	}
	if err := printOne("no-such-dashboard.json", io.Discard); err == nil {
		t.Error("printOne of an unknown file: no error")
	}
}

func TestDashboardSettings(t *testing.T) {
	d := loadDashboard(t)
	tests := []struct {
		name      string
		got, want any
	}{
		{"title", d.Title, "Fish Classifier API Monitoring"},
		{"uid", d.UID, "fish-api"},
		{"refresh", d.Refresh, "10s"},
		{"time.from", d.Time.From, "now-1h"},
		{"time.to", d.Time.To, "now"},
		{"has tags", len(d.Tags) > 0, true},
		{"schemaVersion recent", d.SchemaVersion >= 39, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestVariables(t *testing.T) {
	d := loadDashboard(t)
	tests := []struct {
		name              string
		typ               string
		query             string
		multi, includeAll bool
		queriesDatasource bool // its options come from the $datasource
	}{
		{name: "datasource", typ: "datasource", query: "prometheus"},
		{name: "instance", typ: "query", query: `label_values(up{job="fish_api"}, instance)`,
			multi: true, includeAll: true, queriesDatasource: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := d.variable(tt.name)
			if !ok {
				t.Fatalf("no variable %q among %v", tt.name, d.variableNames())
			}
			if v.Type != tt.typ {
				t.Errorf("type: got %q, want %q", v.Type, tt.typ)
			}
			if v.Query != tt.query {
				t.Errorf("query: got %q, want %q", v.Query, tt.query)
			}
			if v.Multi != tt.multi || v.IncludeAll != tt.includeAll {
				t.Errorf("multi, includeAll: got %v, %v, want %v, %v", v.Multi, v.IncludeAll, tt.multi, tt.includeAll)
			}
			if !tt.queriesDatasource {
				return
			}
			if v.Datasource == nil || *v.Datasource != wantDatasource {
				t.Errorf("datasource: got %v, want %v", v.Datasource, wantDatasource)
			}
			if v.Refresh == 0 {
				t.Error("refresh: got 0 (never), want the options reloaded on load or on a time change")
			}
		})
	}
}

// productPanelSpec is the product's specification of the first eight panels:
// order, exact titles, visualisation, unit, and the series each must read.
var productPanelSpec = []panelSpec{
	{title: "Requests per Second by Endpoint", typ: "timeseries", unit: "reqps",
		reads: []string{"instance_endpoint:http_requests:rate5m"}},
	{title: "Error Rate (5xx)", typ: "gauge", unit: "percentunit",
		reads: []string{"instance:http_requests_5xx:ratio_rate5m"}},
	{title: "Request Latency (p50 & p95)", typ: "timeseries", unit: "s",
		reads: []string{"instance_endpoint:http_request_duration_seconds:p50_5m", "instance_endpoint:http_request_duration_seconds:p95_5m"}},
	{title: "Model Inference Latency", typ: "timeseries", unit: "s",
		reads: []string{"instance_backend:model_inference_duration_seconds:p50_5m", "instance_backend:model_inference_duration_seconds:p95_5m"}},
	{title: "Predictions by Class", typ: "bargauge",
		reads: []string{"predicted_class_total"}},
	{title: "Prediction Confidence (median)", typ: "timeseries", unit: "percentunit",
		reads: []string{"instance_model:prediction_confidence:p50_5m"}},
	{title: "Container CPU Usage", typ: "timeseries",
		reads: []string{"container_cpu_usage_seconds_total"}},
	{title: "Container Memory Usage", typ: "timeseries", unit: "bytes",
		reads: []string{"container_memory_working_set_bytes"}},
}

// rowSpec lists, for each row, the panels that must sit under it.
var rowSpec = []struct {
	row    string
	panels []panelSpec
}{
	{row: "Model in Service", panels: []panelSpec{
		{title: "Model in Service and Provenance", typ: "table", reads: []string{"model_info"}},
	}},
	{row: "Triton & GPU", panels: []panelSpec{
		{title: "GPU Utilisation", unit: "percentunit", reads: []string{"nv_gpu_utilization"}},
		{title: "GPU Memory (used vs total)", unit: "bytes", reads: []string{"nv_gpu_memory_used_bytes", "nv_gpu_memory_total_bytes"}},
		{title: "GPU Power (usage vs limit)", unit: "watt", reads: []string{"nv_gpu_power_usage", "nv_gpu_power_limit"}},
		{title: "GPU Energy (time range)", unit: "joule", reads: []string{"nv_energy_consumption"}},
		{title: "Triton Queue vs Compute Time per Request", unit: "s", reads: []string{
			"instance_model:nv_inference_queue_duration_seconds:per_request_rate5m",
			"instance_model:nv_inference_compute_infer_duration_seconds:per_request_rate5m"}},
		{title: "Triton Average Batch Size", reads: []string{"instance_model:nv_inference_batch_size:avg_rate5m"}},
		{title: "Triton Successes and Failures by Reason", reads: []string{"nv_inference_request_success", "nv_inference_request_failure"}},
		{title: "Triton Pending Requests", reads: []string{"nv_inference_pending_request_count"}},
	}},
	{row: "Resilience", panels: []panelSpec{
		{title: "Circuit Breaker State", typ: "state-timeline", reads: []string{"circuit_breaker_state"}},
		{title: "Shed Requests (429)", reads: []string{"http_requests_shed_total"}},
		{title: "Share Served by Fallback", unit: "percentunit", reads: []string{"instance:inference_fallback:ratio_rate5m"}},
		{title: "HTTP Errors by Code", reads: []string{"http_request_errors_total"}},
		{title: "Inference Errors by Kind", reads: []string{"model_inference_errors_total"}},
		{title: "Queueing for Slots (p95 wait)", unit: "s", reads: []string{"classifier_slot_wait_seconds_bucket"}},
	}},
}

type panelSpec struct {
	title string
	typ   string   // visualisation; empty: any
	unit  string   // fieldConfig.defaults.unit; empty: any
	reads []string // series names some target's expression must read
}

// check reports how p departs from the spec.
func (s panelSpec) check(t *testing.T, p panel) {
	t.Helper()
	if p.Title != s.title {
		t.Errorf("title: got %q, want %q", p.Title, s.title)
	}
	if s.typ != "" && p.Type != s.typ {
		t.Errorf("%q: type got %q, want %q", s.title, p.Type, s.typ)
	}
	if s.unit != "" && p.FieldConfig.Defaults.Unit != s.unit {
		t.Errorf("%q: unit got %q, want %q", s.title, p.FieldConfig.Defaults.Unit, s.unit)
	}
	for _, series := range s.reads {
		if !slices.ContainsFunc(p.Targets, func(tg target) bool { return readsSeries(tg.Expr, series) }) {
			t.Errorf("%q: no target reads %s; exprs: %q", s.title, series, p.exprs())
		}
	}
}

func TestProductPanelsComeFirstInOrder(t *testing.T) {
	d := loadDashboard(t)
	if len(d.Panels) < len(productPanelSpec) {
		t.Fatalf("got %d top-level panels, want at least %d", len(d.Panels), len(productPanelSpec))
	}
	for i, spec := range productPanelSpec {
		t.Run(fmt.Sprintf("%d %s", i+1, spec.title), func(t *testing.T) {
			spec.check(t, d.Panels[i])
		})
	}
}

func TestRowsHoldTheirPanels(t *testing.T) {
	d := loadDashboard(t)
	before, rows := d.byRow()
	if len(before) != len(productPanelSpec) {
		t.Errorf("panels before the first row: got %d %q, want the product's %d", len(before), titles(before), len(productPanelSpec))
	}
	var gotRows []string
	for _, r := range rows {
		gotRows = append(gotRows, r.title)
	}
	var wantRows []string
	for _, r := range rowSpec {
		wantRows = append(wantRows, r.row)
	}
	if !slices.Equal(gotRows, wantRows) {
		t.Fatalf("rows: got %q, want %q", gotRows, wantRows)
	}
	for i, want := range rowSpec {
		for _, spec := range want.panels {
			t.Run(want.row+"/"+spec.title, func(t *testing.T) {
				j := slices.IndexFunc(rows[i].panels, func(p panel) bool { return p.Title == spec.title })
				if j < 0 {
					t.Fatalf("no panel %q under row %q; it holds %q", spec.title, want.row, titles(rows[i].panels))
				}
				spec.check(t, rows[i].panels[j])
			})
		}
	}
}

// TestModelInServiceTable: the table shows model_info's provenance labels as
// columns, the MLflow ones included, one row per series of an instant query.
func TestModelInServiceTable(t *testing.T) {
	var table *panel
	for _, p := range loadDashboard(t).allPanels() {
		if p.Title == titleModelInService {
			table = &p
		}
	}
	if table == nil {
		t.Fatalf("no panel %q", titleModelInService)
	}
	if len(table.Targets) != 1 || !table.Targets[0].Instant || table.Targets[0].Format != "table" {
		t.Fatalf("targets %+v, want one instant query in table format", table.Targets)
	}
	if len(table.Transformations) != 1 || table.Transformations[0].ID != "organize" {
		t.Fatalf("transformations %+v, want one organize", table.Transformations)
	}
	order, _ := table.Transformations[0].Options["indexByName"].(map[string]any)
	hidden, _ := table.Transformations[0].Options["excludeByName"].(map[string]any)
	want := []string{"instance", "model", "version", "backend", "model_sha256", "mlflow_run_id", "mlflow_model_version"}
	for i, col := range want {
		if got, ok := order[col].(float64); !ok || int(got) != i {
			t.Errorf("column %s at %v, want %d", col, order[col], i)
		}
		if hidden[col] == true {
			t.Errorf("column %s hidden", col)
		}
	}
	for _, col := range []string{"Time", "Value", "__name__"} {
		if hidden[col] != true {
			t.Errorf("column %s shown, want hidden (model_info is always 1)", col)
		}
	}
}

func TestPanelIDsAreUnique(t *testing.T) {
	for _, file := range dashboardFiles() {
		t.Run(file, func(t *testing.T) { checkPanelIDs(t, loadDashboardFile(t, file)) })
	}
}

func checkPanelIDs(t *testing.T, d dashboardJSON) {
	seen := map[int]string{}
	for _, p := range d.allPanels() {
		if p.ID <= 0 {
			t.Errorf("%s %q: id %d, want a positive id", p.Type, p.Title, p.ID)
			continue
		}
		if other, dup := seen[p.ID]; dup {
			t.Errorf("id %d: held by %q and %q", p.ID, other, p.Title)
		}
		seen[p.ID] = p.Title
	}
}

func TestGridPositions(t *testing.T) {
	for _, file := range dashboardFiles() {
		t.Run(file, func(t *testing.T) { checkGrid(t, loadDashboardFile(t, file)) })
	}
}

func checkGrid(t *testing.T, d dashboardJSON) {
	for _, p := range d.allPanels() {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%q: gridPos %+v, want positive size within 24 columns", p.Title, g)
		}
	}
	// Top-level panels (rows included) share one grid; the panels of a
	// collapsed row share another, laid out where the row opens.
	layers := [][]panel{d.Panels}
	for _, p := range d.Panels {
		if len(p.Panels) > 0 {
			layers = append(layers, p.Panels)
		}
	}
	for _, layer := range layers {
		for i, a := range layer {
			for _, b := range layer[i+1:] {
				if a.GridPos.overlaps(b.GridPos) {
					t.Errorf("%q %+v overlaps %q %+v", a.Title, a.GridPos, b.Title, b.GridPos)
				}
			}
		}
	}
}

func TestTargets(t *testing.T) {
	for _, file := range dashboardFiles() {
		t.Run(file, func(t *testing.T) { checkTargets(t, loadDashboardFile(t, file)) })
	}
}

func checkTargets(t *testing.T, d dashboardJSON) {
	for _, p := range d.allPanels() {
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				t.Errorf("row %q: got %d targets, want none", p.Title, len(p.Targets))
			}
			continue
		}
		t.Run(p.Title, func(t *testing.T) {
			if len(p.Targets) == 0 {
				t.Fatal("no targets")
			}
			refIDs := map[string]bool{}
			for i, tg := range p.Targets {
				if tg.RefID == "" {
					t.Errorf("target %d: empty refId", i)
				}
				if refIDs[tg.RefID] {
					t.Errorf("target %d: refId %q repeated", i, tg.RefID)
				}
				refIDs[tg.RefID] = true
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("target %s: empty expr", tg.RefID)
				}
			}
		})
	}
}

// wantDatasource is the one datasource reference the dashboard may hold.
var wantDatasource = datasourceJSON{Type: "prometheus", UID: "${datasource}"}

func TestEveryDatasourceIsTheVariable(t *testing.T) {
	for _, file := range dashboardFiles() {
		t.Run(file, func(t *testing.T) { checkDatasources(t, file) })
	}
}

func checkDatasources(t *testing.T, file string) {
	raw, err := os.ReadFile(committedFile(file))
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	refs := 0
	walkJSON(tree, "$", func(path, key string, value any) {
		if key != "datasource" {
			return
		}
		refs++
		m, ok := value.(map[string]any)
		if !ok || len(m) != 2 || m["type"] != wantDatasource.Type || m["uid"] != wantDatasource.UID {
			t.Errorf("%s: got %v, want %v", path, value, wantDatasource)
		}
	})
	// Every panel but the rows, and every target, carry a reference.
	d := loadDashboardFile(t, file)
	for _, p := range d.allPanels() {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil {
			t.Errorf("panel %q: no datasource", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil {
				t.Errorf("panel %q target %s: no datasource", p.Title, tg.RefID)
			}
		}
	}
	if refs == 0 {
		t.Error("found no datasource reference at all")
	}
}

// The three scrape sources and the matchers that select them.
const (
	gatewaySource   = `job="fish_api"`
	instanceFilter  = `instance=~"$instance"`
	tritonSource    = `job="triton"`
	containerSource = `container_label_com_docker_compose_service="fish_api"`
)

var (
	selectorRE = regexp.MustCompile(`\{[^}]*\}`)
	rangeRE    = regexp.MustCompile(`\[([^\]]*)\]`)
	groupingRE = regexp.MustCompile(`\b(?:by|without)\s*\([^)]*\)`)
	tokenRE    = regexp.MustCompile(`[A-Za-z0-9_:.]+`)
)

// promqlWords are the functions, aggregations and keywords the dashboard's
// expressions may use; any other bare name would be a metric without a
// selector, that is, one read from every source and every instance.
var promqlWords = map[string]bool{
	"sum": true, "max": true, "min": true, "avg": true, "count": true,
	"rate": true, "increase": true, "irate": true, "delta": true,
	"histogram_quantile": true, "sort_desc": true, "sort": true, "topk": true,
	"clamp_min": true, "clamp_max": true, "vector": true,
	"or": true, "and": true, "unless": true, "on": true, "ignoring": true,
}

// dashboardSources are, per dashboard, the scrape sources its selectors may
// name, and those whose selectors must also follow $instance.
var dashboardSources = map[string]struct{ sources, filtered []string }{
	mainDashboardFile: {
		sources:  []string{gatewaySource, tritonSource, containerSource},
		filtered: []string{gatewaySource},
	},
	minioDashboardFile: {
		sources:  []string{`job="minio"`, `job="minio_bucket"`},
		filtered: []string{`job="minio"`, `job="minio_bucket"`},
	},
	mysqlDashboardFile: {
		sources:  []string{`job="mysqld"`},
		filtered: []string{`job="mysqld"`},
	},
}

// TestEverySelectorNamesItsSource checks that each series is read from the
// one scrape source its panel means, and that every gateway (and MinIO, and
// MySQL) series follows the $instance variable: a query without the filter
// would show all instances whatever the user chose.
func TestEverySelectorNamesItsSource(t *testing.T) {
	for _, file := range dashboardFiles() {
		src, ok := dashboardSources[file]
		if !ok {
			t.Errorf("%s: the test does not know its scrape sources", file)
			continue
		}
		for _, p := range loadDashboardFile(t, file).allPanels() {
			for _, tg := range p.Targets {
				name := file + "/" + p.Title + "/" + tg.RefID
				t.Run(name, func(t *testing.T) { checkSelectors(t, tg.Expr, src.sources, src.filtered) })
			}
		}
	}
}

func checkSelectors(t *testing.T, expr string, allowed, filtered []string) {
	t.Logf("expr: %s", expr)
	selectors := selectorRE.FindAllString(expr, -1)
	if len(selectors) == 0 {
		t.Fatal("no label selector")
	}
	for _, sel := range selectors {
		var sources []string
		for _, src := range allowed {
			if strings.Contains(sel, src) {
				sources = append(sources, src)
			}
		}
		if len(sources) != 1 {
			t.Errorf("selector %s: got sources %q, want exactly one of %q", sel, sources, allowed)
			continue
		}
		if slices.Contains(filtered, sources[0]) && !strings.Contains(sel, instanceFilter) {
			t.Errorf("selector %s: got no %s", sel, instanceFilter)
		}
	}
	if bare := bareNames(expr); len(bare) > 0 {
		t.Errorf("names without a selector: %q", bare)
	}
}

// TestRangesUseGrafanaVariables keeps hard-coded windows out of the queries:
// $__rate_interval follows the zoom and never falls under four scrapes, and
// $__range is the time range for totals. (The 5m of the recorded series is
// the recording rules' business.)
func TestRangesUseGrafanaVariables(t *testing.T) {
	for _, file := range dashboardFiles() {
		for _, p := range loadDashboardFile(t, file).allPanels() {
			for _, tg := range p.Targets {
				for _, m := range rangeRE.FindAllStringSubmatch(tg.Expr, -1) {
					if m[1] != "$__rate_interval" && m[1] != "$__range" {
						t.Errorf("%s %q/%s: range [%s], want [$__rate_interval] or [$__range]", file, p.Title, tg.RefID, m[1])
					}
				}
			}
		}
	}
}

// TestRecordedSeriesExist checks that every recorded series (a name with a
// colon) the dashboard reads is one the recording rules produce.
func TestRecordedSeriesExist(t *testing.T) {
	recorded := recordedSeries(t)
	for _, file := range dashboardFiles() {
		for _, p := range loadDashboardFile(t, file).allPanels() {
			for _, tg := range p.Targets {
				for _, name := range metricNames(tg.Expr) {
					if strings.Contains(name, ":") && !recorded[name] {
						t.Errorf("%s %q/%s reads %s, which no recording rule records", file, p.Title, tg.RefID, name)
					}
				}
			}
		}
	}
}

// TestExemplars: the two latency panels fetch the exemplars of the gateway's
// latency histograms, whose trace_id links to Jaeger, and only queries that
// read a raw histogram ask for exemplars (a recorded series has none, so the
// request would be wasted and the panel would show no dots).
func TestExemplars(t *testing.T) {
	want := map[string]string{
		titleRequestLatency: "http_request_duration_seconds_bucket",
		titleModelLatency:   "model_inference_duration_seconds_bucket",
	}
	found := map[string]bool{}
	for _, p := range loadDashboard(t).allPanels() {
		for _, tg := range p.Targets {
			if !tg.Exemplar {
				continue
			}
			names := metricNames(tg.Expr)
			if !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, "_bucket") }) ||
				slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, ":") }) {
				t.Errorf("%q/%s asks for exemplars but reads %q, not only raw histogram buckets", p.Title, tg.RefID, names)
			}
			if histogram, ok := want[p.Title]; ok && readsSeries(tg.Expr, histogram) {
				found[p.Title] = true
			}
		}
	}
	for title, histogram := range want {
		if !found[title] {
			t.Errorf("%q: no query reads %s with exemplars", title, histogram)
		}
	}
}

// bareNames returns the names in expr that are neither PromQL words nor
// followed by a label selector.
func bareNames(expr string) []string {
	s := groupingRE.ReplaceAllString(expr, "")
	s = selectorRE.ReplaceAllString(s, "{}")
	s = rangeRE.ReplaceAllString(s, "[]")
	var bare []string
	for _, loc := range tokenRE.FindAllStringIndex(s, -1) {
		word := s[loc[0]:loc[1]]
		if word[0] >= '0' && word[0] <= '9' || promqlWords[word] {
			continue
		}
		if loc[1] < len(s) && s[loc[1]] == '{' {
			continue
		}
		bare = append(bare, word)
	}
	return bare
}

// metricNames returns the names of the series expr selects.
func metricNames(expr string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)\{`).FindAllStringSubmatch(expr, -1) {
		names = append(names, m[1])
	}
	return names
}

// readsSeries reports whether expr selects the series name.
func readsSeries(expr, name string) bool { return slices.Contains(metricNames(expr), name) }

func titles(panels []panel) []string {
	var out []string
	for _, p := range panels {
		out = append(out, p.Title)
	}
	return out
}

// walkJSON calls fn for every object member of tree, depth first, with the
// member's JSON path.
func walkJSON(tree any, path string, fn func(path, key string, value any)) {
	switch v := tree.(type) {
	case map[string]any:
		for k, child := range v {
			p := path + "." + k
			fn(p, k, child)
			walkJSON(child, p, fn)
		}
	case []any:
		for i, child := range v {
			walkJSON(child, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// firstDifferentLine is the 1-based number of the first line where a and b differ.
func firstDifferentLine(a, b []byte) int {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(al), len(bl)) {
		if !bytes.Equal(al[i], bl[i]) {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// storeDashboardSpec is what the stores' dashboards must hold: their
// identity, their instance variable, and each panel reading the real metric
// names of MinIO's v2 metrics or of prometheus-mysqld-exporter (names both
// Debian bookworm's 0.14 and upstream's 0.18 export).
var storeDashboardSpec = []struct {
	file, title, uid, instanceQuery string
	panels                          []panelSpec
}{
	{
		file: minioDashboardFile, title: "MinIO", uid: "minio",
		instanceQuery: `label_values(up{job="minio"}, instance)`,
		panels: []panelSpec{
			{title: "Cluster Health", typ: "stat", reads: []string{"minio_cluster_health_status"}},
			{title: "Nodes (online / offline)", typ: "stat", reads: []string{"minio_cluster_nodes_online_total", "minio_cluster_nodes_offline_total"}},
			{title: "Drives (online / offline)", typ: "stat", reads: []string{"minio_cluster_drive_online_total", "minio_cluster_drive_offline_total"}},
			{title: "Usable Capacity Used", typ: "gauge", unit: "percentunit", reads: []string{"minio_cluster_capacity_usable_free_bytes", "minio_cluster_capacity_usable_total_bytes"}},
			{title: "Usable Capacity (used vs free)", typ: "timeseries", unit: "bytes", reads: []string{"minio_cluster_capacity_usable_free_bytes", "minio_cluster_capacity_usable_total_bytes"}},
			{title: "Erasure Sets: Online Drives vs Write Quorum", unit: "short", reads: []string{"minio_cluster_health_erasure_set_online_drives", "minio_cluster_health_erasure_set_write_quorum"}},
			{title: "Bucket Usage", typ: "bargauge", unit: "bytes", reads: []string{"minio_bucket_usage_total_bytes"}},
			{title: "Objects by Bucket", typ: "bargauge", reads: []string{"minio_bucket_usage_object_total"}},
			{title: "S3 Requests by API", unit: "reqps", reads: []string{"minio_s3_requests_total"}},
			{title: "S3 Errors by API", unit: "reqps", reads: []string{"minio_s3_requests_errors_total", "minio_s3_requests_4xx_errors_total"}},
			{title: "S3 Traffic (in / out)", unit: "Bps", reads: []string{"minio_s3_traffic_received_bytes", "minio_s3_traffic_sent_bytes"}},
		},
	},
	{
		file: mysqlDashboardFile, title: "MariaDB / MySQL", uid: "mysql",
		instanceQuery: `label_values(up{job="mysqld"}, instance)`,
		panels: []panelSpec{
			{title: "MySQL Up", typ: "stat", reads: []string{"mysql_up"}},
			{title: "Uptime", typ: "stat", unit: "s", reads: []string{"mysql_global_status_uptime"}},
			{title: "Connection Usage", typ: "gauge", unit: "percentunit", reads: []string{"mysql_global_status_threads_connected", "mysql_global_variables_max_connections"}},
			{title: "Connections vs max_connections", reads: []string{"mysql_global_status_threads_connected", "mysql_global_variables_max_connections"}},
			{title: "Queries per Second", reads: []string{"mysql_global_status_queries", "mysql_global_status_commands_total"}},
			{title: "Slow Queries", reads: []string{"mysql_global_status_slow_queries"}},
			{title: "InnoDB Buffer Pool Usage", unit: "percentunit", reads: []string{"mysql_global_status_innodb_buffer_pool_bytes_data", "mysql_global_variables_innodb_buffer_pool_size"}},
			{title: "InnoDB Buffer Pool Hit Ratio", unit: "percentunit", reads: []string{"mysql_global_status_innodb_buffer_pool_reads", "mysql_global_status_innodb_buffer_pool_read_requests"}},
			{title: "Replication Lag", unit: "s", reads: []string{"mysql_slave_status_seconds_behind_master"}},
		},
	},
}

func TestStoreDashboards(t *testing.T) {
	for _, spec := range storeDashboardSpec {
		t.Run(spec.file, func(t *testing.T) {
			d := loadDashboardFile(t, spec.file)
			if d.Title != spec.title || d.UID != spec.uid {
				t.Errorf("title %q uid %q, want %q and %q", d.Title, d.UID, spec.title, spec.uid)
			}
			if len(d.Tags) == 0 || d.SchemaVersion != schemaVersion || d.Refresh == "" {
				t.Errorf("tags %q, schemaVersion %d, refresh %q: want tags, %d and a refresh", d.Tags, d.SchemaVersion, d.Refresh, schemaVersion)
			}
			ds, ok := d.variable("datasource")
			if !ok || ds.Type != "datasource" || ds.Query != "prometheus" {
				t.Errorf("datasource variable %+v, want one listing Prometheus datasources", ds)
			}
			inst, ok := d.variable("instance")
			if !ok || inst.Type != "query" || inst.Query != spec.instanceQuery || !inst.Multi || !inst.IncludeAll ||
				inst.Datasource == nil || *inst.Datasource != wantDatasource {
				t.Errorf("instance variable %+v, want a multi-select with All of %s on ${datasource}", inst, spec.instanceQuery)
			}
			// The spec's panels, in order, and no others.
			panels := d.allPanels()
			if got, want := titles(panels), func() (w []string) {
				for _, p := range spec.panels {
					w = append(w, p.title)
				}
				return w
			}(); !slices.Equal(got, want) {
				t.Fatalf("panels %q, want %q", got, want)
			}
			for i, p := range spec.panels {
				p.check(t, panels[i])
			}
		})
	}
}
