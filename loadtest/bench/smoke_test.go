// The embedded ONNX Runtime backend needs cgo (without it the gateway is built
// with a stub that refuses BACKEND=onnx), so does this test.

//go:build cgo

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// smokeImages are the valid test images of the k6 set but the 12 MP one (it
// costs ~25× a VGA photo's CPU; the k6 smoke run sends it): JPEG baseline,
// progressive, EXIF-rotated and greyscale, PNG with and without alpha, lossy
// and lossless WebP. Every one must be classified.
var smokeImages = []string{
	"fish_640x480.jpg",
	"fish_1024x768_progressive.jpg",
	"fish_480x640_exif6.jpg",
	"fish_640x480_grey.jpg",
	"fish_800x600.png",
	"fish_400x300_rgba.png",
	"fish_640x480.webp",
	"fish_256x256_lossless.webp",
}

// TestLoadSmoke is the load smoke test that `go test ./...` runs: the gateway
// binary serving the committed model on the embedded ONNX Runtime backend, under
// bench's open loop at 40 requests/s for 5 s (200 requests); every answer must
// be a well-formed prediction (the error bound is zero), and the load must have
// been applied. Latency and throughput are logged, never asserted: speed is
// shown by the campaign (docs/performance.md), not by timed tests, and a CI
// machine running `go test -race ./...` beside it is busy and noisy. It also
// checks bench itself against the real gateway's answers.
//
//	go test -count=1 -run '^TestLoadSmoke$' -v ./loadtest/bench/
func TestLoadSmoke(t *testing.T) {
	testenv.RealServers(t, "builds the gateway and puts it under load")
	const (
		rate     = 40
		duration = "5s"
		want     = 200
		// minSent: below this share of the requests the load was not applied
		// (the client starved), and the test says so rather than pass on a few.
		minSent = 0.8
	)
	root := testenv.RepoRoot(t)
	g := startGateway(t, "BACKEND=onnx", "ONNXRUNTIME_LIB="+testenv.ONNXRuntimeLib(t),
		// Admission control (429 beyond MAX_IN_FLIGHT, default 4 per core) has
		// its own tests; here a machine stalled by other tests must not turn a
		// burst of queued requests into 429s: the limit is above the 200
		// requests of the whole run.
		"MAX_IN_FLIGHT=256")

	images := make([]string, len(smokeImages))
	for i, name := range smokeImages {
		images[i] = filepath.Join(root, "loadtest", "k6", "images", name)
	}
	// The gateway's own REQUEST_TIMEOUT is 10 s: a stalled inference answers
	// 504 before bench's 10 s timeout.
	args := []string{"rate", "-rate", fmt.Sprint(rate), "-duration", duration, "-rounds", "1", "-warmup", "0s", "-pause", "0s",
		"-timeout", "10s", "-images", strings.Join(images, ","), "-target", "smoke=" + g.base + "/predict",
		"-pid", fmt.Sprintf("smoke=%d", g.cmd.Process.Pid), "-label", "load smoke test"}
	rep := runBench(t, root, args)
	s := rep.Summary[0]
	if s.OK != s.Requests {
		t.Errorf("%d of %d requests failed (allowed: 0): %s", s.Requests-s.OK, s.Requests, errorList(s.Errors))
	}
	if float64(s.Requests) < minSent*want {
		t.Errorf("only %d requests were sent, want about %d: the load generator did not keep the rate", s.Requests, want)
	}
	g.stillRunning(t)
}
