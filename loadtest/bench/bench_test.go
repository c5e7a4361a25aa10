package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(d, tt.p); got != tt.want {
			t.Errorf("percentile(1..100 ms, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v", got)
	}
	if got := percentile([]time.Duration{1, 2, 3, 4}, 51); got != 3 {
		t.Errorf("percentile([1 2 3 4], 51) = %v, want 3", got)
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var samples []sample
	for i := range 10 {
		samples = append(samples, sample{start: t0.Add(time.Duration(i) * 100 * time.Millisecond), lat: time.Duration(i+1) * time.Millisecond,
			code: 200, pre: time.Millisecond / 2, images: 2})
	}
	samples = append(samples, sample{start: t0, lat: time.Second, code: 429, err: "HTTP 429", pre: -1})
	st := summarize("x", 1, samples)
	if st.Requests != 11 || st.OK != 10 || st.Errors["HTTP 429"] != 1 {
		t.Fatalf("counts: %+v", st)
	}
	// The failed request's answer, 1 s after t0, ends the round.
	if st.Seconds != 1 || st.ReqPerSec != 10 || st.ImgPerSec != 20 {
		t.Errorf("seconds %v, req/s %v, img/s %v; want 1, 10, 20", st.Seconds, st.ReqPerSec, st.ImgPerSec)
	}
	if st.P50 != 5 || st.P99 != 10 || st.Max != 10 {
		t.Errorf("p50 %v p99 %v max %v; want 5, 10, 10 (failures excluded)", st.P50, st.P99, st.Max)
	}
	if st.PreP50 == nil || *st.PreP50 != 0.5 || *st.NetP50 != 4.5 {
		t.Errorf("pre/net: %v %v", st.PreP50, st.NetP50)
	}
}

func TestCompare(t *testing.T) {
	base := []stats{{ImgPerSec: 100, P50: 10, P99: 20, CPUPerImg: ptr(10)}, {ImgPerSec: 50, P50: 10, P99: 40, CPUPerImg: ptr(12)}}
	x := []stats{{ImgPerSec: 300, P50: 5, P99: 10, NetP50: ptr(11), NetP99: ptr(21), CPUPerImg: ptr(2)},
		{ImgPerSec: 200, P50: 15, P99: 20, NetP50: ptr(12), NetP99: ptr(41), CPUPerImg: ptr(4)}}
	c := compare("x", "b", true, x, base)
	if c.ImgRatio.Median != 3.5 || c.ImgRatio.Min != 3 || c.ImgRatio.Max != 4 {
		t.Errorf("throughput ratio %+v, want median 3.5 of 3 and 4", c.ImgRatio)
	}
	if c.P50Diff.Median != 0 || c.P99Diff.Median != -15 || c.NetP50Diff.Median != 1.5 {
		t.Errorf("diffs: p50 %+v p99 %+v net %+v", c.P50Diff, c.P99Diff, c.NetP50Diff)
	}
	if math.Abs(c.CPURatio.Median-(0.2+1.0/3)/2) > 1e-12 {
		t.Errorf("cpu ratio %+v, want median 0.27 of 0.2 and 0.33", c.CPURatio)
	}
	if c := compare("x", "b", false, x, base); c.NetP50Diff != nil {
		t.Error("net differences against a baseline that preprocesses")
	}
}

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (uvicorn: (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 123 456789 2560 18446744073709551615"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 17 || st.cpu != 3*time.Second || st.rssPages != 2560 || st.zombie {
		t.Errorf("parsed %+v", st)
	}
	if _, err := parseStat("garbage"); err == nil {
		t.Error("no error for a malformed line")
	}
}

// A fake /proc with a parent and a child: the tree's CPU and memory add up.
func TestMeasureTree(t *testing.T) {
	root := t.TempDir()
	write := func(pid, ppid, ticks int, rssKB, hwmKB int) {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (p) S %d 1 1 0 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 1 1 1 0", pid, ppid, ticks)
		status := fmt.Sprintf("Name:\tp\nVmHWM:\t%8d kB\nVmRSS:\t%8d kB\n", hwmKB, rssKB)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(10, 1, 100, 1024, 2048)
	write(11, 10, 50, 512, 1024)
	write(12, 1, 999, 999, 999) // not ours
	u, err := measureTree(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	if u.procs != 2 || u.cpu != 1500*time.Millisecond || u.rss != 1536<<10 || u.hwm != 3072<<10 {
		t.Errorf("tree usage %+v", u)
	}
	if _, err := measureTree(root, 99); err == nil {
		t.Error("no error for a missing process")
	}
}

func TestRequestBodies(t *testing.T) {
	imgs := []image{{"a.jpg", []byte("AAAA")}, {"b.png", []byte("BB")}, {"c.webp", []byte("C")}}
	for _, batch := range []int{0, 2} {
		bodies, cts := requestBodies(imgs, batch)
		if len(bodies) != 3 || len(cts) != 3 {
			t.Fatalf("batch %d: %d bodies", batch, len(bodies))
		}
		for i, b := range bodies {
			_, params, err := mime.ParseMediaType(cts[i])
			if err != nil {
				t.Fatal(err)
			}
			r := multipart.NewReader(bytes.NewReader(b), params["boundary"])
			var got []string
			for {
				p, err := r.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(p)
				got = append(got, p.FormName()+":"+p.FileName()+":"+p.Header.Get("Content-Type")+":"+string(data))
			}
			var want []string
			n, field := max(1, batch), "file"
			if batch > 0 {
				field = "files"
			}
			for j := range n {
				img := imgs[(i+j)%3]
				want = append(want, field+":"+img.name+":"+mediaType(img.name)+":"+string(img.data))
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("batch %d body %d: parts %q, want %q", batch, i, got, want)
			}
		}
	}
}

func TestCheckAnswer(t *testing.T) {
	for _, tt := range []struct {
		body    string
		batch   int
		pre     time.Duration
		problem string
	}{
		{`{"predictions":[{"label":"Trout","confidence":0.9}],"timings_ms":{"decode":1,"resize":0.5,"normalize":0.25}}`, 0, 1750 * time.Microsecond, ""},
		{`{"model":"m","predictions":[{"label":"Trout","confidence":0.9}]}`, 0, -1, ""},
		{`{"predictions":[]}`, 0, -1, "answer without predictions"},
		{`{"predictions":[{"label":"a","confidence":0.2},{"label":"b","confidence":0.7}]}`, 0, -1, "answer with malformed predictions"},
		{`{"predictions":[{"label":"a","confidence":1.5}]}`, 0, -1, "answer with malformed predictions"},
		{`{"predictions":[{"label":"","confidence":0.5}]}`, 0, -1, "answer with malformed predictions"},
		{`{"results":[{"predictions":[{"label":"a"}]},{"predictions":[]}]}`, 2, -1, "batch item without predictions"},
		{`not json`, 0, -1, "answer is not JSON"},
		{`{"results":[{"predictions":[{"label":"a"}]},{"predictions":[{"label":"b"}]}]}`, 2, -1, ""},
		{`{"results":[{"predictions":[{"label":"a"}]}]}`, 2, -1, "batch answer with 1 results"},
		{`{"results":[{"predictions":[{"label":"a"}]},{"error":{"code":"unprocessable_image"}}]}`, 2, -1, "batch item error unprocessable_image"},
	} {
		pre, problem := checkAnswer([]byte(tt.body), tt.batch)
		if problem != tt.problem || (problem == "" && pre != tt.pre) {
			t.Errorf("checkAnswer(%s, %d) = %v, %q; want %v, %q", tt.body, tt.batch, pre, problem, tt.pre, tt.problem)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nope"},
		{"rate"},
		{"rate", "-target", "a=ftp://x/"},
		{"rate", "-target", "a=http://x/", "-target", "a=http://y/"},
		{"rate", "-target", "a=http://x/", "-batch", "b=2"},
		{"rate", "-target", "a=http://x/", "-rate", "0"},
		{"max", "-target", "a=http://x/", "-c", "0"},
		{"rate", "-target", "a=http://x/", "-baseline", "z"},
		{"rate", "-target", "a=http://x/", "-target", "b=http://y/", "-baseline", "a,z"},
		{"rate", "-target", "a=http://x/", "-target", "b=http://y/", "-baseline", "a,a"},
		{"rate", "-target", "a=http://x/", "-target", "b=http://y/", "-baseline", "a,"},
		{"check", "-target", "a=grpc://x:1"},
		{"rate", "-target", "a=http://x/", "-order", "random"},
		{"rate", "-target", "a=http://x/", "-backend-pid", "-3"},
	} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("parse(%q): no error", args)
		}
	}
	o, err := parse([]string{"max", "-target", "d=grpc://127.0.0.1:8001", "-target", "g=http://127.0.0.1:8000/predict/batch",
		"-batch", "g=8", "-c", "4", "-baseline", "g"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.targets[0].grpc != "127.0.0.1:8001" || o.targets[1].Batch != 8 || o.load.conc != 4 || !slices.Equal(o.baselines, []string{"g"}) {
		t.Errorf("parsed %+v", o)
	}
	o, err = parse([]string{"max", "-target", "go=http://x/", "-target", "py=http://y/", "-target", "py-simd=http://z/",
		"-baseline", "py,py-simd"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.baselines, []string{"py", "py-simd"}) {
		t.Errorf("baselines %q, want [py py-simd]", o.baselines)
	}
	if o, err := parse([]string{"max", "-target", "a=http://x/", "-target", "b=http://y/"}, io.Discard); err != nil || !slices.Equal(o.baselines, []string{"a"}) {
		t.Errorf("default baseline: %v, %v; want [a]", o, err)
	}
}

// Each baseline in turn: every other target, but not the baselines already
// compared with it.
func TestCompareAll(t *testing.T) {
	targets := []target{{Name: "go"}, {Name: "py"}, {Name: "simd"}}
	per := [][]stats{{{ImgPerSec: 300}}, {{ImgPerSec: 100}}, {{ImgPerSec: 150}}}
	var got []string
	for _, c := range compareAll(targets, []string{"py", "simd"}, per) {
		got = append(got, fmt.Sprintf("%s/%s=%.1f", c.Target, c.Baseline, c.ImgRatio.Median))
	}
	if want := []string{"go/py=3.0", "simd/py=1.5", "go/simd=2.0"}; !slices.Equal(got, want) {
		t.Errorf("comparisons %q, want %q", got, want)
	}
}

// The whole measuring path against a local server: a fixed-rate and a closed
// loop, both targets alternating, JSON written.
func TestMeasureAgainstFakeGateways(t *testing.T) {
	var hits atomic.Int64
	answer := func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		f, _, err := r.FormFile("file")
		if err != nil {
			http.Error(w, "no file", http.StatusBadRequest)
			return
		}
		f.Close()
		fmt.Fprint(w, `{"predictions":[{"label":"Trout","confidence":0.9}],"timings_ms":{"decode":0.1,"resize":0,"normalize":0}}`)
	}
	a := httptest.NewServer(http.HandlerFunc(answer))
	defer a.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	img := filepath.Join(t.TempDir(), "x.jpg")
	if err := os.WriteFile(img, []byte("not really a JPEG"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "r.json")
	pid := fmt.Sprint(os.Getpid())
	for _, args := range [][]string{
		{"rate", "-rate", "50", "-duration", "300ms", "-warmup", "100ms", "-pause", "0s", "-rounds", "2", "-order", "abba",
			"-target", "a=" + a.URL, "-target", "b=" + a.URL, "-pid", "a=" + pid, "-backend-pid", pid, "-images", img, "-json", out},
		{"max", "-c", "2", "-duration", "200ms", "-warmup", "0s", "-pause", "0s", "-rounds", "1",
			"-target", "a=" + a.URL, "-target", "b=" + a.URL, "-images", img},
	} {
		var buf bytes.Buffer
		if err := run(args, &buf); err != nil {
			t.Fatalf("run %q: %v\n%s", args, err, buf.String())
		}
		for _, want := range []string{"round  target", "## summary", "## against a", "b: throughput ×"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("run %q: output lacks %q:\n%s", args, want, buf.String())
			}
		}
	}
	// Three targets compared with two baselines, as the campaign does with the
	// two Python peers: one section per baseline.
	var buf bytes.Buffer
	out3 := filepath.Join(t.TempDir(), "r3.json")
	if err := run([]string{"max", "-c", "1", "-duration", "150ms", "-warmup", "0s", "-pause", "0s", "-rounds", "1",
		"-target", "go=" + a.URL, "-target", "py=" + a.URL, "-target", "py-simd=" + a.URL, "-baseline", "py,py-simd",
		"-images", img, "-json", out3}, &buf); err != nil {
		t.Fatalf("three targets: %v\n%s", err, buf.String())
	}
	text := buf.String()
	ip, is := strings.Index(text, "## against py "), strings.Index(text, "## against py-simd ")
	if ip < 0 || is < ip {
		t.Fatalf("want a section against py, then one against py-simd:\n%s", text)
	}
	if !strings.Contains(text[ip:is], "go: throughput") || !strings.Contains(text[ip:is], "py-simd: throughput") ||
		!strings.Contains(text[is:], "go: throughput") || strings.Contains(text[is:], "\npy: throughput") {
		t.Errorf("sections: want go and py-simd against py, go alone against py-simd:\n%s", text)
	}
	var rep3 report
	if b, err := os.ReadFile(out3); err != nil || json.Unmarshal(b, &rep3) != nil {
		t.Fatalf("JSON report: %v", err)
	}
	if rep3.Baseline != "py" || !slices.Equal(rep3.Baselines, []string{"py", "py-simd"}) || len(rep3.Comparisons) != 3 {
		t.Errorf("JSON: baseline %q, baselines %q, %d comparisons; want py, [py py-simd], 3", rep3.Baseline, rep3.Baselines, len(rep3.Comparisons))
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Contains(b, []byte(`"comparisons"`)) || !bytes.Contains(b, []byte(`"backend_cpu_ms_per_img"`)) {
		t.Errorf("JSON report: %v\n%s", err, b)
	}
	if hits.Load() < 40 {
		t.Errorf("only %d requests reached the server", hits.Load())
	}
	// A target that never answers correctly stops the run at its warm-up.
	err := run([]string{"rate", "-rate", "20", "-duration", "100ms", "-warmup", "100ms", "-pause", "0s",
		"-target", "x=" + broken.URL, "-images", img}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("broken target: err = %v, want one naming HTTP 503", err)
	}
}

// runBench runs bench with args as the command line would (its -images read
// below root), logs its output and returns its report; it fails the test when
// bench cannot run.
func runBench(t *testing.T, root string, args []string) report {
	t.Helper()
	o, err := parse(args, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := loadImages(o.images, root)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep, err := measure(o, imgs, &out)
	t.Logf("bench %s\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
