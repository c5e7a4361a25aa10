package httpapi

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fish-classifier/fish-classifier/internal/exemplars"
)

// endpointUnmatched is the endpoint label of a request that matched no route
// (404, 405, or refused by the server before routing), so raw paths never
// become label values.
const endpointUnmatched = "unmatched"

var (
	// durationBuckets span 5 ms (a health check, a rejected upload) to 30 s (the
	// write timeout): a single prediction on the CPU backend takes tens of
	// milliseconds, a batch or a GPU queue under load seconds, and the default
	// request budget is 10 s, so the 504s land in the last buckets.
	durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// uploadSizeBuckets go by fours from 1 KiB (a thumbnail) to 64 MiB (beyond
	// the default body limit of 32 MiB), phone photos of 2-8 MiB in between.
	uploadSizeBuckets = prometheus.ExponentialBuckets(1024, 4, 9)
	// batchItemsBuckets are powers of two up to 128, above any sensible
	// MaxBatchItems (default 32).
	batchItemsBuckets = prometheus.ExponentialBuckets(1, 2, 8)
)

// metrics are the request metrics of the API, named as docs/metrics.md lists
// them, after Prometheus conventions.
type metrics struct {
	requests *prometheus.CounterVec   // method, endpoint, status
	duration *prometheus.HistogramVec // method, endpoint
	inFlight prometheus.Gauge
	// uploadBytes are the body bytes admitted uploads hold (MaxUploadBytesInFlight).
	uploadBytes prometheus.Gauge
	// connections are the open client connections (MaxConnections); refused
	// counts those answered 503 and closed because MaxConnections were open.
	connections prometheus.Gauge
	refused     prometheus.Counter
	shed        *prometheus.CounterVec   // endpoint
	errors      *prometheus.CounterVec   // endpoint, code
	uploadSize  *prometheus.HistogramVec // endpoint
	batchItems  prometheus.Histogram
}

// newMetrics builds the collectors and registers them with reg; a registry
// holds one server's: a second registration panics.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by method, route template and status code.",
		}, []string{"method", "endpoint", "status"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time from routing an HTTP request to its response, by method and route template.",
			Buckets: durationBuckets,
		}, []string{"method", "endpoint"}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "Predict requests (single and batch) being served now.",
		}),
		uploadBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "http_upload_bytes_in_flight",
			Help: "Bytes reserved for the bodies of admitted uploads (bounded by MAX_UPLOAD_BYTES_IN_FLIGHT).",
		}),
		connections: f.NewGauge(prometheus.GaugeOpts{
			Name: "http_connections_open",
			Help: "Open client connections (bounded by HTTP_MAX_CONNECTIONS).",
		}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Name: "http_connections_refused_total",
			Help: "Client connections answered 503 and closed at once because HTTP_MAX_CONNECTIONS were open.",
		}),
		shed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_shed_total",
			Help: "Predict requests refused with 429: MaxInFlight requests were already running, or their bodies held MaxUploadBytesInFlight for longer than the request timeout.",
		}, []string{"endpoint"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "http_request_errors_total",
			Help: "HTTP requests answered with an error, by route template and error code.",
		}, []string{"endpoint", "code"}),
		uploadSize: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_size_bytes",
			Help:    "Body size of upload (predict) requests, in bytes.",
			Buckets: uploadSizeBuckets,
		}, []string{"endpoint"}),
		batchItems: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "predict_batch_items",
			Help:    "Images per accepted /predict/batch request.",
			Buckets: batchItemsBuckets,
		}),
	}
}

// observe records one answered request (method folded); its duration carries
// the trace id of ctx's sampled span as an exemplar.
func (m *metrics) observe(ctx context.Context, method, endpoint string, status int, seconds float64) {
	m.requests.WithLabelValues(method, endpoint, strconv.Itoa(status)).Inc()
	exemplars.Observe(ctx, m.duration.WithLabelValues(method, endpoint), seconds)
}

// knownMethods maps each standard method to a constant string: fiber's
// c.Method() aliases a buffer that is reused after the request, and a label
// value is kept for the life of the process.
var knownMethods = map[string]string{
	"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE",
	"PATCH": "PATCH", "OPTIONS": "OPTIONS", "CONNECT": "CONNECT", "TRACE": "TRACE",
}

// foldMethod keeps the standard methods and folds anything else to "OTHER", so
// a client cannot mint label values.
func foldMethod(m string) string {
	if known, ok := knownMethods[m]; ok {
		return known
	}
	return "OTHER"
}
