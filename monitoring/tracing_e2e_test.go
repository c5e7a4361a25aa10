package monitoring_test

// Distributed tracing on real parts: the gateway binary exporting its spans to
// the real Jaeger v2 (OTLP/HTTP), the real Triton exporting its own into the
// same Jaeger from the traceparent the gateway sends, and the real Prometheus
// storing the exemplars of the gateway's latency histograms.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/fish-classifier/fish-classifier/internal/poll"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
	"github.com/fish-classifier/fish-classifier/internal/tritonci"
)

// The service names of the two halves of a trace.
const (
	gatewayService = "fish-classifier-gateway"
	tritonService  = "triton"
)

func TestTracingEndToEnd(t *testing.T) {
	prometheusBin := requireBinary(t, "prometheus")
	jaeger := testenv.StartJaeger(t)
	triton := testenv.StartTritonWith(t, func(c *tritonci.Config) {
		c.Args = append(c.Args, testenv.TritonTracingArgs(jaeger.OTLPHTTPEndpoint)...)
	})
	gatewayBin := testenv.BuildGateway(t)
	gw := startStackGateway(t, gatewayBin, map[string]string{
		"BACKEND":                      "triton",
		"TRITON_URL":                   triton.GRPCAddr,
		"FALLBACK":                     "onnx",
		"ONNXRUNTIME_LIB":              testenv.ONNXRuntimeLib(t),
		"MODEL_REPOSITORY":             filepath.Join(repoRoot(t), "triton-models"),
		"BREAKER_CONSECUTIVE_FAILURES": "1",
		"BREAKER_OPEN_TIMEOUT":         "1m",
		"TRITON_RETRIES":               "0",
		"OTEL_EXPORTER_OTLP_ENDPOINT":  jaeger.OTLPHTTPEndpoint,
		// The SDK's batch processor exports every 5 s by default.
		"OTEL_BSP_SCHEDULE_DELAY": "100",
	})
	unreachable := testenv.FreeLoopbackAddr(t)
	prom := startPrometheus(t, prometheusBin, map[string]string{
		"fish_api":     gw.addr,
		"triton":       triton.MetricsAddr,
		"cadvisor":     unreachable,
		"alertmanager": unreachable,
	}, unreachable)

	var single string // the trace of the single prediction
	t.Run("one prediction is one trace from the gateway into Triton's compute", func(t *testing.T) {
		var spans []testenv.Span
		single, spans = postJoined(t, gw, jaeger, "/predict", "image/jpeg", photo(t, 640, 480, 1), "e2e-single")
		tree := newSpanTree(t, spans)
		server := tree.one(t, gatewayService, "POST /predict")
		if server.ParentSpanID != clientSpanID || server.Kind != "SERVER" {
			t.Errorf("server span: parent %s kind %s, want the client's span %s, SERVER", server.ParentSpanID, server.Kind, clientSpanID)
		}
		if !strings.HasPrefix(server.Attributes["fish.request.id"], "e2e-single-") || server.Attributes["http.response.status_code"] != "200" {
			t.Errorf("server span attributes %v", server.Attributes)
		}
		pre := tree.child(t, server, gatewayService, "preprocess")
		for _, step := range []string{"wait decode slot", "decode", "resize"} {
			tree.child(t, pre, gatewayService, step)
		}
		tree.child(t, server, gatewayService, "wait inference slot")
		infer := tree.child(t, server, gatewayService, "infer")
		if infer.Attributes["fish.backend"] != "triton" || infer.Attributes["fish.fallback"] != "false" || infer.Attributes["fish.batch.size"] != "1" {
			t.Errorf("infer span attributes %v", infer.Attributes)
		}
		call := tree.child(t, infer, gatewayService, "inference.GRPCInferenceService/ModelInfer")
		if call.Kind != "CLIENT" {
			t.Errorf("ModelInfer span kind %s, want CLIENT", call.Kind)
		}
		request := tree.child(t, call, tritonService, "InferRequest")
		modelSpan := tree.child(t, request, tritonService, "fish_classifier")
		tree.child(t, modelSpan, tritonService, "compute")
	})

	t.Run("a batch is one backend call under one trace", func(t *testing.T) {
		ct, body := multipartImages(t, photo(t, 320, 240, 2), photo(t, 320, 240, 3), photo(t, 320, 240, 4))
		_, spans := postJoined(t, gw, jaeger, "/predict/batch", ct, body, "e2e-batch")
		tree := newSpanTree(t, spans)
		server := tree.one(t, gatewayService, "POST /predict/batch")
		if n := len(tree.children(server, "preprocess")); n != 3 {
			t.Errorf("%d preprocess spans, want one per image (3)", n)
		}
		infer := tree.child(t, server, gatewayService, "infer")
		if infer.Attributes["fish.batch.size"] != "3" {
			t.Errorf("infer span batch size %q, want 3", infer.Attributes["fish.batch.size"])
		}
		call := tree.child(t, infer, gatewayService, "inference.GRPCInferenceService/ModelInfer")
		tree.child(t, tree.child(t, call, tritonService, "InferRequest"), tritonService, "fish_classifier")
	})

	t.Run("Prometheus stores exemplars whose traces are in Jaeger", func(t *testing.T) {
		var ids []string
		poll.Until(t, 30*time.Second, 250*time.Millisecond, "exemplars of http_request_duration_seconds in Prometheus", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := prom.QueryExemplars(ctx, `http_request_duration_seconds_bucket{endpoint="/predict"}`, time.Now().Add(-10*time.Minute), time.Now())
			if err != nil {
				return false
			}
			ids = ids[:0]
			for _, r := range res {
				for _, e := range r.Exemplars {
					ids = append(ids, string(e.Labels[model.LabelName("trace_id")]))
				}
			}
			return slices.Contains(ids, single)
		})
		for _, id := range ids {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			spans, err := jaeger.Trace(ctx, id)
			cancel()
			if err != nil || len(spans) == 0 {
				t.Errorf("exemplar trace id %s: not in Jaeger (%d spans, %v)", id, len(spans), err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := prom.QueryExemplars(ctx, `model_inference_duration_seconds_bucket{backend="triton"}`, time.Now().Add(-10*time.Minute), time.Now())
		if err != nil || len(res) == 0 || len(res[0].Exemplars) == 0 {
			t.Errorf("no exemplar on model_inference_duration_seconds: %v %v", res, err)
		}
	})

	t.Run("the breaker's rejection and the fallback are in the trace", func(t *testing.T) {
		triton.Kill(t)
		// The first call after the kill fails and opens the breaker (one
		// failure); the fallback answers it.
		first := testenv.NewTraceID()
		if status, body := gw.postTraced(t, "/predict", "image/jpeg", photo(t, 320, 240, 5), first, "e2e-down"); status != http.StatusOK {
			t.Fatalf("/predict with Triton down: %d %s", status, body)
		}
		second := testenv.NewTraceID()
		if status, body := gw.postTraced(t, "/predict", "image/jpeg", photo(t, 320, 240, 6), second, "e2e-open"); status != http.StatusOK {
			t.Fatalf("/predict with the breaker open: %d %s", status, body)
		}
		spans := jaeger.WaitTrace(t, second, testenv.HasSpans("onnxruntime run"))
		tree := newSpanTree(t, spans)
		infer := tree.child(t, tree.one(t, gatewayService, "POST /predict"), gatewayService, "infer")
		if infer.Attributes["fish.backend"] != "onnxruntime" || infer.Attributes["fish.fallback"] != "true" {
			t.Errorf("infer span attributes %v, want the fallback's backend", infer.Attributes)
		}
		var events []string
		for _, e := range infer.Events {
			events = append(events, e.Name)
		}
		if !slices.Equal(events, []string{"breaker rejected", "fallback"}) {
			t.Errorf("infer span events %v, want the breaker's rejection, then the fallback", events)
		}
		tree.child(t, infer, gatewayService, "onnxruntime run")
		if calls := tree.children(infer, "inference.GRPCInferenceService/ModelInfer"); len(calls) != 0 {
			t.Errorf("%d ModelInfer calls with the breaker open, want none", len(calls))
		}
	})
}

// postJoined posts body as a traced client (postTraced) and returns the trace
// id and spans once Jaeger holds both halves: the gateway's, from its server
// span to its ModelInfer client span, which every attempt must have whole, and
// Triton's compute under it, which Triton 2.51 now and then leaves out
// (testenv.TraceIntoTriton sends the request again then).
func postJoined(t *testing.T, gw *stackGateway, jaeger *testenv.Jaeger, path, contentType string, body []byte, requestID string) (string, []testenv.Span) {
	t.Helper()
	send := func(attempt int, id string) {
		if status, answer := gw.postTraced(t, path, contentType, body, id, fmt.Sprintf("%s-%d", requestID, attempt)); status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, answer)
		}
	}
	return jaeger.TraceIntoTriton(t, send, testenv.HasSpans("POST "+path, "inference.GRPCInferenceService/ModelInfer"), testenv.HasSpans("compute"))
}

// clientSpanID is the span the test's traceparents name as the caller's.
const clientSpanID = "00f067aa0ba902b7"

// postTraced posts body as a client that traces: a sampled traceparent of
// trace id under clientSpanID, and a request id.
func (g *stackGateway) postTraced(t *testing.T, path, contentType string, body []byte, traceID, requestID string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+g.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("traceparent", fmt.Sprintf("00-%s-%s-01", traceID, clientSpanID))
	req.Header.Set("X-Request-ID", requestID)
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

// spanTree indexes a trace's spans by parent.
type spanTree struct {
	spans []testenv.Span
	all   string // the spans listed, for failures
}

func newSpanTree(t *testing.T, spans []testenv.Span) spanTree {
	t.Helper()
	for _, s := range spans[1:] {
		if s.TraceID != spans[0].TraceID {
			t.Fatalf("spans of two traces: %s", testenv.SpansString(spans))
		}
	}
	return spanTree{spans: spans, all: testenv.SpansString(spans)}
}

// one is the only span of service named name.
func (tr spanTree) one(t *testing.T, service, name string) testenv.Span {
	t.Helper()
	var found []testenv.Span
	for _, s := range tr.spans {
		if s.Name == name && s.Service == service {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %q of %s, want 1:%s", len(found), name, service, tr.all)
	}
	return found[0]
}

// children are parent's children named name.
func (tr spanTree) children(parent testenv.Span, name string) []testenv.Span {
	var out []testenv.Span
	for _, s := range tr.spans {
		if s.ParentSpanID == parent.SpanID && s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// child is parent's first child named name, of service.
func (tr spanTree) child(t *testing.T, parent testenv.Span, service, name string) testenv.Span {
	t.Helper()
	for _, s := range tr.children(parent, name) {
		if s.Service != service {
			t.Errorf("span %q is %s's, want %s's", name, s.Service, service)
		}
		return s
	}
	t.Fatalf("span %q (%s) has no child %q:%s", parent.Name, parent.Service, name, strings.TrimSpace(tr.all))
	return testenv.Span{}
}
