// Command bench measures HTTP inference gateways (and, for reference, a direct
// gRPC ModelInfer call to the inference server behind them) side by side, with
// the same images, in alternating rounds so that every ratio comes from one run
// on one noisy machine. HTTP load comes from vegeta (github.com/tsenart/vegeta)
// used as a library.
//
//	go run ./loadtest/bench rate  -target go=http://127.0.0.1:18100/predict -target py=http://127.0.0.1:18110/predict -rate 40
//	go run ./loadtest/bench max   -target go=... -target py=... -c 16 -pid go=1234 -pid py=5678
//	go run ./loadtest/bench max   -target go=... -target py=... -target py-simd=... -baseline py,py-simd
//	go run ./loadtest/bench rate  -target direct=grpc://127.0.0.1:8001 -target go=http://127.0.0.1:18100/predict -rate 50
//	go run ./loadtest/bench check -target go=... -target py=...
//
// rate: an open-loop attack at a fixed rate (requests/s) for -duration;
// max: -c connections each sending its next request as soon as the answer
// came back (closed loop: throughput at saturation);
// check: every image once to every target; their top-1 predictions must agree.
//
// Each round runs every target once, in turn (-order alternate: A B, A B, ...;
// abba: A B, B A, ...). Latency percentiles are exact (nearest rank) over the
// successful requests, measured from the moment a request was sent; throughput
// counts successful answers only. Every target is compared with the -baseline
// (or with each of several, in turn). With -pid NAME=PID the server's process tree
// (the PID and its descendants) is watched: CPU time per image and the peak of
// its summed resident memory; with -backend-pid PID the inference server behind
// the targets too (its CPU per image while each target is under load). The
// table goes to stdout, -json writes everything.
// See README.md in this directory.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const usage = `usage: bench rate|max|check [flags]   (bench <mode> -h lists the flags)`

// multiFlag collects repeated NAME=VALUE flags in order.
type multiFlag struct{ kv [][2]string }

func (m *multiFlag) String() string { return "" }
func (m *multiFlag) Set(v string) error {
	name, val, ok := strings.Cut(v, "=")
	if !ok || name == "" || val == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	m.kv = append(m.kv, [2]string{name, val})
	return nil
}

// target is one thing under load.
type target struct {
	Name  string `json:"name"`
	URL   string `json:"url"`
	Batch int    `json:"batch,omitempty"`
	PID   int    `json:"pid,omitempty"`
	grpc  string // host:port for direct ModelInfer calls
}

// options are a run's settings, parsed and checked.
type options struct {
	mode      string
	targets   []target
	baselines []string
	images    string
	load      load
	rounds    int
	warmup    time.Duration
	pause     time.Duration
	order     string
	jsonPath  string
	resetHWM  bool
	// backendPID is the inference server behind the targets (Triton), watched
	// during every target's run; 0: none.
	backendPID int
	model      string
	input      string
	output     string
	label      string
	tolerance  float64
	procRoot   string
	sampleDt   time.Duration
}

func parse(args []string, stderr io.Writer) (*options, error) {
	if len(args) == 0 {
		return nil, errors.New(usage)
	}
	o := &options{mode: args[0], procRoot: "/proc", sampleDt: 50 * time.Millisecond}
	switch o.mode {
	case "rate", "max", "check":
	default:
		return nil, fmt.Errorf("unknown mode %q; %s", o.mode, usage)
	}
	fs := flag.NewFlagSet("bench "+o.mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var targets, batches, pids multiFlag
	fs.Var(&targets, "target", "NAME=URL, repeated: an HTTP predict URL (multipart field \"file\"; /predict/batch with -batch), or grpc://HOST:PORT for direct ModelInfer calls with ready-made tensors")
	fs.Var(&batches, "batch", "NAME=N: send N images per request to that target (multipart fields \"files\", for POST /predict/batch)")
	fs.Var(&pids, "pid", "NAME=PID: watch this server process (and its descendants): CPU per image, peak RSS")
	var baselines string
	fs.StringVar(&baselines, "baseline", "", "target the others are compared with (default: the first); NAME,NAME,...: compared with each in turn")
	fs.StringVar(&o.images, "images", "", "comma-separated image files or directories (default: five photo-like JPEGs of the repository, 640x480 to 1024x768)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every target once")
	fs.DurationVar(&o.load.dur, "duration", 10*time.Second, "length of each target's run in each round")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load each target this long before the first round (not measured)")
	fs.DurationVar(&o.pause, "pause", time.Second, "idle time between runs (queues drain)")
	fs.DurationVar(&o.load.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.StringVar(&o.order, "order", "alternate", "alternate (A B, A B, ...) or abba (A B, B A, ...)")
	fs.StringVar(&o.jsonPath, "json", "", "write the configuration, every round and the summary to this file")
	fs.IntVar(&o.backendPID, "backend-pid", 0, "PID of the inference server behind the targets (Triton): its process tree's CPU per image during each target's run")
	fs.BoolVar(&o.resetHWM, "reset-hwm", false, "reset the -pid processes' VmHWM before the first round (writes /proc/PID/clear_refs)")
	fs.StringVar(&o.model, "model", "fish_classifier", "model name for grpc:// targets")
	fs.StringVar(&o.input, "input", "input", "input tensor name for grpc:// targets (FP32 [1,3,224,224])")
	fs.StringVar(&o.output, "output", "logits", "output tensor name for grpc:// targets")
	fs.StringVar(&o.label, "label", "", "free text recorded in the JSON and the table's title")
	if o.mode == "rate" {
		fs.Float64Var(&o.load.rate, "rate", 20, "requests per second (open loop)")
	}
	if o.mode == "max" {
		fs.IntVar(&o.load.conc, "c", 16, "connections (closed loop)")
	}
	if o.mode == "check" {
		fs.Float64Var(&o.tolerance, "tolerance", 0.01, "largest difference of the top-1 confidences allowed between targets")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	seen := map[string]int{}
	for _, kv := range targets.kv {
		if _, dup := seen[kv[0]]; dup {
			return nil, fmt.Errorf("-target %s given twice", kv[0])
		}
		u, err := url.Parse(kv[1])
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("-target %s: %q is not a URL", kv[0], kv[1])
		}
		t := target{Name: kv[0], URL: kv[1]}
		switch u.Scheme {
		case "http", "https":
		case "grpc":
			if o.mode == "check" {
				return nil, fmt.Errorf("-target %s: check compares HTTP gateways only", kv[0])
			}
			t.grpc = u.Host
		default:
			return nil, fmt.Errorf("-target %s: scheme %q: want http, https or grpc", kv[0], u.Scheme)
		}
		seen[kv[0]] = len(o.targets)
		o.targets = append(o.targets, t)
	}
	if len(o.targets) == 0 {
		return nil, errors.New("no -target")
	}
	for _, kv := range batches.kv {
		i, ok := seen[kv[0]]
		n, err := strconv.Atoi(kv[1])
		if !ok || err != nil || n < 1 || o.targets[i].grpc != "" {
			return nil, fmt.Errorf("-batch %s=%s: want an HTTP target's name and a positive number", kv[0], kv[1])
		}
		o.targets[i].Batch = n
	}
	for _, kv := range pids.kv {
		i, ok := seen[kv[0]]
		n, err := strconv.Atoi(kv[1])
		if !ok || err != nil || n < 1 {
			return nil, fmt.Errorf("-pid %s=%s: want a target's name and a process id", kv[0], kv[1])
		}
		if _, err := readStat(o.procRoot, n); err != nil {
			return nil, fmt.Errorf("-pid %s=%d: %w", kv[0], n, err)
		}
		o.targets[i].PID = n
	}
	if o.backendPID != 0 {
		if _, err := readStat(o.procRoot, o.backendPID); o.backendPID < 0 || err != nil {
			return nil, fmt.Errorf("-backend-pid %d: not a process (%v)", o.backendPID, err)
		}
	}
	if baselines == "" {
		baselines = o.targets[0].Name
	}
	for _, b := range strings.Split(baselines, ",") {
		if _, ok := seen[b]; !ok {
			return nil, fmt.Errorf("-baseline %q is not a target", b)
		}
		if slices.Contains(o.baselines, b) {
			return nil, fmt.Errorf("-baseline %q given twice", b)
		}
		o.baselines = append(o.baselines, b)
	}
	switch {
	case o.rounds < 1:
		return nil, errors.New("-rounds must be at least 1")
	case o.load.dur <= 0 || o.load.timeout <= 0 || o.warmup < 0 || o.pause < 0:
		return nil, errors.New("-duration and -timeout must be positive, -warmup and -pause not negative")
	case o.mode == "rate" && o.load.rate <= 0:
		return nil, errors.New("-rate must be positive")
	case o.mode == "max" && o.load.conc < 1:
		return nil, errors.New("-c must be at least 1")
	case o.order != "alternate" && o.order != "abba":
		return nil, fmt.Errorf("-order %q: want alternate or abba", o.order)
	}
	return o, nil
}

// repoRoot finds the module root (for the default images) from the working
// directory upwards.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func run(args []string, stdout io.Writer) error {
	o, err := parse(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	list := o.images
	if o.mode == "check" && list == "" {
		list = checkImages
	}
	root := repoRoot()
	if list != "" && list == checkImages {
		// Relative to the repository, wherever bench runs from.
		parts := strings.Split(list, ",")
		for i, p := range parts {
			parts[i] = filepath.Join(root, p)
		}
		list = strings.Join(parts, ",")
	}
	imgs, err := loadImages(list, root)
	if err != nil {
		return err
	}
	if o.mode == "check" {
		return check(o, imgs, stdout)
	}
	_, err = measure(o, imgs, stdout)
	return err
}
