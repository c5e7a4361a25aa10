package main

import (
	"path"
	"path/filepath"
	"testing"
)

// provisioningDir is monitoring/grafana/provisioning, which docker compose
// mounts at grafanaProvisioningMount.
var provisioningDir = filepath.Join("..", "grafana", "provisioning")

const grafanaProvisioningMount = "/etc/grafana/provisioning"

func TestDatasourceProvisioning(t *testing.T) {
	var file struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string `yaml:"name"`
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			Access    string `yaml:"access"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
			Editable  bool   `yaml:"editable"`
			JSONData  struct {
				TimeInterval                string `yaml:"timeInterval"`
				HTTPMethod                  string `yaml:"httpMethod"`
				ExemplarTraceIDDestinations []struct {
					Name          string `yaml:"name"`
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"exemplarTraceIdDestinations"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAMLStrict(t, filepath.Join(provisioningDir, "datasources", "prometheus.yml"), &file)
	if len(file.Datasources) != 1 {
		t.Fatalf("got %d datasources, want 1", len(file.Datasources))
	}
	ds := file.Datasources[0]
	tests := []struct {
		field     string
		got, want any
	}{
		{"apiVersion", file.APIVersion, 1},
		{"name", ds.Name, "Prometheus"},
		{"uid", ds.UID, "prometheus"},
		// The dashboard's $datasource variable lists datasources of this type.
		{"type", ds.Type, wantDatasource.Type},
		{"access", ds.Access, "proxy"},
		{"url", ds.URL, "http://prometheus:9090"},
		{"isDefault", ds.IsDefault, true},
		{"jsonData.timeInterval", ds.JSONData.TimeInterval, "15s"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}

	// An exemplar's trace_id label (the gateway's histograms carry one)
	// links to that trace in the provisioned Jaeger datasource.
	jaeger := jaegerDatasource(t)
	dests := ds.JSONData.ExemplarTraceIDDestinations
	if len(dests) != 1 || dests[0].Name != exemplarTraceLabel || dests[0].DatasourceUID != jaeger.UID {
		t.Errorf("exemplarTraceIdDestinations %+v, want one: label %s to datasource uid %s", dests, exemplarTraceLabel, jaeger.UID)
	}
}

// exemplarTraceLabel is the exemplar label the gateway's histograms put the
// trace id in.
const exemplarTraceLabel = "trace_id"

// provisionedDatasource is the part of a datasource provisioning entry the
// Jaeger test reads.
type provisionedDatasource struct {
	Name     string `yaml:"name"`
	UID      string `yaml:"uid"`
	Type     string `yaml:"type"`
	Access   string `yaml:"access"`
	URL      string `yaml:"url"`
	Editable bool   `yaml:"editable"`
}

// jaegerDatasource reads the one datasource of jaeger.yml.
func jaegerDatasource(t *testing.T) provisionedDatasource {
	t.Helper()
	var file struct {
		APIVersion  int                     `yaml:"apiVersion"`
		Datasources []provisionedDatasource `yaml:"datasources"`
	}
	readYAMLStrict(t, filepath.Join(provisioningDir, "datasources", "jaeger.yml"), &file)
	if file.APIVersion != 1 || len(file.Datasources) != 1 {
		t.Fatalf("jaeger.yml: apiVersion %d, %d datasources; want 1 and 1", file.APIVersion, len(file.Datasources))
	}
	return file.Datasources[0]
}

// TestJaegerDatasourceProvisioning: Grafana reads traces from the compose
// stack's Jaeger query service, under the uid the exemplar links name.
func TestJaegerDatasourceProvisioning(t *testing.T) {
	ds := jaegerDatasource(t)
	want := provisionedDatasource{Name: "Jaeger", UID: "jaeger", Type: "jaeger", Access: "proxy", URL: "http://jaeger:16686"}
	if ds != want {
		t.Errorf("got %+v, want %+v", ds, want)
	}
}

func TestDashboardProvisioning(t *testing.T) {
	var file struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string `yaml:"name"`
			OrgID                 int    `yaml:"orgId"`
			Folder                string `yaml:"folder"`
			Type                  string `yaml:"type"`
			DisableDeletion       bool   `yaml:"disableDeletion"`
			AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAMLStrict(t, filepath.Join(provisioningDir, "dashboards", "dashboard.yml"), &file)
	if len(file.Providers) != 1 {
		t.Fatalf("got %d providers, want 1", len(file.Providers))
	}
	p := file.Providers[0]

	// The provider must load the folder the generated JSON is committed in,
	// as Grafana's container sees it.
	rel, err := filepath.Rel(provisioningDir, filepath.Dir(committedDashboard))
	if err != nil {
		t.Fatal(err)
	}
	wantPath := path.Join(grafanaProvisioningMount, filepath.ToSlash(rel))

	tests := []struct {
		field     string
		got, want any
	}{
		{"apiVersion", file.APIVersion, 1},
		{"type", p.Type, "file"},
		{"options.path", p.Options.Path, wantPath},
		{"allowUiUpdates", p.AllowUIUpdates, false},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if wantPath != "/etc/grafana/provisioning/dashboards" {
		t.Errorf("the dashboard JSON is committed in %s, mounted at %s; want it under the provisioning dashboards folder", rel, wantPath)
	}
}
