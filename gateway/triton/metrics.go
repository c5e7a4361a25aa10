package triton

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
)

// The RPCs the client makes: the values of the rpc label.
const (
	rpcServerReady   = "ServerReady"
	rpcModelReady    = "ModelReady"
	rpcModelMetadata = "ModelMetadata"
	rpcModelConfig   = "ModelConfig"
	rpcModelInfer    = "ModelInfer"
)

var rpcNames = []string{rpcServerReady, rpcModelReady, rpcModelMetadata, rpcModelConfig, rpcModelInfer}

// rpcDurationBuckets span a health check on a local network (~0.2ms) to a
// call that ends at the default CallTimeout (10s); they are densest between
// 2.5ms and 250ms, where a GPU inference of one image up to a batch of 8 lies,
// so that the quantiles operators alert on are precise there.
var rpcDurationBuckets = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075,
	0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10,
}

// metrics are the client's collectors.
type metrics struct {
	rpcDuration *prometheus.HistogramVec // rpc, code
	retries     *prometheus.CounterVec   // rpc
	inputs      *prometheus.CounterVec   // via
}

// newMetrics builds the collectors and registers them with reg (none when reg
// is nil); a registry holds one client's: a second registration panics. rpcs
// are the RPCs whose retry counters start at zero.
func newMetrics(reg prometheus.Registerer, rpcs []string) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		rpcDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "triton_rpc_duration_seconds",
			Help:    "Duration of each attempt of a gRPC call to Triton, by method and gRPC status code.",
			Buckets: rpcDurationBuckets,
		}, []string{"rpc", "code"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triton_retries_total",
			Help: "gRPC calls to Triton attempted again after an UNAVAILABLE answer, by method.",
		}, []string{"rpc"}),
		inputs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triton_infer_inputs_total",
			Help: "ModelInfer calls sent to Triton, by the way the input tensor travelled: message (raw_input_contents) or system_shared_memory (a registered region).",
		}, []string{"via"}),
	}
	for _, rpc := range rpcs {
		m.retries.WithLabelValues(rpc) // a zero series from the start, for rate()
	}
	m.inputs.WithLabelValues(viaMessage)
	return m
}

func (m *metrics) sent(via string) { m.inputs.WithLabelValues(via).Inc() }

func (m *metrics) observe(rpc string, code codes.Code, d time.Duration) {
	m.rpcDuration.WithLabelValues(rpc, code.String()).Observe(d.Seconds())
}

func (m *metrics) retried(rpc string) { m.retries.WithLabelValues(rpc).Inc() }
