// Command loadgen is a small closed-loop load generator for the gateway's
// predict routes: C workers send N requests (one image, or a batch of B images
// per request) as fast as the answers come back, then it prints requests/s,
// images/s, p50/p99 latency and, given the gateway's pid, its peak resident
// memory (VmHWM). The k6 scripts are the open-loop, dashboard-facing load tests;
// this is the quick measurement behind the throughput figures of
// docs/performance.md.
//
//	go run ./loadtest/loadgen -file preprocess/testdata/bench/photo_640x480.jpg -c 8 -n 600
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/formdata"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8000", "gateway base URL")
	file := flag.String("file", "", "image to send (required)")
	conc := flag.Int("c", 1, "concurrent workers")
	n := flag.Int("n", 200, "requests in all")
	batch := flag.Int("batch", 0, "images per /predict/batch request; 0 sends single /predict requests")
	pid := flag.Int("pid", 0, "gateway process id: print its peak RSS at the end")
	flag.Parse()
	if err := run(*url, *file, *conc, *n, *batch, *pid); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(url, file string, conc, n, batch, pid int) error {
	img, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if conc < 1 || n < 1 || batch < 0 {
		return fmt.Errorf("-c and -n must be positive, -batch not negative")
	}
	body, contentType, path := requestBody(img, batch)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: time.Minute}
	lat := make([]time.Duration, n)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(url+path, contentType, bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					lat[i] = -1
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					lat[i] = -1
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	ok := lat[:0]
	for _, d := range lat {
		if d >= 0 {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return fmt.Errorf("all %d requests failed", n)
	}
	sort.Slice(ok, func(a, b int) bool { return ok[a] < ok[b] })
	pct := func(p float64) float64 { return float64(ok[int(p*float64(len(ok)-1))].Microseconds()) / 1000 }
	images := max(1, batch)
	fmt.Printf("c=%d batch=%d n=%d failed=%d: %.1f req/s, %.1f images/s, p50 %.1f ms, p99 %.1f ms\n",
		conc, batch, n, failed.Load(), float64(len(ok))/elapsed.Seconds(), float64(len(ok)*images)/elapsed.Seconds(), pct(0.5), pct(0.99))
	if pid > 0 {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				fmt.Println("gateway peak RSS:", strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")))
			}
		}
	}
	return nil
}

// requestBody builds the multipart body once: one "file" part, or batch "files" parts.
func requestBody(img []byte, batch int) (body []byte, contentType, path string) {
	field, path, n := "file", "/predict", 1
	if batch > 0 {
		field, path, n = "files", "/predict/batch", batch
	}
	parts := make([]formdata.Part, n)
	for i := range parts {
		parts[i] = formdata.File(field, fmt.Sprintf("image%d.jpg", i), img)
	}
	body, contentType, _ = formdata.Encode(parts...) // into memory: cannot fail
	return body, contentType, path
}
