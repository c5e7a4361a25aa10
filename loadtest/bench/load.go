package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// sample is what one request measured.
type sample struct {
	start time.Time     // when it was sent
	lat   time.Duration // from sending to the last byte of the answer
	code  int           // HTTP status (200 for a successful gRPC call); 0: no answer
	err   string        // "" when the answer was a correct prediction
	// pre is the preprocessing the gateway reported in its answer
	// (timings_ms.decode + resize + normalize); -1 when the answer has none.
	pre    time.Duration
	images int // images classified by this request
}

// load is one measurement's shape: a fixed rate (open loop) or, with rate 0,
// conc workers sending as fast as their answers come back (closed loop).
type load struct {
	rate    float64
	conc    int
	dur     time.Duration
	timeout time.Duration
}

func (l load) String() string {
	if l.rate > 0 {
		return fmt.Sprintf("fixed rate %g req/s for %s", l.rate, l.dur)
	}
	return fmt.Sprintf("closed loop, %d connections, for %s", l.conc, l.dur)
}

// runner sends a load to one target and returns every request's sample.
type runner interface {
	run(ld load) []sample
	close()
}

// ---------------------------------------------------------------------------
// HTTP targets, through vegeta.

type httpRunner struct {
	name    string
	targets []vegeta.Target
	batch   int
}

func newHTTPRunner(name, url string, imgs []image, batch int) *httpRunner {
	bodies, cts := requestBodies(imgs, batch)
	r := &httpRunner{name: name, batch: batch}
	for i, b := range bodies {
		hdr := http.Header{"Content-Type": []string{cts[i]}}
		r.targets = append(r.targets, vegeta.Target{Method: http.MethodPost, URL: url, Body: b, Header: hdr})
	}
	return r
}

// pacer turns a rate into vegeta's integer hits per period.
func pacer(rate float64) vegeta.ConstantPacer {
	if rate <= 0 {
		return vegeta.ConstantPacer{} // as fast as the workers go
	}
	if rate == math.Trunc(rate) && rate < math.MaxInt32 {
		return vegeta.ConstantPacer{Freq: int(rate), Per: time.Second}
	}
	return vegeta.ConstantPacer{Freq: int(math.Round(rate * 1000)), Per: 1000 * time.Second}
}

func (r *httpRunner) run(ld load) []sample {
	opts := []func(*vegeta.Attacker){
		vegeta.Timeout(ld.timeout),
		vegeta.KeepAlive(true),
		vegeta.Redirects(vegeta.NoFollow),
	}
	if ld.rate > 0 {
		// Open loop: vegeta adds workers (and connections) whenever all are
		// busy, so requests leave on schedule however slow the answers are.
		opts = append(opts, vegeta.Workers(uint64(max(10, ld.conc))))
	} else {
		opts = append(opts, vegeta.Workers(uint64(ld.conc)), vegeta.MaxWorkers(uint64(ld.conc)), vegeta.Connections(ld.conc))
	}
	atk := vegeta.NewAttacker(opts...)
	images := max(1, r.batch)
	var out []sample
	for res := range atk.Attack(vegeta.NewStaticTargeter(r.targets...), pacer(ld.rate), ld.dur, r.name) {
		s := sample{start: res.Timestamp, lat: res.Latency, code: int(res.Code), pre: -1}
		switch {
		case res.Code == 0:
			s.err = shortError(res.Error)
		case res.Code != http.StatusOK:
			s.err = fmt.Sprintf("HTTP %d", res.Code)
		default:
			s.pre, s.err = checkAnswer(res.Body, r.batch)
			if s.err == "" {
				s.images = images
			}
		}
		out = append(out, s)
	}
	return out
}

func (r *httpRunner) close() {}

// shortError keeps the end of a transport error ("connection refused",
// "context deadline exceeded ...") so that errors of one kind count together.
func shortError(e string) string {
	if e == "" {
		return "no answer"
	}
	if i := strings.LastIndex(e, ": "); i >= 0 && i+2 < len(e) {
		e = e[i+2:]
	}
	if len(e) > 60 {
		e = e[:60]
	}
	return e
}

// answer is what both gateways answer, as far as the benchmark looks at it.
type answer struct {
	Predictions []prediction `json:"predictions"`
	Results     []struct {
		Predictions []prediction `json:"predictions"`
		Error       *struct {
			Code string `json:"code"`
		} `json:"error"`
	} `json:"results"`
	Timings *struct {
		Decode    float64 `json:"decode"`
		Resize    float64 `json:"resize"`
		Normalize float64 `json:"normalize"`
	} `json:"timings_ms"`
}

type prediction struct {
	Label      string  `json:"label"`
	Confidence float64 `json:"confidence"`
}

// wellFormed says what is wrong with a list of predictions, if anything: each
// has a label and a confidence in [0, 1], highest first.
func wellFormed(preds []prediction) string {
	if len(preds) == 0 {
		return "without predictions"
	}
	for i, p := range preds {
		if p.Label == "" || p.Confidence < 0 || p.Confidence > 1 || (i > 0 && p.Confidence > preds[i-1].Confidence) {
			return "with malformed predictions"
		}
	}
	return ""
}

// checkAnswer says whether a 200 answer holds well-formed predictions (every
// item's, for a batch), and returns the preprocessing time the gateway
// reported, if any.
func checkAnswer(body []byte, batch int) (pre time.Duration, problem string) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return -1, "answer is not JSON"
	}
	pre = -1
	if a.Timings != nil {
		pre = time.Duration((a.Timings.Decode + a.Timings.Resize + a.Timings.Normalize) * float64(time.Millisecond))
	}
	if batch <= 0 {
		if p := wellFormed(a.Predictions); p != "" {
			return pre, "answer " + p
		}
		return pre, ""
	}
	if len(a.Results) != batch {
		return pre, fmt.Sprintf("batch answer with %d results", len(a.Results))
	}
	for _, it := range a.Results {
		if it.Error != nil {
			return pre, "batch item error " + it.Error.Code
		}
		if p := wellFormed(it.Predictions); p != "" {
			return pre, "batch item " + p
		}
	}
	return -1, "" // a batch reports only its total time
}

// ---------------------------------------------------------------------------
// Direct gRPC: ModelInfer of ready-made tensors, as the gateway sends them.

type grpcRunner struct {
	name   string
	conn   *grpc.ClientConn
	api    kserve.GRPCInferenceServiceClient
	reqs   []*kserve.ModelInferRequest
	output string
}

func newGRPCRunner(name, addr, model, input, output string, tensors [][]byte) (*grpcRunner, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
	if err != nil {
		return nil, err
	}
	r := &grpcRunner{name: name, conn: conn, api: kserve.NewGRPCInferenceServiceClient(conn), output: output}
	for _, t := range tensors {
		r.reqs = append(r.reqs, &kserve.ModelInferRequest{
			ModelName: model,
			Inputs: []*kserve.ModelInferRequest_InferInputTensor{{
				Name: input, Datatype: "FP32", Shape: []int64{1, 3, 224, 224},
			}},
			Outputs:          []*kserve.ModelInferRequest_InferRequestedOutputTensor{{Name: output}},
			RawInputContents: [][]byte{t},
		})
	}
	return r, nil
}

func (r *grpcRunner) close() { _ = r.conn.Close() }

func (r *grpcRunner) call(i int, timeout time.Duration) sample {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s := sample{start: time.Now(), pre: -1}
	resp, err := r.api.ModelInfer(ctx, r.reqs[i%len(r.reqs)])
	s.lat = time.Since(s.start)
	switch {
	case err != nil:
		s.err = shortError(err.Error())
	case len(resp.GetRawOutputContents()) != 1 || len(resp.GetRawOutputContents()[0]) == 0:
		s.code, s.err = 200, "ModelInfer answer without raw output"
	default:
		s.code, s.images = 200, 1
	}
	return s
}

// run paces calls like vegeta does (every request in its own goroutine, sent on
// schedule, latency from the actual send), or runs conc closed-loop workers.
func (r *grpcRunner) run(ld load) []sample {
	var (
		mu  sync.Mutex
		out []sample
		wg  sync.WaitGroup
	)
	add := func(s sample) {
		mu.Lock()
		out = append(out, s)
		mu.Unlock()
	}
	began := time.Now()
	if ld.rate > 0 {
		p := pacer(ld.rate)
		for hits := uint64(0); ; hits++ {
			elapsed := time.Since(began)
			if elapsed > ld.dur {
				break
			}
			wait, stop := p.Pace(elapsed, hits)
			if stop {
				break
			}
			time.Sleep(wait)
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				add(r.call(i, ld.timeout))
			}(int(hits))
		}
	} else {
		var next sync.Mutex
		n := 0
		for range ld.conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(began) <= ld.dur {
					next.Lock()
					i := n
					n++
					next.Unlock()
					add(r.call(i, ld.timeout))
				}
			}()
		}
	}
	wg.Wait()
	return out
}
