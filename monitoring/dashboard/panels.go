package main

import (
	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/gauge"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Titles of the product's eight panels, in the product's order. The tests
// check them against the generated file, so they are fixed here once.
const (
	titleRequestRate     = "Requests per Second by Endpoint"
	titleErrorRate       = "Error Rate (5xx)"
	titleRequestLatency  = "Request Latency (p50 & p95)"
	titleModelLatency    = "Model Inference Latency"
	titlePredictions     = "Predictions by Class"
	titleConfidence      = "Prediction Confidence (median)"
	titleContainerCPU    = "Container CPU Usage"
	titleContainerMemory = "Container Memory Usage"
)

// errorRateSLO is the share of 5xx answers at which the error-rate alert fires;
// the gauge turns red there.
const errorRateSLO = 0.05

// Panel sizes on Grafana's 24-column grid.
const (
	fullWidth  = 24
	halfWidth  = 12
	panelH     = 8
	timelineH  = 6
	wideWidth  = 16
	narrowWide = fullWidth - wideWidth
)

// productPanels are the panels the product asked for, in its order.
func productPanels() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		timeSeries(titleRequestRate, "Requests answered per second on the chosen gateway instances, by route template (all statuses).", "reqps").
			Span(wideWidth).
			WithTarget(query("A",
				`sum by (endpoint) (`+gateway("instance_endpoint:http_requests:rate5m")+`)`,
				"{{endpoint}}")),

		gauge.NewPanelBuilder().
			Title(titleErrorRate).
			Description("Share of requests answered with a 5xx over the last 5 minutes, on the worst of the chosen instances. The alert fires at 5% on any one instance; the gauge's scale ends at 10%.").
			Datasource(datasourceRef()).
			Height(panelH).Span(narrowWide).
			Unit("percentunit").Decimals(2).Min(0).Max(2 * errorRateSLO).
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
			Thresholds(thresholds(
				step("green", nil),
				step("yellow", cog.ToPtr(0.01)),
				step("red", cog.ToPtr(errorRateSLO)),
			)).
			ReduceOptions(lastValue()).
			Orientation(common.VizOrientationAuto).
			ShowThresholdMarkers(true).
			WithTarget(instantQuery("A",
				`max(`+gateway("instance:http_requests_5xx:ratio_rate5m")+`)`,
				"5xx share")),

		timeSeries(titleRequestLatency, "Median and 95th percentile time from routing a request to its response, by route template; the highest of the chosen instances (quantiles cannot be averaged). Dashed: p95. \"p95 all routes\" is computed from the raw histogram over the chosen instances, and its query brings the exemplars: each dot is one sampled request, and its trace_id opens that request's trace in Jaeger.", "s").
			WithTarget(query("A",
				`max by (endpoint) (`+gateway("instance_endpoint:http_request_duration_seconds:p50_5m")+`)`,
				"p50 {{endpoint}}")).
			WithTarget(query("B",
				`max by (endpoint) (`+gateway("instance_endpoint:http_request_duration_seconds:p95_5m")+`)`,
				"p95 {{endpoint}}")).
			WithTarget(exemplarQuery("C", histogramP95("http_request_duration_seconds"), "p95 all routes")).
			OverrideByRegexp("^p95 ", dashed()),

		timeSeries(titleModelLatency, "Median and 95th percentile time of one inference call (a whole batch), by the backend that answered: triton, or the embedded onnx. Dashed: p95. \"p95 all backends\" is computed from the raw histogram over the chosen instances, and its query brings the exemplars: each dot is one sampled call, and its trace_id opens the request's trace in Jaeger, Triton's spans included.", "s").
			WithTarget(query("A",
				`max by (backend) (`+gateway("instance_backend:model_inference_duration_seconds:p50_5m")+`)`,
				"p50 {{backend}}")).
			WithTarget(query("B",
				`max by (backend) (`+gateway("instance_backend:model_inference_duration_seconds:p95_5m")+`)`,
				"p95 {{backend}}")).
			WithTarget(exemplarQuery("C", histogramP95("model_inference_duration_seconds"), "p95 all backends")).
			OverrideByRegexp("^p95 ", dashed()),

		// A bar gauge of counts over the whole time range, most frequent first:
		// the distribution is what shows a skew (one class taking over after a
		// model or camera change), it stays readable with dozens of classes
		// where a pie's slices and a per-class rate graph do not, and it is
		// one instant query.
		bargauge.NewPanelBuilder().
			Title(titlePredictions).
			Description("Top-1 predictions by class over the dashboard's time range, most frequent first.").
			Datasource(datasourceRef()).
			Height(panelH).Span(halfWidth).
			Unit("short").Decimals(0).Min(0).
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdPaletteClassic)).
			Orientation(common.VizOrientationHorizontal).
			DisplayMode(common.BarGaugeDisplayModeBasic).
			ValueMode(common.BarGaugeValueModeText).
			NamePlacement(common.BarGaugeNamePlacementLeft).
			ShowUnfilled(true).
			ReduceOptions(lastValue()).
			WithTarget(instantQuery("A",
				`sort_desc(sum by (class) (`+increaseOverRange(gateway("predicted_class_total"))+`))`,
				"{{class}}")),

		timeSeries(titleConfidence, "Median confidence of the top prediction over the last 5 minutes, by instance and model. A fall with no change of model hints at drifting input.", "percentunit").
			Min(0).Max(1).
			WithTarget(query("A",
				gateway("instance_model:prediction_confidence:p50_5m"),
				"{{model}} ({{instance}})")),

		timeSeries(titleContainerCPU, "CPU time the gateway's containers use per second, in cores (1 = one core busy), from cAdvisor.", "short").
			AxisLabel("CPU cores").Min(0).
			WithTarget(query("A",
				`sum by (name) (`+rate(container("container_cpu_usage_seconds_total"))+`)`,
				"{{name}}")),

		timeSeries(titleContainerMemory, "Working set of the gateway's containers (what the kernel would not reclaim, the figure the OOM killer compares with the limit), from cAdvisor.", "bytes").
			Min(0).
			WithTarget(query("A",
				`sum by (name) (`+container("container_memory_working_set_bytes")+`)`,
				"{{name}}")),
	}
}

// Titles of the panels of the "Model in Service" row.
const titleModelInService = "Model in Service and Provenance"

// modelInfoColumns are the labels of model_info the table shows, in order:
// the instance, what it serves, and where the model comes from. The MLflow
// labels are empty for a model that was not published through MLflow.
var modelInfoColumns = []string{"instance", "model", "version", "backend", "model_sha256", "mlflow_run_id", "mlflow_model_version"}

// modelPanels show the model each gateway serves, one row per instance, with
// its weights' sha256 and the MLflow run and registered version it was
// published from.
func modelPanels() []cog.Builder[dashboard.Panel] {
	order := map[string]any{}
	for i, c := range modelInfoColumns {
		order[c] = i
	}
	// Everything else of the series (its name, job, value, time) is hidden.
	hidden := map[string]any{"Time": true, "Value": true, "__name__": true, "job": true}
	return []cog.Builder[dashboard.Panel]{
		table.NewPanelBuilder().
			Title(titleModelInService).
			Description("The model each chosen gateway instance serves (model_info): name, version and the backend answering, the sha256 of its weights, and the MLflow run and registered model version it was published from (empty when it was not published through MLflow). One row per instance: when a new version goes into service, its row replaces the old one.").
			Datasource(datasourceRef()).
			Height(timelineH).Span(fullWidth).
			ShowHeader(true).
			Filterable(false).
			Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})).
			WithTransformation(dashboard.DataTransformerConfig{
				Id: "organize",
				Options: map[string]any{
					"excludeByName": hidden,
					"indexByName":   order,
				},
			}).
			WithTarget(instantQuery("A", gateway("model_info"), "").
				Format(prometheus.PromQueryFormatTable)),
	}
}

// Titles of the panels of the "Triton & GPU" row.
const (
	titleGPUUtilisation = "GPU Utilisation"
	titleGPUMemory      = "GPU Memory (used vs total)"
	titleGPUPower       = "GPU Power (usage vs limit)"
	titleGPUEnergy      = "GPU Energy (time range)"
	titleTritonTimes    = "Triton Queue vs Compute Time per Request"
	titleTritonBatch    = "Triton Average Batch Size"
	titleTritonOutcomes = "Triton Successes and Failures by Reason"
	titleTritonPending  = "Triton Pending Requests"
)

// tritonPanels read Triton's own metrics, scraped from Triton (job "triton").
func tritonPanels() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		timeSeries(titleGPUUtilisation, "Share of time the GPU was busy, by GPU.", "percentunit").
			Min(0).Max(1).
			WithTarget(query("A", triton("nv_gpu_utilization"), "{{gpu_uuid}}")),

		timeSeries(titleGPUMemory, "GPU memory in use and the GPU's total, by GPU. Dashed: total.", "bytes").
			Min(0).
			WithTarget(query("A", triton("nv_gpu_memory_used_bytes"), "used {{gpu_uuid}}")).
			WithTarget(query("B", triton("nv_gpu_memory_total_bytes"), "total {{gpu_uuid}}")).
			OverrideByRegexp("^total ", dashed()),

		timeSeries(titleGPUPower, "Power the GPU draws and its power limit, by GPU. Dashed: limit.", "watt").
			Min(0).Span(wideWidth).
			WithTarget(query("A", triton("nv_gpu_power_usage"), "usage {{gpu_uuid}}")).
			WithTarget(query("B", triton("nv_gpu_power_limit"), "limit {{gpu_uuid}}")).
			OverrideByRegexp("^limit ", dashed()),

		stat.NewPanelBuilder().
			Title(titleGPUEnergy).
			Description("Energy each GPU used over the dashboard's time range.").
			Datasource(datasourceRef()).
			Height(panelH).Span(narrowWide).
			Unit("joule").Decimals(1).
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdFixed).FixedColor("blue")).
			GraphMode(common.BigValueGraphModeNone).
			ColorMode(common.BigValueColorModeValue).
			TextMode(common.BigValueTextModeValueAndName).
			Orientation(common.VizOrientationAuto).
			ReduceOptions(lastValue()).
			WithTarget(instantQuery("A",
				`sum by (gpu_uuid) (`+increaseOverRange(triton("nv_energy_consumption"))+`)`,
				"{{gpu_uuid}}")),

		timeSeries(titleTritonTimes, "Seconds a successful request spent waiting in Triton's scheduler queue and running the model, per request, by model. Dashed: compute. A growing queue with flat compute means Triton needs more instances or larger batches.", "s").
			Min(0).
			WithTarget(query("A",
				triton("instance_model:nv_inference_queue_duration_seconds:per_request_rate5m"),
				"queue {{model}} ({{instance}})")).
			WithTarget(query("B",
				triton("instance_model:nv_inference_compute_infer_duration_seconds:per_request_rate5m"),
				"compute {{model}} ({{instance}})")).
			OverrideByRegexp("^compute ", dashed()),

		timeSeries(titleTritonBatch, "Inferences per model execution: the batch Triton's dynamic batcher formed, on average, by model.", "short").
			Min(0).Decimals(1).
			WithTarget(query("A",
				triton("instance_model:nv_inference_batch_size:avg_rate5m"),
				"{{model}} ({{instance}})")),

		timeSeries(titleTritonOutcomes, "Inference requests Triton answered successfully and those it failed, by reason (REJECTED, CANCELED, BACKEND, OTHER), per second.", "reqps").
			Min(0).
			WithTarget(query("A",
				`sum by (model) (`+rate(triton("nv_inference_request_success"))+`)`,
				"success {{model}}")).
			WithTarget(query("B",
				`sum by (model, reason) (`+rate(triton("nv_inference_request_failure"))+`)`,
				"failure {{model}}: {{reason}}")),

		timeSeries(titleTritonPending, "Requests Triton has received and not yet started to execute, by model.", "short").
			Min(0).Decimals(0).
			WithTarget(query("A",
				`sum by (instance, model) (`+triton("nv_inference_pending_request_count")+`)`,
				"{{model}} ({{instance}})")),
	}
}

// Titles of the panels of the "Resilience" row.
const (
	titleBreakerState    = "Circuit Breaker State"
	titleShedRequests    = "Shed Requests (429)"
	titleFallbackShare   = "Share Served by Fallback"
	titleHTTPErrors      = "HTTP Errors by Code"
	titleInferenceErrors = "Inference Errors by Kind"
	titleSlotWait        = "Queueing for Slots (p95 wait)"
	titleConnections     = "Client Connections"
	titleUploadBytes     = "Upload Bytes Held"
)

// Values of circuit_breaker_state.
const (
	breakerClosed   = "0"
	breakerHalfOpen = "1"
	breakerOpen     = "2"
)

// resiliencePanels show the gateway's defences: the breaker in front of the
// backend, load shedding, errors by kind and the CPU fallback.
func resiliencePanels() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		statetimeline.NewPanelBuilder().
			Title(titleBreakerState).
			Description("State of each circuit breaker in front of the inference backend, by instance: closed (calls pass), half-open (probing), open (calls refused with 503).").
			Datasource(datasourceRef()).
			Height(timelineH).Span(fullWidth).
			// The mappings colour the states; the thresholds say the same
			// for any view that reads thresholds instead.
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
			Thresholds(thresholds(
				step("green", nil),
				step("yellow", cog.ToPtr(1.0)),
				step("red", cog.ToPtr(2.0)),
			)).
			Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
				Type: dashboard.MappingTypeValueToText,
				Options: map[string]dashboard.ValueMappingResult{
					breakerClosed:   mapping("closed", "green", 0),
					breakerHalfOpen: mapping("half-open", "yellow", 1),
					breakerOpen:     mapping("open", "red", 2),
				},
			}}}).
			ShowValue(common.VisibilityModeAuto).
			MergeValues(true).
			Legend(legend()).
			Tooltip(tooltip()).
			WithTarget(query("A", gateway("circuit_breaker_state"), "{{name}} ({{instance}})")),

		timeSeries(titleShedRequests, "Predict requests refused with 429 per second because the gateway already ran its maximum of concurrent requests, by route template.", "reqps").
			Min(0).
			WithTarget(query("A",
				`sum by (endpoint) (`+rate(gateway("http_requests_shed_total"))+`)`,
				"{{endpoint}}")),

		timeSeries(titleFallbackShare, "Share of inference calls answered by the embedded CPU backend because Triton was unavailable, over the last 5 minutes, by instance.", "percentunit").
			Min(0).
			WithTarget(query("A",
				gateway("instance:inference_fallback:ratio_rate5m"),
				"{{instance}}")),

		timeSeries(titleHTTPErrors, "Requests answered with an error per second, by the error code in the JSON body (the kinds the error handler maps to 4xx and 5xx).", "reqps").
			Min(0).
			WithTarget(query("A",
				`sum by (code) (`+rate(gateway("http_request_errors_total"))+`)`,
				"{{code}}")),

		timeSeries(titleInferenceErrors, "Failed inference calls per second, by answering backend and error kind (unavailable, deadline, internal, ...).", "ops").
			Min(0).
			WithTarget(query("A",
				`sum by (backend, kind) (`+rate(gateway("model_inference_errors_total"))+`)`,
				"{{backend}}: {{kind}}")),

		timeSeries(titleSlotWait, "95th percentile of the time requests waited for an inference slot (MAX_CONCURRENT_INFERENCES) and images for a decode slot (one per core): the queueing that keeps memory flat under many connections.", "s").
			Min(0).
			WithTarget(query("A",
				`histogram_quantile(0.95, sum by (slot, le) (`+rate(gateway("classifier_slot_wait_seconds_bucket"))+`))`,
				"{{slot}}")),

		timeSeries(titleConnections, "Open client connections by instance (bounded by HTTP_MAX_CONNECTIONS), and connections per second refused with 503 because that many were open.", "short").
			Min(0).
			WithTarget(query("A", `sum by (instance) (`+gateway("http_connections_open")+`)`, "open ({{instance}})")).
			WithTarget(query("B", `sum by (instance) (`+rate(gateway("http_connections_refused_total"))+`)`, "refused/s ({{instance}})")),

		timeSeries(titleUploadBytes, "Bytes reserved by the bodies of admitted uploads, by instance: bounded by MAX_UPLOAD_BYTES_IN_FLIGHT, beyond which uploads wait and then get 429.", "bytes").
			Min(0).
			WithTarget(query("A", `sum by (instance) (`+gateway("http_upload_bytes_in_flight")+`)`, "{{instance}}")),
	}
}

// timeSeries is a half-width time series panel with the dashboard's common
// settings: the chosen datasource, a legend below and a shared tooltip.
func timeSeries(title, description, unit string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Height(panelH).Span(halfWidth).
		Unit(unit).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(legend()).
		Tooltip(tooltip())
}

func legend() *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().
		DisplayMode(common.LegendDisplayModeList).
		Placement(common.LegendPlacementBottom).
		ShowLegend(true)
}

func tooltip() *common.VizTooltipOptionsBuilder {
	return common.NewVizTooltipOptionsBuilder().
		Mode(common.TooltipDisplayModeMulti).
		Sort(common.SortOrderDescending)
}

// lastValue reduces each series to its last value that is not null.
func lastValue() *common.ReduceDataOptionsBuilder {
	return common.NewReduceDataOptionsBuilder().
		Calcs([]string{"lastNotNull"}).
		Values(false)
}

// dashed draws the overridden series as an unfilled dashed line: the second
// series of a pair (p95 beside p50, a limit beside a usage).
func dashed() []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{
		{Id: "custom.lineStyle", Value: common.LineStyle{
			Fill: cog.ToPtr(common.LineStyleFillDash),
			Dash: []float64{10, 10},
		}},
		{Id: "custom.fillOpacity", Value: 0},
	}
}

func thresholds(steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps(steps)
}

// step is a threshold step; a nil value is the base step (minus infinity).
func step(color string, value *float64) dashboard.Threshold {
	return dashboard.Threshold{Color: color, Value: value}
}

func mapping(text, color string, index int32) dashboard.ValueMappingResult {
	return dashboard.ValueMappingResult{Text: &text, Color: &color, Index: &index}
}
