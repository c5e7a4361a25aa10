package main

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// Every series the dashboard reads comes from one of three scrape sources, and
// every selector names its source. The tests rely on it: a gateway selector
// without the instance filter, or a selector with no source at all, fails them.
const (
	// gatewayMatchers selects the gateway instances chosen in the $instance
	// variable. The recording rules keep job and instance, so the same
	// matchers serve raw series and recorded ones.
	gatewayMatchers = `job="fish_api", instance=~"$instance"`
	// tritonMatchers selects Triton's own metrics (scraped from its :8002).
	tritonMatchers = `job="triton"`
	// containerMatchers selects cAdvisor's series of the gateway's container:
	// cAdvisor exposes Docker labels as container_label_*, and compose labels
	// each container with its service name. Their instance is cAdvisor's, so
	// the $instance filter does not apply.
	containerMatchers = `container_label_com_docker_compose_service="fish_api"`
)

// gateway is a selector of metric on the chosen gateway instances.
func gateway(metric string) string { return metric + "{" + gatewayMatchers + "}" }

// gatewayWhere is gateway with further label matchers.
func gatewayWhere(metric, matchers string) string {
	return metric + "{" + gatewayMatchers + ", " + matchers + "}"
}

// triton is a selector of one of Triton's metrics.
func triton(metric string) string { return metric + "{" + tritonMatchers + "}" }

// container is a selector of a cAdvisor metric of the gateway's container.
func container(metric string) string { return metric + "{" + containerMatchers + "}" }

// rate is a per-second rate over Grafana's $__rate_interval, which is at least
// four scrape intervals (the datasource's timeInterval) and so never too short
// for rate() to find two samples.
func rate(selector string) string { return "rate(" + selector + "[$__rate_interval])" }

// increaseOverRange is the increase of a counter over the dashboard's time range.
func increaseOverRange(selector string) string {
	return "increase(" + selector + "[$__range])"
}

// datasourceRef points at the datasource chosen in the $datasource variable;
// panels and targets all use it, so the dashboard works against any
// Prometheus, not only the provisioned one.
func datasourceRef() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + datasourceVariable + "}")}
}

// query is a range query drawn over time.
func query(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasourceRef()).
		RefId(refID).
		Expr(expr).
		LegendFormat(legend).
		Range()
}

// exemplarQuery is a range query that also fetches the exemplars of the series
// it reads: Grafana draws them as dots, and a dot's trace_id label links to
// the trace in Jaeger (the Prometheus datasource's exemplarTraceIdDestinations).
// Only raw histogram series carry exemplars; a recorded series never does, so
// expr must read the _bucket series itself.
func exemplarQuery(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return query(refID, expr, legend).Exemplar(true)
}

// histogramP95 is the 95th percentile of a histogram over the chosen gateway
// instances together, from its raw buckets.
func histogramP95(histogram string) string {
	return `histogram_quantile(0.95, sum by (le) (` + rate(gateway(histogram+"_bucket")) + `))`
}

// instantQuery is evaluated once, at the end of the time range: for panels
// that show one number per series (gauges, bar gauges, stats).
func instantQuery(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasourceRef()).
		RefId(refID).
		Expr(expr).
		LegendFormat(legend).
		Instant()
}
