package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const (
	dashboardTitle = "Fish Classifier API Monitoring"
	dashboardUID   = "fish-api"

	// datasourceVariable and instanceVariable name the dashboard's variables.
	datasourceVariable = "datasource"
	instanceVariable   = "instance"

	// schemaVersion is the dashboard schema of Grafana 10.4 and 11.0: any
	// Grafana from those on loads the file and migrates it forward in memory,
	// while a newer number would skip migrations on an older Grafana.
	schemaVersion = 39

	// Row titles.
	rowModel      = "Model in Service"
	rowTriton     = "Triton & GPU"
	rowResilience = "Resilience"
)

// generated is one dashboard this package writes: its file name in the
// provisioning folder and the function that builds it.
type generated struct {
	file  string
	build func() (dashboard.Dashboard, error)
}

// Files of the generated dashboards, in monitoring/grafana/provisioning/dashboards.
const (
	mainDashboardFile  = "fish-api-dashboard.json"
	minioDashboardFile = "minio-dashboard.json"
	mysqlDashboardFile = "mysql-dashboard.json"
)

// dashboards are every dashboard this package generates: the gateway's, and
// those of the model lifecycle's stores (the compose stack's mlops profile).
var dashboards = []generated{
	{mainDashboardFile, buildDashboard},
	{minioDashboardFile, buildMinIODashboard},
	{mysqlDashboardFile, buildMySQLDashboard},
}

// render returns the gateway's dashboard as JSON; see renderDashboard.
func render() ([]byte, error) { return renderDashboard(buildDashboard) }

// renderDashboard returns a dashboard as indented JSON with a trailing
// newline. The output is a pure function of this package's code: struct
// fields marshal in declaration order and map keys sorted, so generating twice
// gives the same bytes.
func renderDashboard(build func() (dashboard.Dashboard, error)) ([]byte, error) {
	d, err := build()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	// PromQL's =~ and legend templates read better unescaped in review.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil { // Encode ends with a newline.
		return nil, fmt.Errorf("encode dashboard: %w", err)
	}
	return buf.Bytes(), nil
}

// buildDashboard assembles the dashboard: the product's eight panels first, in
// the product's order, then a row with the model in service and where it comes
// from, a row for Triton and the GPU and a row for the gateway's resilience
// machinery (breaker, shedding, errors, fallback).
func buildDashboard() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder(dashboardTitle).
		Uid(dashboardUID).
		Description("Requests, latency, predictions and resources of the fish classifier gateway, the Triton server and GPU behind it, and the gateway's resilience (circuit breaker, load shedding, fallback).").
		Tags([]string{"fish-classifier", "inference", "triton"}).
		Refresh("10s").
		Time("now-1h", "now").
		Timezone("browser").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(datasourceVariableBuilder()).
		WithVariable(instanceVariableBuilder(instanceQuery, "Gateway instance",
			"Gateway instances the gateway panels show; Triton and container panels are not filtered."))

	for _, p := range productPanels() {
		b.WithPanel(p)
	}
	b.WithRow(dashboard.NewRowBuilder(rowModel))
	for _, p := range modelPanels() {
		b.WithPanel(p)
	}
	b.WithRow(dashboard.NewRowBuilder(rowTriton))
	for _, p := range tritonPanels() {
		b.WithPanel(p)
	}
	b.WithRow(dashboard.NewRowBuilder(rowResilience))
	for _, p := range resiliencePanels() {
		b.WithPanel(p)
	}

	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("build dashboard: %w", err)
	}
	d.SchemaVersion = schemaVersion
	numberPanels(d.Panels)
	return d, nil
}

// instanceQuery lists the gateway instances Prometheus scrapes.
const instanceQuery = `label_values(up{job="fish_api"}, instance)`

// datasourceVariableBuilder is the $datasource variable: any Prometheus.
func datasourceVariableBuilder() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder(datasourceVariable).
		Label("Data source").
		Type("prometheus")
}

// instanceVariableBuilder is the $instance variable: the instances query
// lists, several or all of them at once.
func instanceVariableBuilder(query, label, description string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(instanceVariable).
		Label(label).
		Description(description).
		Datasource(datasourceRef()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
		})
}

// numberPanels gives every panel and row an id, in the order they appear.
// Grafana needs ids unique within the dashboard; numbering in order keeps the
// file free of hand-kept numbers.
func numberPanels(panels []dashboard.PanelOrRowPanel) {
	id := uint32(0)
	next := func() uint32 { id++; return id }
	for _, p := range panels {
		switch {
		case p.Panel != nil:
			p.Panel.Id = cog.ToPtr(next())
		case p.RowPanel != nil:
			p.RowPanel.Id = next()
			for i := range p.RowPanel.Panels {
				p.RowPanel.Panels[i].Id = cog.ToPtr(next())
			}
		}
	}
}
