package main

// The dashboards of the model lifecycle's stores, which the compose stack runs
// with `--profile mlops`: MinIO (the Triton model repository and MLflow's
// artifacts) and MariaDB (MLflow's tracking and registry), read from MinIO's
// v2 metrics and prometheus-mysqld-exporter. Both have the same two variables
// as the gateway's dashboard, and every selector names its scrape job and
// follows $instance.

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/gauge"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
)

const (
	minioDashboardTitle = "MinIO"
	minioDashboardUID   = "minio"
	mysqlDashboardTitle = "MariaDB / MySQL"
	mysqlDashboardUID   = "mysql"

	// minioInstanceQuery and mysqlInstanceQuery list the scraped servers.
	// MinIO's two jobs (cluster and bucket metrics) name their target alike
	// (prometheus.yml), so one $instance filters both.
	minioInstanceQuery = `label_values(up{job="minio"}, instance)`
	mysqlInstanceQuery = `label_values(up{job="mysqld"}, instance)`
)

// The scrape jobs of the mlops profile (prometheus.yml), each with the
// $instance filter.
const (
	minioMatchers       = `job="minio", instance=~"$instance"`
	minioBucketMatchers = `job="minio_bucket", instance=~"$instance"`
	mysqlMatchers       = `job="mysqld", instance=~"$instance"`
)

// minio, minioBucket and mysql select a metric of the chosen servers.
func minio(metric string) string       { return metric + "{" + minioMatchers + "}" }
func minioBucket(metric string) string { return metric + "{" + minioBucketMatchers + "}" }
func mysql(metric string) string       { return metric + "{" + mysqlMatchers + "}" }

// perInstance is the largest value of a series per instance: a cluster-wide
// MinIO figure carries the label of the server that computed it, and one
// value per instance is what the panels show.
func perInstance(selector string) string { return "max by (instance) (" + selector + ")" }

// Panel titles of the MinIO dashboard.
const (
	titleMinIOHealth      = "Cluster Health"
	titleMinIONodes       = "Nodes (online / offline)"
	titleMinIODrives      = "Drives (online / offline)"
	titleMinIOCapacityPct = "Usable Capacity Used"
	titleMinIOCapacity    = "Usable Capacity (used vs free)"
	titleMinIOErasureSets = "Erasure Sets: Online Drives vs Write Quorum"
	titleMinIORequests    = "S3 Requests by API"
	titleMinIOErrors      = "S3 Errors by API"
	titleMinIOTraffic     = "S3 Traffic (in / out)"
	titleMinIOBucketBytes = "Bucket Usage"
	titleMinIOBucketObjs  = "Objects by Bucket"
)

// Panel titles of the MariaDB / MySQL dashboard.
const (
	titleMySQLUp          = "MySQL Up"
	titleMySQLUptime      = "Uptime"
	titleMySQLConnUsage   = "Connection Usage"
	titleMySQLConnections = "Connections vs max_connections"
	titleMySQLQueries     = "Queries per Second"
	titleMySQLSlow        = "Slow Queries"
	titleMySQLPoolUsage   = "InnoDB Buffer Pool Usage"
	titleMySQLPoolHits    = "InnoDB Buffer Pool Hit Ratio"
	titleMySQLReplication = "Replication Lag"
)

// storeDashboard is a dashboard of one of the stores with the common settings
// and the two variables.
func storeDashboard(title, uid, description, instanceQuery, instanceLabel string, tags []string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags(tags).
		Refresh("30s").
		Time("now-3h", "now").
		Timezone("browser").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(datasourceVariableBuilder()).
		WithVariable(instanceVariableBuilder(instanceQuery, instanceLabel, "The servers the panels show."))
}

// finish builds a dashboard and numbers its panels.
func finish(b *dashboard.DashboardBuilder, name string) (dashboard.Dashboard, error) {
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("build %s dashboard: %w", name, err)
	}
	d.SchemaVersion = schemaVersion
	numberPanels(d.Panels)
	return d, nil
}

// buildMinIODashboard: health first (cluster, nodes, drives, capacity), then
// space by drive and by bucket, then the S3 API's requests, errors and traffic.
func buildMinIODashboard() (dashboard.Dashboard, error) {
	b := storeDashboard(minioDashboardTitle, minioDashboardUID,
		"MinIO, the S3 store of the model lifecycle (Triton's model repository, MLflow's artifacts): health of the cluster, its nodes and drives, capacity, bucket usage, and the S3 API's requests, errors and traffic. From MinIO's v2 metrics (jobs minio and minio_bucket).",
		minioInstanceQuery, "MinIO server", []string{"fish-classifier", "mlops", "minio"})

	health := stat.NewPanelBuilder().
		Title(titleMinIOHealth).
		Description("Whether MinIO reports the cluster healthy (minio_cluster_health_status): enough drives and nodes online for write quorum.").
		Datasource(datasourceRef()).
		Height(statH).Span(statW).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		Thresholds(thresholds(step("red", nil), step("green", cog.ToPtr(1.0)))).
		Mappings(upDownMapping("healthy", "unhealthy")).
		GraphMode(common.BigValueGraphModeNone).
		ColorMode(common.BigValueColorModeBackground).
		TextMode(common.BigValueTextModeValue).
		ReduceOptions(lastValue()).
		WithTarget(instantQuery("A", perInstance(minio("minio_cluster_health_status")), "{{instance}}"))

	nodes := countStat(titleMinIONodes, "MinIO servers of the cluster that answer and that do not.",
		"minio_cluster_nodes_online_total", "minio_cluster_nodes_offline_total")

	drives := countStat(titleMinIODrives, "Drives of the cluster MinIO counts online and offline. One offline drive fires MinIODriveOffline.",
		"minio_cluster_drive_online_total", "minio_cluster_drive_offline_total")

	usedShare := `1 - ` + perInstance(minio("minio_cluster_capacity_usable_free_bytes")) +
		` / ` + perInstance(minio("minio_cluster_capacity_usable_total_bytes"))
	capacityPct := gauge.NewPanelBuilder().
		Title(titleMinIOCapacityPct).
		Description("Share of the usable capacity (after erasure coding) in use. MinIOClusterCapacityNearlyFull fires below 10% free.").
		Datasource(datasourceRef()).
		Height(statH).Span(statW).
		Unit("percentunit").Decimals(1).Min(0).Max(1).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		Thresholds(thresholds(step("green", nil), step("yellow", cog.ToPtr(0.8)), step("red", cog.ToPtr(0.9)))).
		ReduceOptions(lastValue()).
		ShowThresholdMarkers(true).
		WithTarget(instantQuery("A", usedShare, "{{instance}}"))

	capacity := timeSeries(titleMinIOCapacity, "Usable capacity in use and free, by server. Dashed: free.", "bytes").
		Min(0).
		WithTarget(query("A", perInstance(minio("minio_cluster_capacity_usable_total_bytes"))+` - `+perInstance(minio("minio_cluster_capacity_usable_free_bytes")), "used {{instance}}")).
		WithTarget(query("B", perInstance(minio("minio_cluster_capacity_usable_free_bytes")), "free {{instance}}")).
		OverrideByRegexp("^free ", dashed())

	// Per-drive space is on MinIO's node endpoint, which is not scraped; the
	// cluster endpoint has each erasure set's health.
	driveUsage := timeSeries(titleMinIOErasureSets, "Online drives of each erasure set against the number it needs to accept writes (dashed): a set at or under its write quorum refuses uploads, one below its read quorum refuses reads too.", "short").
		Min(0).
		WithTarget(query("A", `min by (pool, set) (`+minio("minio_cluster_health_erasure_set_online_drives")+`)`, "pool {{pool}} set {{set}} online")).
		WithTarget(query("B", `max by (pool, set) (`+minio("minio_cluster_health_erasure_set_write_quorum")+`)`, "pool {{pool}} set {{set}} write quorum")).
		OverrideByRegexp(" write quorum$", dashed())

	requests := timeSeries(titleMinIORequests, "S3 requests per second, by API call (GetObject, PutObject, ListObjectsV2, ...).", "reqps").
		Min(0).
		WithTarget(query("A", `sum by (api) (`+rate(minio("minio_s3_requests_total"))+`)`, "{{api}}"))

	// MinIO exports its 4xx and 5xx counters from the first such answer on;
	// 4xx come first in practice (a read of a missing object).
	errors := timeSeries(titleMinIOErrors, "S3 requests answered with an error per second, by API call (4xx and 5xx); dashed: the 4xx of all calls, the clients' mistakes (missing objects, denied access): what lies above the dashed line is MinIO's own failures.", "reqps").
		Min(0).
		WithTarget(query("A", `sum by (api) (`+rate(minio("minio_s3_requests_errors_total"))+`)`, "{{api}}")).
		WithTarget(query("B", `sum(`+rate(minio("minio_s3_requests_4xx_errors_total"))+`)`, "4xx all APIs")).
		OverrideByRegexp("^4xx ", dashed())

	traffic := timeSeries(titleMinIOTraffic, "Bytes per second received (uploads) and sent (downloads: Triton loading models, MLflow serving artifacts) by the S3 API.", "Bps").
		Min(0).Span(fullWidth).
		WithTarget(query("A", `sum(`+rate(minio("minio_s3_traffic_received_bytes"))+`)`, "received")).
		WithTarget(query("B", `sum(`+rate(minio("minio_s3_traffic_sent_bytes"))+`)`, "sent"))

	bucketBytes := bucketBar(titleMinIOBucketBytes, "Bytes stored per bucket, largest first: triton-models holds the published models, mlflow the runs' artifacts. MinIO's scanner updates the figure, minutes behind the writes.", "bytes",
		`sort_desc(max by (bucket) (`+minioBucket("minio_bucket_usage_total_bytes")+`))`)

	bucketObjects := bucketBar(titleMinIOBucketObjs, "Objects per bucket, most first (as counted by MinIO's scanner).", "short",
		`sort_desc(max by (bucket) (`+minioBucket("minio_bucket_usage_object_total")+`))`)

	for _, p := range []cog.Builder[dashboard.Panel]{
		health, nodes, drives, capacityPct,
		capacity, driveUsage,
		bucketBytes, bucketObjects,
		requests, errors,
		traffic,
	} {
		b.WithPanel(p)
	}
	return finish(b, "MinIO")
}

// buildMySQLDashboard: up and connections first, then the query load, then
// InnoDB's buffer pool and replication.
func buildMySQLDashboard() (dashboard.Dashboard, error) {
	b := storeDashboard(mysqlDashboardTitle, mysqlDashboardUID,
		"MariaDB, MLflow's backend store (runs, parameters, metrics, the model registry): availability, connections against max_connections, query load, slow queries, InnoDB's buffer pool and replication. From prometheus-mysqld-exporter (job mysqld).",
		mysqlInstanceQuery, "Exporter", []string{"fish-classifier", "mlops", "mysql"})

	up := stat.NewPanelBuilder().
		Title(titleMySQLUp).
		Description("Whether the exporter can connect to MariaDB (mysql_up). MySQLDown fires on 0, and when the exporter itself is down or gone.").
		Datasource(datasourceRef()).
		Height(statH).Span(statW).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		Thresholds(thresholds(step("red", nil), step("green", cog.ToPtr(1.0)))).
		Mappings(upDownMapping("up", "down")).
		GraphMode(common.BigValueGraphModeNone).
		ColorMode(common.BigValueColorModeBackground).
		TextMode(common.BigValueTextModeValue).
		ReduceOptions(lastValue()).
		WithTarget(instantQuery("A", perInstance(mysql("mysql_up")), "{{instance}}"))

	uptime := stat.NewPanelBuilder().
		Title(titleMySQLUptime).
		Description("Time since MariaDB started: a small value after an incident means it restarted.").
		Datasource(datasourceRef()).
		Height(statH).Span(statW).
		Unit("s").Decimals(0).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdFixed).FixedColor("blue")).
		GraphMode(common.BigValueGraphModeNone).
		ColorMode(common.BigValueColorModeValue).
		TextMode(common.BigValueTextModeValue).
		ReduceOptions(lastValue()).
		WithTarget(instantQuery("A", perInstance(mysql("mysql_global_status_uptime")), "{{instance}}"))

	connShare := perInstance(mysql("mysql_global_status_threads_connected")) + ` / ` + perInstance(mysql("mysql_global_variables_max_connections"))
	connUsage := gauge.NewPanelBuilder().
		Title(titleMySQLConnUsage).
		Description("Open connections as a share of max_connections. MySQLConnectionsNearLimit fires above 80%.").
		Datasource(datasourceRef()).
		Height(statH).Span(2 * statW).
		Unit("percentunit").Decimals(1).Min(0).Max(1).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		Thresholds(thresholds(step("green", nil), step("yellow", cog.ToPtr(0.7)), step("red", cog.ToPtr(0.8)))).
		ReduceOptions(lastValue()).
		ShowThresholdMarkers(true).
		WithTarget(instantQuery("A", connShare, "{{instance}}"))

	connections := timeSeries(titleMySQLConnections, "Open connections, those running a statement, and the max_connections limit (dashed), by instance.", "short").
		Min(0).Decimals(0).
		WithTarget(query("A", perInstance(mysql("mysql_global_status_threads_connected")), "connected {{instance}}")).
		WithTarget(query("B", perInstance(mysql("mysql_global_status_threads_running")), "running {{instance}}")).
		WithTarget(query("C", perInstance(mysql("mysql_global_variables_max_connections")), "max_connections {{instance}}")).
		OverrideByRegexp("^max_connections ", dashed())

	queries := timeSeries(titleMySQLQueries, "Statements executed per second (the server's Queries counter), and the five most frequent commands.", "ops").
		Min(0).
		WithTarget(query("A", `sum by (instance) (`+rate(mysql("mysql_global_status_queries"))+`)`, "all {{instance}}")).
		WithTarget(query("B", `topk(5, sum by (command) (`+rate(mysql("mysql_global_status_commands_total"))+`))`, "{{command}}"))

	slow := timeSeries(titleMySQLSlow, "Statements per second that took longer than long_query_time (the Slow_queries counter), by instance.", "ops").
		Min(0).
		WithTarget(query("A", `sum by (instance) (`+rate(mysql("mysql_global_status_slow_queries"))+`)`, "{{instance}}"))

	poolUsage := timeSeries(titleMySQLPoolUsage, "Share of InnoDB's buffer pool (innodb_buffer_pool_size) holding data pages, by instance.", "percentunit").
		Min(0).Max(1).
		WithTarget(query("A",
			perInstance(mysql("mysql_global_status_innodb_buffer_pool_bytes_data"))+` / `+perInstance(mysql("mysql_global_variables_innodb_buffer_pool_size")),
			"{{instance}}"))

	poolHits := timeSeries(titleMySQLPoolHits, "Share of InnoDB's page reads served from the buffer pool rather than the disk, by instance. A fall means the working set outgrew the pool.", "percentunit").
		Max(1).
		WithTarget(query("A",
			`1 - sum by (instance) (`+rate(mysql("mysql_global_status_innodb_buffer_pool_reads"))+`) / sum by (instance) (`+rate(mysql("mysql_global_status_innodb_buffer_pool_read_requests"))+`)`,
			"{{instance}}"))

	replication := timeSeries(titleMySQLReplication, "Seconds a replica's SQL thread is behind its primary (Seconds_Behind_Master). Empty on a server that is not a replica, as the compose stack's is not.", "s").
		Min(0).
		WithTarget(query("A", perInstance(mysql("mysql_slave_status_seconds_behind_master")), "{{instance}}"))

	for _, p := range []cog.Builder[dashboard.Panel]{
		up, uptime, connUsage,
		connections, queries,
		slow, poolUsage,
		poolHits, replication,
	} {
		b.WithPanel(p)
	}
	return finish(b, "MariaDB / MySQL")
}

// Sizes of the stat row at the top of the stores' dashboards.
const (
	statH = 5
	statW = fullWidth / 4
)

// countStat is a stat panel of two MinIO counts (nodes, drives) over the
// chosen servers: online in green, offline in red above zero.
func countStat(title, description, online, offline string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Height(statH).Span(statW).
		Decimals(0).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdFixed).FixedColor("green")).
		OverrideByName("offline", []dashboard.DynamicConfigValue{
			{Id: "color", Value: map[string]any{"mode": "thresholds"}},
			{Id: "thresholds", Value: dashboard.ThresholdsConfig{
				Mode:  dashboard.ThresholdsModeAbsolute,
				Steps: []dashboard.Threshold{step("green", nil), step("red", cog.ToPtr(1.0))},
			}},
		}).
		GraphMode(common.BigValueGraphModeNone).
		ColorMode(common.BigValueColorModeValue).
		TextMode(common.BigValueTextModeValueAndName).
		ReduceOptions(lastValue()).
		WithTarget(instantQuery("A", `sum(`+perInstance(minio(online))+`)`, "online")).
		WithTarget(instantQuery("B", `sum(`+perInstance(minio(offline))+`)`, "offline"))
}

// bucketBar is a horizontal bar gauge of one figure per bucket.
func bucketBar(title, description, unit, expr string) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Height(panelH).Span(halfWidth).
		Unit(unit).Min(0).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdPaletteClassic)).
		Orientation(common.VizOrientationHorizontal).
		DisplayMode(common.BarGaugeDisplayModeBasic).
		ValueMode(common.BarGaugeValueModeText).
		NamePlacement(common.BarGaugeNamePlacementLeft).
		ShowUnfilled(true).
		ReduceOptions(lastValue()).
		WithTarget(instantQuery("A", expr, "{{bucket}}"))
}

// upDownMapping names the values 1 and 0 of a health gauge.
func upDownMapping(up, down string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"1": mapping(up, "green", 0),
			"0": mapping(down, "red", 1),
		},
	}}}
}
