package overhead

// Run (see README.md):
//
//	go test -run '^$' -bench . -benchtime=1000x ./gateway/internal/overhead/
//
// Every benchmark sends b.N requests (BenchmarkOverhead: b.N pairs) open-loop
// at a fixed rate, and reports latency percentiles from each request's
// scheduled send time. The gateway's overhead is BenchmarkOverhead's
// overhead-p50-ms and overhead-p99-ms (direct and gateway requests
// interleaved in one run); the separate benchmarks give the same figure as
// BenchmarkGatewayPredict/preprocessing=excluded net-p50-ms minus
// BenchmarkDirectGRPC/client=raw p50-ms, from the same run, with more noise.

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

var (
	rate         = flag.Float64("overhead.rate", 200, "requests per second of the direct, stub, preprocessing=excluded and paired overhead benchmarks")
	includedRate = flag.Float64("overhead.included-rate", 100, "requests per second of the preprocessing=included benchmark (640×480 JPEG)")
)

// warmUpRequests are sent one by one before each measurement.
const warmUpRequests = 50

// BenchmarkDirectGRPC is the baseline: ModelInfer of a ready-made FP32
// 3×224×224 tensor (batch 1, 602 KB of raw_input_contents) straight to the
// test server. client=raw is a plain generated client; client=triton is the
// gateway's own adapter (triton.Client.Infer, with its metrics and checks),
// which shows what the adapter alone adds.
func BenchmarkDirectGRPC(b *testing.B) {
	b.Run("client=raw", func(b *testing.B) {
		srv := server(b)
		m := srv.Model()
		do := directCall(directClient(b, srv.Addr()), m, tritontest.ItemForClass(m, 3))
		measure(b, *rate, srv.ResetRequests, do)
	})
	b.Run("client=triton", func(b *testing.B) {
		srv := server(b)
		m := srv.Model()
		do := adapterCall(newTritonClient(b, srv, prometheus.NewRegistry()), tritontest.ItemForClass(m, 3))
		measure(b, *rate, srv.ResetRequests, do)
	})
}

// BenchmarkHTTPStub is the HTTP hop alone: the same client and the same upload
// as preprocessing=excluded, to a fiber server that answers a canned
// prediction at once. Its allocs/op are mostly the client's (net/http and the
// JSON decoding of the answer), which the gateway benchmarks include too.
func BenchmarkHTTPStub(b *testing.B) {
	answer := []byte(`{"model":"fish_classifier","version":"1","request_id":"0123456789abcdef0123456789abcdef",` +
		`"predictions":[{"label":"Red Mullet","index":3,"confidence":0.2},{"label":"Sea Bass","index":5,"confidence":0.1},` +
		`{"label":"Trout","index":8,"confidence":0.1},{"label":"Shrimp","index":6,"confidence":0.1},{"label":"Gilt-Head Bream","index":1,"confidence":0.1}],` +
		`"timings_ms":{"decode":0,"resize":0,"normalize":0,"inference":0,"postprocess":0,"total":0}}`)
	url := stubURL(b, answer)
	do := predictCall(httpClient(b), url, newUpload(b, "tiny.png", "image/png", tinyPNG(b)))
	measure(b, *rate, nil, do)
}

// BenchmarkGatewayPredict is POST /predict through the whole gateway in this
// process (HTTP client → fiber → Classifier → preprocess → breaker →
// triton.Client → gRPC → test server), over real loopback sockets.
// preprocessing=excluded uploads an 8×8 PNG and reports the preprocessing the
// gateway measured (pre-p50-ms) and the latency net of it (net-*);
// preprocessing=included uploads a 640×480 q90 JPEG (84 KB) at a lower rate.
func BenchmarkGatewayPredict(b *testing.B) {
	b.Run("preprocessing=excluded", func(b *testing.B) {
		srv := server(b)
		url := gatewayURL(b, srv)
		do := predictCall(httpClient(b), url, newUpload(b, "tiny.png", "image/png", tinyPNG(b)))
		measure(b, *rate, srv.ResetRequests, do)
	})
	b.Run("preprocessing=included", func(b *testing.B) {
		srv := server(b)
		url := gatewayURL(b, srv)
		do := predictCall(httpClient(b), url, newUpload(b, "photo_640x480.jpg", "image/jpeg", photoJPEG(b)))
		measure(b, *includedRate, srv.ResetRequests, do)
	})
}

// BenchmarkOverhead measures the goal's figure side by side: requests
// alternate between the direct call (client=raw) and POST /predict through the
// gateway with the 8×8 PNG (preprocessing=excluded), both against the same
// test server, at -overhead.rate requests/s in all (half each way), so that
// both see the same moment of a noisy machine. b.N counts pairs. overhead-*
// is the gateway's latency net of its preprocessing (gw-net-*) minus the
// direct call's (direct-*), percentile by percentile. Allocations are not
// reported: the two ways are mixed.
func BenchmarkOverhead(b *testing.B) {
	srv := server(b)
	m := srv.Model()
	url := gatewayURL(b, srv)
	direct := directCall(directClient(b, srv.Addr()), m, tritontest.ItemForClass(m, 3))
	viaGateway := predictCall(httpClient(b), url, newUpload(b, "tiny.png", "image/png", tinyPNG(b)))
	warmUp(b, warmUpRequests, direct)
	warmUp(b, warmUpRequests, viaGateway)
	srv.ResetRequests()
	samples, _ := openLoop(b, *rate, srv.ResetRequests, direct, viaGateway)
	var ds, gs []sample
	for i, s := range samples {
		if i%2 == 0 {
			ds = append(ds, s)
		} else {
			gs = append(gs, s)
		}
	}
	d, g := summarizeSamples(ds), summarizeSamples(gs)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(d.lat.p50), "direct-p50-ms")
	b.ReportMetric(ms(d.lat.p99), "direct-p99-ms")
	b.ReportMetric(ms(g.lat.p50), "gw-p50-ms")
	b.ReportMetric(ms(g.lat.p99), "gw-p99-ms")
	b.ReportMetric(ms(g.pre.p50), "gw-pre-p50-ms")
	b.ReportMetric(ms(g.net.p50), "gw-net-p50-ms")
	b.ReportMetric(ms(g.net.p99), "gw-net-p99-ms")
	b.ReportMetric(ms(g.net.p50-d.lat.p50), "overhead-p50-ms")
	b.ReportMetric(ms(g.net.p99-d.lat.p99), "overhead-p99-ms")
	b.ReportMetric(ms(summarize(append(lags(ds), lags(gs)...)).p99), "lag-p99-ms")
}

func lags(samples []sample) []time.Duration {
	out := make([]time.Duration, len(samples))
	for i, s := range samples {
		out[i] = s.lag
	}
	return out
}

// measure warms up, runs the open loop with allocations counted, and reports.
func measure(b *testing.B, rate float64, every func(), do call) {
	b.Helper()
	warmUp(b, warmUpRequests, do)
	if every != nil {
		every()
	}
	b.ReportAllocs()
	samples, elapsed := openLoop(b, rate, every, do)
	report(b, samples, elapsed)
}

// TestPercentile checks the nearest-rank percentiles on known data.
func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose: summarize sorts
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	st := summarize(d)
	if st.p50 != 50*time.Millisecond || st.p90 != 90*time.Millisecond || st.p99 != 99*time.Millisecond || st.max != 100*time.Millisecond {
		t.Errorf("summarize(1..100 ms) = %+v, want p50 50ms, p90 90ms, p99 99ms, max 100ms", st)
	}
	if d[0] != 100*time.Millisecond {
		t.Error("summarize sorted its argument in place")
	}
	for _, tt := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{7}, 0, 7},
		{[]time.Duration{7}, 99, 7},
		{[]time.Duration{1, 2, 3, 4}, 50, 2},
		{[]time.Duration{1, 2, 3, 4}, 51, 3},
		{[]time.Duration{1, 2, 3, 4}, 100, 4},
	} {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
		}
	}
}

// TestHarness sends one request each way the benchmarks do, and checks they
// succeed: the direct call, the adapter, the stub, and POST /predict through
// the gateway with both images (200, predictions, preprocessing reported).
func TestHarness(t *testing.T) {
	srv := server(t)
	m := srv.Model()
	tensor := tritontest.ItemForClass(m, 3)
	once := func(name string, do call) time.Duration {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
		defer cancel()
		start := time.Now()
		done, pre, err := do(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if done.Before(start) {
			t.Errorf("%s: done %v before the start %v", name, done, start)
		}
		return pre
	}
	once("direct ModelInfer", directCall(directClient(t, srv.Addr()), m, tensor))
	once("triton.Client.Infer", adapterCall(newTritonClient(t, srv, prometheus.NewRegistry()), tensor))

	url := gatewayURL(t, srv)
	stub := stubURL(t, []byte(`{"predictions":[{"label":"x","index":0,"confidence":1}],"timings_ms":{"decode":0.5}}`))
	client := httpClient(t) // after the servers: its idle connections close before they shut down
	if pre := once("POST /predict (8×8 PNG)", predictCall(client, url, newUpload(t, "tiny.png", "image/png", tinyPNG(t)))); pre <= 0 {
		t.Errorf("8×8 PNG: preprocessing reported as %v, want > 0", pre)
	}
	if pre := once("POST /predict (640×480 JPEG)", predictCall(client, url, newUpload(t, "photo.jpg", "image/jpeg", photoJPEG(t)))); pre <= 0 {
		t.Errorf("640×480 JPEG: preprocessing reported as %v, want > 0", pre)
	}
	if n := srv.InferCount(); n != 4 {
		t.Errorf("the test server saw %d ModelInfer calls, want 4", n)
	}
	if pre := once("POST /predict (stub)", predictCall(client, stub, newUpload(t, "tiny.png", "image/png", tinyPNG(t)))); pre != 500*time.Microsecond {
		t.Errorf("stub: preprocessing read as %v, want 500µs", pre)
	}
}
