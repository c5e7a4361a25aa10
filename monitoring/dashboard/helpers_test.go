package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The tests read the dashboard as Grafana does, from JSON, into the few
// fields they check; they do not reuse the SDK's types, so a field the SDK
// named wrongly would show.

type dashboardJSON struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Tags          []string `json:"tags"`
	Refresh       string   `json:"refresh"`
	SchemaVersion int      `json:"schemaVersion"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []variableJSON `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variableJSON struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      string          `json:"query"`
	Datasource *datasourceJSON `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	Refresh    int             `json:"refresh"`
}

type panel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Collapsed   bool            `json:"collapsed"`
	GridPos     gridPos         `json:"gridPos"`
	Datasource  *datasourceJSON `json:"datasource"`
	Targets     []target        `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels          []panel `json:"panels"` // a row's panels, when it is collapsed
	Transformations []struct {
		ID      string         `json:"id"`
		Options map[string]any `json:"options"`
	} `json:"transformations"`
}

type target struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Exemplar   bool            `json:"exemplar"`
	Instant    bool            `json:"instant"`
	Format     string          `json:"format"`
	Datasource *datasourceJSON `json:"datasource"`
}

type datasourceJSON struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

func (g gridPos) overlaps(o gridPos) bool {
	return g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H
}

// loadDashboard reads the committed gateway dashboard.
func loadDashboard(t *testing.T) dashboardJSON {
	t.Helper()
	return loadDashboardFile(t, mainDashboardFile)
}

// loadDashboardFile reads a committed dashboard by its file name.
func loadDashboardFile(t *testing.T, file string) dashboardJSON {
	t.Helper()
	path := committedFile(file)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read dashboard: %v", err)
	}
	var d dashboardJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return d
}

// committedFile is where a dashboard of that file name is committed,
// relative to this package.
func committedFile(file string) string { return filepath.Join(filepath.Dir(committedDashboard), file) }

// allPanels returns every panel, rows included, with the panels nested in
// collapsed rows after their row.
func (d dashboardJSON) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

type row struct {
	title  string
	panels []panel
}

// byRow splits the panels into those above the first row and each row's: a
// row's panels are those nested in it (collapsed) and the top-level panels
// after it up to the next row (expanded).
func (d dashboardJSON) byRow() (before []panel, rows []row) {
	for _, p := range d.Panels {
		switch {
		case p.Type == "row":
			rows = append(rows, row{title: p.Title, panels: append([]panel(nil), p.Panels...)})
		case len(rows) == 0:
			before = append(before, p)
		default:
			rows[len(rows)-1].panels = append(rows[len(rows)-1].panels, p)
		}
	}
	return before, rows
}

func (d dashboardJSON) variable(name string) (variableJSON, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return variableJSON{}, false
}

func (d dashboardJSON) variableNames() []string {
	var names []string
	for _, v := range d.Templating.List {
		names = append(names, v.Name)
	}
	return names
}

func (p panel) exprs() []string {
	var out []string
	for _, t := range p.Targets {
		out = append(out, t.Expr)
	}
	return out
}

// recordedSeries returns the names the recording rules record.
func recordedSeries(t *testing.T) map[string]bool {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join("..", "prometheus", "rules", "recording.yml"), &rules)
	recorded := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	if len(recorded) == 0 {
		t.Fatal("the recording rules record nothing")
	}
	return recorded
}

// readYAML decodes the YAML file at path into v, ignoring fields v lacks.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	decodeYAML(t, path, v, false)
}

// readYAMLStrict decodes the YAML file at path into v and fails on a field v
// lacks: a misspelt key in a provisioning file is silently ignored by Grafana.
func readYAMLStrict(t *testing.T, path string, v any) {
	t.Helper()
	decodeYAML(t, path, v, true)
}

func decodeYAML(t *testing.T, path string, v any, knownFieldsOnly bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(knownFieldsOnly)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}
