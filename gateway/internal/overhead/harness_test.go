package overhead

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/breaker"
	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/prom"
	"github.com/fish-classifier/fish-classifier/gateway/triton"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/formdata"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// ---------------------------------------------------------------------------
// Open-loop load at a fixed rate.

// sample is what one request measured.
type sample struct {
	// lat runs from the request's scheduled send time to its complete answer,
	// so a request that had to wait for the sender (or for anything else) is
	// charged the wait: no coordinated omission.
	lat time.Duration
	// lag is how late the sender actually started the request (harness and
	// scheduler noise, included in lat).
	lag time.Duration
	// pre is the preprocessing the gateway reported for the request (decode +
	// resize + normalise); 0 for calls that bypass the gateway.
	pre time.Duration
}

// call performs one request and returns when its answer was complete (taken
// before any client-side decoding that is not part of receiving it), and the
// preprocessing time the server reported, if any.
type call func(ctx context.Context) (done time.Time, pre time.Duration, err error)

// callTimeout bounds one request; nothing here should come near it.
const callTimeout = 10 * time.Second

// openLoop sends b.N rounds of len(calls) requests at rate requests per
// second, request i made with calls[i%len(calls)] and scheduled at
// start + i/rate whatever happened to the earlier ones (each runs in its own
// goroutine), and returns every request's sample, in schedule order. every,
// when not nil, runs in the sender after every 64th request (the harness uses
// it to make the test server forget what it recorded). The benchmark timer and
// allocation counters cover exactly the load; the caller reports.
func openLoop(b *testing.B, rate float64, every func(), calls ...call) (samples []sample, elapsed time.Duration) {
	b.Helper()
	interval := time.Duration(float64(time.Second) / rate)
	samples = make([]sample, b.N*len(calls))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		failed   int
		lastDone time.Time
	)
	b.ResetTimer()
	start := time.Now()
	for i := range samples {
		do := calls[i%len(calls)]
		sched := start.Add(time.Duration(i) * interval)
		waitUntil(sched)
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			done, pre, err := do(ctx)
			cancel()
			if err != nil {
				mu.Lock()
				if failed++; firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			samples[i] = sample{lat: done.Sub(sched), lag: begin.Sub(sched), pre: pre}
			mu.Lock()
			if done.After(lastDone) {
				lastDone = done
			}
			mu.Unlock()
		}()
		if every != nil && i%64 == 63 {
			every()
		}
	}
	wg.Wait()
	b.StopTimer()
	if firstErr != nil {
		b.Fatalf("%d of %d requests failed at %g requests/s (a 429 means more requests were in flight than the gateway admits: this machine does not sustain the rate, see -overhead.rate); first: %v",
			failed, len(samples), rate, firstErr)
	}
	return samples, lastDone.Sub(start)
}

// waitUntil returns at t, or at once when t has passed. Go's timers wake up
// to ~1 ms late when the process is idle (the network poller waits in whole
// milliseconds), which would add up to 1 ms to every latency. So the sender
// sleeps with a finer clock (preciseSleep: nanosleep(2) on Linux, ~0.1 ms
// late) until spinWindow before t, then yields the processor in a loop until
// t, which costs ~2% of a core at 200 requests/s.
func waitUntil(t time.Time) {
	if d := time.Until(t) - spinWindow; d > 0 {
		preciseSleep(d)
	}
	for time.Now().Before(t) {
		runtime.Gosched()
	}
}

// report turns the samples of a run into benchmark metrics: latency
// percentiles in milliseconds from the scheduled send time, the sender's lag,
// the rate achieved and, when the server reported preprocessing, its median
// and the latency net of each request's own preprocessing. ns/op is
// suppressed: in an open loop it is only the schedule's interval.
func report(b *testing.B, samples []sample, elapsed time.Duration) {
	b.Helper()
	b.ReportMetric(0, "ns/op")
	s := summarizeSamples(samples)
	b.ReportMetric(ms(s.lat.p50), "p50-ms")
	b.ReportMetric(ms(s.lat.p90), "p90-ms")
	b.ReportMetric(ms(s.lat.p99), "p99-ms")
	b.ReportMetric(ms(s.lat.max), "max-ms")
	b.ReportMetric(ms(s.lag.p99), "lag-p99-ms")
	if elapsed > 0 {
		b.ReportMetric(float64(len(samples))/elapsed.Seconds(), "req/s")
	}
	if s.withPre {
		b.ReportMetric(ms(s.pre.p50), "pre-p50-ms")
		b.ReportMetric(ms(s.net.p50), "net-p50-ms")
		b.ReportMetric(ms(s.net.p99), "net-p99-ms")
	}
}

// sampleStats are the percentiles of a set of samples: latency, sender lag,
// reported preprocessing, and latency net of preprocessing.
type sampleStats struct {
	lat, lag, pre, net stats
	withPre            bool
}

func summarizeSamples(samples []sample) sampleStats {
	lat := make([]time.Duration, len(samples))
	lag := make([]time.Duration, len(samples))
	pre := make([]time.Duration, len(samples))
	netLat := make([]time.Duration, len(samples))
	var withPre bool
	for i, s := range samples {
		lat[i], lag[i], pre[i], netLat[i] = s.lat, s.lag, s.pre, s.lat-s.pre
		withPre = withPre || s.pre > 0
	}
	return sampleStats{lat: summarize(lat), lag: summarize(lag), pre: summarize(pre), net: summarize(netLat), withPre: withPre}
}

// stats are the percentiles the benchmarks report.
type stats struct{ p50, p90, p99, max time.Duration }

// summarize sorts a copy of d and reads its percentiles.
func summarize(d []time.Duration) stats {
	s := slices.Clone(d)
	slices.Sort(s)
	return stats{p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: percentile(s, 100)}
}

// percentile is the nearest-rank p-th percentile of sorted (ascending): the
// smallest value with at least p% of the values at or below it. 0 for no
// values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ---------------------------------------------------------------------------
// The inference server and the two ways of calling it.

// server starts the KServe v2 test server with the production model (FP32
// [3,224,224] NCHW, 9 classes, max batch 8).
func server(tb testing.TB) *tritontest.Server {
	tb.Helper()
	return tritontest.Start(tb, tritontest.DefaultModel())
}

// directClient is a plain generated KServe v2 client over its own connection:
// what a program that calls the inference server itself would use. It sets the
// message size limits the gateway's client sets (a request is 602 KB).
func directClient(tb testing.TB, addr string) kserve.GRPCInferenceServiceClient {
	tb.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(triton.DefaultConfig().MaxRecvMsgBytes), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
	if err != nil {
		tb.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return kserve.NewGRPCInferenceServiceClient(conn)
}

// directCall sends one ready-made tensor (batch 1) with ModelInfer, the request
// built the way the gateway builds it: raw little-endian bytes, one output
// asked for.
func directCall(api kserve.GRPCInferenceServiceClient, m tritontest.Model, tensor []byte) call {
	shape := append([]int64{1}, m.Input.Dims...)
	return func(ctx context.Context) (time.Time, time.Duration, error) {
		resp, err := api.ModelInfer(ctx, &kserve.ModelInferRequest{
			ModelName: m.Name,
			Inputs: []*kserve.ModelInferRequest_InferInputTensor{{
				Name: m.Input.Name, Datatype: m.Input.Datatype, Shape: shape,
			}},
			Outputs:          []*kserve.ModelInferRequest_InferRequestedOutputTensor{{Name: m.Output.Name}},
			RawInputContents: [][]byte{tensor},
		})
		done := time.Now()
		if err != nil {
			return done, 0, err
		}
		if raw := resp.GetRawOutputContents(); len(raw) != 1 || len(raw[0]) != 4*m.NumClasses() {
			return done, 0, fmt.Errorf("ModelInfer answered %d raw outputs", len(raw))
		}
		return done, 0, nil
	}
}

// tritonAdapter is the gateway's own KServe adapter and the description its
// Model read, which every Infer carries.
type tritonAdapter struct {
	client *triton.Client
	model  gateway.ModelInfo
}

// newTritonClient is the gateway's own KServe adapter, Model already read.
func newTritonClient(tb testing.TB, srv *tritontest.Server, reg prometheus.Registerer) tritonAdapter {
	tb.Helper()
	m := srv.Model()
	cfg := triton.DefaultConfig()
	cfg.Address, cfg.Model, cfg.Labels = srv.Addr(), m.Name, m.Labels
	c, err := triton.New(cfg, reg)
	if err != nil {
		tb.Fatalf("triton.New: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.Model(ctx)
	if err != nil {
		tb.Fatalf("triton.Client.Model: %v", err)
	}
	return tritonAdapter{client: c, model: info}
}

// adapterCall runs one Infer of a ready-made tensor through the gateway's
// triton.Client (request building, retry wrapper, metrics, answer checks).
func adapterCall(a tritonAdapter, tensor []byte) call {
	return func(ctx context.Context) (time.Time, time.Duration, error) {
		scores, err := a.client.Infer(ctx, gateway.Batch{Size: 1, Data: tensor, Model: &a.model})
		done := time.Now()
		if err == nil && scores.Size != 1 {
			err = fmt.Errorf("Infer answered %d rows", scores.Size)
		}
		return done, 0, err
	}
}

// ---------------------------------------------------------------------------
// The gateway, wired as cmd/gateway wires it.

// gatewayURL starts the whole gateway in this process against srv, as main
// builds it: triton.Client → breaker → gateway.Classifier with the Prometheus
// observer, its model loaded → httpapi server with its default limits and a
// JSON access log at level info (written to io.Discard rather than stderr),
// served on a real 127.0.0.1 listener. It returns the base URL.
func gatewayURL(tb testing.TB, srv *tritontest.Server) string {
	tb.Helper()
	reg := prometheus.NewRegistry()
	client := newTritonClient(tb, srv, reg)
	bs := breaker.DefaultSettings()
	bs.Name = "triton"
	backend, err := breaker.New(client.client, bs, reg)
	if err != nil {
		tb.Fatalf("breaker.New: %v", err)
	}
	obs := prom.NewObserver(reg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := gateway.NewClassifier(backend, preprocess.DefaultLimits(), obs, gateway.WithReadyProbe(client.client.Ready))
	if err := cl.Load(ctx); err != nil {
		tb.Fatalf("Classifier.Load: %v", err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	api, err := httpapi.New(cl, httpapi.DefaultConfig(), reg, reg, log)
	if err != nil {
		tb.Fatalf("httpapi.New: %v", err)
	}
	return serve(tb, api.Serve, api.Shutdown)
}

// stubURL serves a fiber app whose POST /predict answers body at once, on a
// real 127.0.0.1 listener: the HTTP hop with no gateway behind it.
func stubURL(tb testing.TB, body []byte) string {
	tb.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true, DisablePreParseMultipartForm: true, BodyLimit: 32 << 20})
	app.Post("/predict", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(body)
	})
	return serve(tb, app.Listener, app.ShutdownWithContext)
}

// serve runs an HTTP server on a fresh loopback listener until the test ends.
func serve(tb testing.TB, run func(net.Listener) error, shutdown func(context.Context) error) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- run(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
			tb.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// httpClient is a keep-alive client with room for as many idle connections as
// an open loop can have requests in flight. Make it after the server it calls:
// cleanups run last first, and its idle connections must close before the
// server shuts down (which waits for open connections).
func httpClient(tb testing.TB) *http.Client {
	tb.Helper()
	tr := &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: callTimeout}
}

// upload is one image as a client sends it: multipart/form-data, field "file"
// (what the FastAPI service took, and most clients send).
type upload struct {
	body        []byte
	contentType string
}

func newUpload(tb testing.TB, name, mediaType string, img []byte) upload {
	tb.Helper()
	body, contentType, err := formdata.Encode(formdata.Part{Field: "file", Filename: name, ContentType: mediaType, Data: img})
	if err != nil {
		tb.Fatalf("multipart body: %v", err)
	}
	return upload{body: body, contentType: contentType}
}

// predictAnswer is what the harness reads of a POST /predict answer.
type predictAnswer struct {
	Predictions []gateway.Prediction `json:"predictions"`
	Timings     struct {
		Decode    float64 `json:"decode"`
		Resize    float64 `json:"resize"`
		Normalize float64 `json:"normalize"`
	} `json:"timings_ms"`
}

// predictCall POSTs up to url+"/predict" and reads the whole answer; done is
// taken once the body has been read, before the JSON is decoded. pre is the
// answer's decode + resize + normalise.
func predictCall(client *http.Client, url string, up upload) call {
	url += "/predict"
	return func(ctx context.Context) (time.Time, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(up.body))
		if err != nil {
			return time.Now(), 0, err
		}
		req.Header.Set("Content-Type", up.contentType)
		resp, err := client.Do(req)
		if err != nil {
			return time.Now(), 0, err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		done := time.Now()
		if err != nil {
			return done, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return done, 0, fmt.Errorf("POST /predict: %s: %.200s", resp.Status, body)
		}
		var a predictAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			return done, 0, fmt.Errorf("POST /predict answer: %w", err)
		}
		if len(a.Predictions) == 0 {
			return done, 0, fmt.Errorf("POST /predict answered no predictions: %.200s", body)
		}
		pre := time.Duration((a.Timings.Decode + a.Timings.Resize + a.Timings.Normalize) * float64(time.Millisecond))
		return done, pre, nil
	}
}

// ---------------------------------------------------------------------------
// Images.

// tinyPNG is an 8×8 RGB PNG (the smallest side the gateway accepts): decoding,
// resizing and normalising it costs little, and the gateway reports what it
// did cost.
func tinyPNG(tb testing.TB) []byte {
	tb.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for y := range 8 {
		for x := range 8 {
			img.Set(x, y, color.NRGBA{R: uint8(32 * x), G: uint8(32 * y), B: 128, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatalf("png.Encode: %v", err)
	}
	return buf.Bytes()
}

// photoJPEG is the preprocessing benchmark's 640×480 photo-like JPEG (q90,
// 4:2:0, 84 KB).
func photoJPEG(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "preprocess", "testdata", "bench", "photo_640x480.jpg"))
	if err != nil {
		tb.Fatalf("read the 640×480 photo: %v", err)
	}
	return b
}

// warmUp sends n requests one after the other, outside the measurement, so
// that connections, pools and caches are warm.
func warmUp(tb testing.TB, n int, do call) {
	tb.Helper()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, _, err := do(ctx)
		cancel()
		if err != nil {
			tb.Fatalf("warm-up request: %v", err)
		}
	}
}
