//go:build unix

package testenv

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// otlpBody is one OTLP/HTTP JSON export: a service's two spans, a parent and a
// child, with attributes of each value type and an event; the ids are hex, as
// OTLP's JSON encoding writes them.
const otlpBody = `{"resourceSpans":[{
  "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"harness"}}]},
  "scopeSpans":[{"scope":{"name":"testenv"},"spans":[
    {"traceId":"00112233445566778899aabbccddeeff","spanId":"0000000000000001","name":"parent","kind":2,
     "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000"},
    {"traceId":"00112233445566778899aabbccddeeff","spanId":"0000000000000002","parentSpanId":"0000000000000001",
     "name":"child","kind":3,
     "startTimeUnixNano":"1700000000100000000","endTimeUnixNano":"1700000000200000000",
     "attributes":[
       {"key":"s","value":{"stringValue":"text"}},
       {"key":"i","value":{"intValue":"42"}},
       {"key":"d","value":{"doubleValue":1.5}},
       {"key":"b","value":{"boolValue":true}}],
     "events":[{"name":"happened","timeUnixNano":"1700000000150000000",
       "attributes":[{"key":"n","value":{"intValue":"7"}}]}]}
  ]}]}]}`

// TestJaegerStoresAndAnswers checks the harness on the real Jaeger v2: spans
// posted to its OTLP/HTTP receiver come back through the query API as Span
// values, whole; a trace it does not hold is no spans; the search by service
// finds the trace.
func TestJaegerStoresAndAnswers(t *testing.T) {
	j := StartJaeger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if spans, err := j.Trace(ctx, "0000000000000000000000000000abcd"); err != nil || spans != nil {
		t.Fatalf("Trace of an unknown id: %v, %v; want no spans, no error", spans, err)
	}
	if c, err := net.DialTimeout("tcp", j.OTLPGRPCAddr, time.Second); err != nil {
		t.Errorf("OTLP gRPC receiver at %s: %v", j.OTLPGRPCAddr, err)
	} else {
		c.Close()
	}

	resp, err := http.Post(j.OTLPTracesURL(), "application/json", strings.NewReader(otlpBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP export: %s", resp.Status)
	}

	const traceID = "00112233445566778899aabbccddeeff"
	spans := j.WaitTrace(t, traceID, func(s []Span) bool { return len(s) == 2 })
	slices.SortFunc(spans, func(a, b Span) int { return strings.Compare(a.SpanID, b.SpanID) })
	parent, child := spans[0], spans[1]
	if parent.Name != "parent" || parent.ParentSpanID != "" || parent.Kind != "SERVER" || parent.Service != "harness" ||
		parent.TraceID != traceID || parent.SpanID != "0000000000000001" {
		t.Errorf("parent span %+v", parent)
	}
	if want := time.Unix(1700000000, 0); !parent.Start.Equal(want) || !parent.End.Equal(want.Add(500*time.Millisecond)) {
		t.Errorf("parent runs %v–%v, want %v for 500ms", parent.Start, parent.End, want)
	}
	if child.Name != "child" || child.ParentSpanID != parent.SpanID || child.Kind != "CLIENT" || child.Service != "harness" {
		t.Errorf("child span %+v", child)
	}
	for k, want := range map[string]string{"s": "text", "i": "42", "d": "1.5", "b": "true"} {
		if got := child.Attributes[k]; got != want {
			t.Errorf("attribute %s = %q, want %q (all %v)", k, got, want, child.Attributes)
		}
	}
	if len(child.Events) != 1 || child.Events[0].Name != "happened" || child.Events[0].Attributes["n"] != "7" ||
		!child.Events[0].Time.Equal(time.Unix(1700000000, 150000000)) {
		t.Errorf("child's events %+v", child.Events)
	}

	traces, err := j.TracesOf(ctx, "harness", time.Unix(1699999990, 0), time.Unix(1700000010, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != 1 || len(traces[traceID]) != 2 {
		t.Errorf("TracesOf(harness): %v, want the one trace with its 2 spans", traces)
	}
	if traces, err := j.TracesOf(ctx, "nobody", time.Unix(1699999990, 0), time.Unix(1700000010, 0)); err != nil || len(traces) != 0 {
		t.Errorf("TracesOf(nobody): %v, %v; want none, no error", traces, err)
	}
}
