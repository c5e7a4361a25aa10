package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// The gateway's overhead over the in-process KServe v2 test server. By
// default a short run that checks the measurement works (in `go test ./...`);
// with the flags, the measurement (see README.md):
//
//	go test -count=1 -run '^TestOverhead$' -v ./loadtest/bench/ \
//	  -args -overhead.rounds=5 -overhead.duration=10s -overhead.rate=200
var (
	overheadRounds   = flag.Int("overhead.rounds", 1, "TestOverhead: rounds")
	overheadDuration = flag.Duration("overhead.duration", time.Second, "TestOverhead: each target's run in each round")
	overheadRate     = flag.Float64("overhead.rate", 50, "TestOverhead: requests per second")
	overheadJSON     = flag.String("overhead.json", "", "TestOverhead: write bench's JSON report here")
)

// TestOverhead measures what the gateway adds to an inference call beyond
// preprocessing, with nothing else varying: tritontest's KServe v2 server
// (the committed model's shapes and contract; it answers in microseconds)
// runs in this test's process, the gateway binary in front of it
// (BACKEND=triton), and bench's open loop alternates, round by round, a
// direct ModelInfer of the ready-made tensor (the baseline) and POST /predict
// of the same image through the gateway: an 8×8 PNG, whose preprocessing is
// small and which the gateway reports (timings_ms), so the latency net of it
// can be compared with the direct call's. The overhead is the gateway's net
// p50 (p99) minus the direct p50 (p99), per round, then the median: bench's
// comparison against a grpc:// baseline. Figures are logged, never asserted.
func TestOverhead(t *testing.T) {
	testenv.RealServers(t, "builds the gateway and runs it against the test server")
	root := testenv.RepoRoot(t)
	srv := tritontest.Start(t, testenv.RepositoryModel(t))
	// The test server keeps every request it receives (602 KB each): forget
	// them as the load goes.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				srv.ResetRequests()
			}
		}
	}()
	g := startGateway(t, "BACKEND=triton", "TRITON_URL="+srv.Addr(), "MAX_IN_FLIGHT=256")

	tiny := filepath.Join(root, "preprocess", "testdata", "parity", "inputs", "rgb8_8x8.png")
	args := []string{"rate", "-rate", fmt.Sprint(*overheadRate), "-rounds", fmt.Sprint(*overheadRounds),
		"-duration", overheadDuration.String(), "-warmup", "1s", "-pause", "200ms", "-images", tiny,
		"-target", "direct=grpc://" + srv.Addr(), "-target", "go=" + g.base + "/predict",
		"-pid", fmt.Sprintf("go=%d", g.cmd.Process.Pid), "-baseline", "direct",
		"-label", "the gateway over the in-process KServe test server"}
	if *overheadJSON != "" {
		args = append(args, "-json", *overheadJSON)
	}
	rep := runBench(t, root, args)
	for _, s := range rep.Summary {
		if s.OK != s.Requests {
			t.Errorf("%s: %d of %d requests failed: %s", s.Target, s.Requests-s.OK, s.Requests, errorList(s.Errors))
		}
	}
	if len(rep.Comparisons) != 1 || rep.Comparisons[0].NetP50Diff == nil {
		t.Fatalf("comparisons %+v: want go against direct, net of preprocessing", rep.Comparisons)
	}
	c := rep.Comparisons[0]
	t.Logf("the gateway's overhead beyond preprocessing: p50 %s ms, p99 %s ms (goal: at most 1 ms and 3 ms)",
		sp(c.NetP50Diff, "%+.2f"), sp(c.NetP99Diff, "%+.2f"))
	g.stillRunning(t)
}
