package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is what -json writes.
type report struct {
	Mode        string          `json:"mode"`
	Label       string          `json:"label,omitempty"`
	Args        []string        `json:"args"`
	Started     time.Time       `json:"started"`
	Finished    time.Time       `json:"finished"`
	Load        loadInfo        `json:"load"`
	Images      []string        `json:"images"`
	Machine     machine         `json:"machine"`
	Targets     []target        `json:"targets"`
	Baseline    string          `json:"baseline"`  // the first of Baselines
	Baselines   []string        `json:"baselines"` // every target the others are compared with
	Rounds      []stats         `json:"rounds"`
	Summary     []targetSummary `json:"summary"`
	Comparisons []comparison    `json:"comparisons"`
}

type loadInfo struct {
	Rate     float64 `json:"rate_per_s,omitempty"`
	Conc     int     `json:"connections,omitempty"`
	Duration float64 `json:"duration_s"`
	Rounds   int     `json:"rounds"`
	Order    string  `json:"order"`
	Warmup   float64 `json:"warmup_s"`
}

type machine struct {
	CPU          string `json:"cpu"`
	Cores        int    `json:"cores"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	for _, line := range strings.Split(readTrim("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// measure runs the rounds, prints the table and the summary, writes -json, and
// returns the report: an error when a target answered nothing correctly.
func measure(o *options, imgs []image, stdout io.Writer) (report, error) {
	rep := report{
		Mode: o.mode, Label: o.label, Args: os.Args[1:], Started: time.Now(),
		Load: loadInfo{Rate: o.load.rate, Conc: o.load.conc, Duration: o.load.dur.Seconds(), Rounds: o.rounds,
			Order: o.order, Warmup: o.warmup.Seconds()},
		Machine: machine{CPU: cpuModel(), Cores: runtime.NumCPU(), Kernel: readTrim("/proc/sys/kernel/osrelease"),
			GoVersion: runtime.Version(), LoadAvgStart: readTrim("/proc/loadavg")},
		Targets: o.targets, Baseline: o.baselines[0], Baselines: o.baselines,
	}
	for _, img := range imgs {
		rep.Images = append(rep.Images, img.name)
	}

	runners := make([]runner, len(o.targets))
	var tens [][]byte
	for i, t := range o.targets {
		if t.grpc == "" {
			runners[i] = newHTTPRunner(t.Name, t.URL, imgs, t.Batch)
			continue
		}
		if tens == nil {
			var err error
			if tens, err = tensors(imgs, o.model); err != nil {
				return rep, fmt.Errorf("preprocessing the images for direct calls: %w", err)
			}
		}
		r, err := newGRPCRunner(t.Name, t.grpc, o.model, o.input, o.output, tens)
		if err != nil {
			return rep, fmt.Errorf("-target %s: %w", t.Name, err)
		}
		runners[i] = r
	}
	defer func() {
		for _, r := range runners {
			r.close()
		}
	}()

	title := o.load.String()
	if o.label != "" {
		title = o.label + ": " + title
	}
	fmt.Fprintf(stdout, "# %s; %d round(s), order %s; %d images\n", title, o.rounds, o.order, len(imgs))

	// Warm-up: connections, pools, the servers' caches. A target that answers
	// nothing correctly stops the run here, with what it answered.
	if o.warmup > 0 {
		for i, t := range o.targets {
			ld := o.load
			ld.dur = o.warmup
			st := summarize(t.Name, 0, runners[i].run(ld))
			if st.OK == 0 {
				return rep, fmt.Errorf("target %s (%s) answered no request correctly during the warm-up: %s", t.Name, t.URL, errorList(st.Errors))
			}
			time.Sleep(o.pause)
		}
	}
	if o.resetHWM {
		for _, t := range o.targets {
			if t.PID > 0 {
				if err := resetPeak(o.procRoot, t.PID); err != nil {
					return rep, fmt.Errorf("-reset-hwm: %w", err)
				}
			}
		}
	}

	names := make([]string, len(o.targets))
	for i, t := range o.targets {
		names[i] = t.Name
	}
	tw := newTable(stdout, names)
	tw.header()
	perTarget := make([][]stats, len(o.targets))
	for round := 1; round <= o.rounds; round++ {
		order := make([]int, len(o.targets))
		for i := range order {
			order[i] = i
		}
		if o.order == "abba" && round%2 == 0 {
			slices.Reverse(order)
		}
		for _, i := range order {
			t := o.targets[i]
			var smp, backend *sampler
			if t.PID > 0 {
				smp = startSampler(o.procRoot, t.PID, o.sampleDt)
			}
			if o.backendPID > 0 {
				backend = startSampler(o.procRoot, o.backendPID, o.sampleDt)
			}
			self0, wall0 := selfCPU(), time.Now()
			samples := runners[i].run(o.load)
			st := summarize(t.Name, round, samples)
			st.ClientCores = (selfCPU() - self0).Seconds() / time.Since(wall0).Seconds()
			if smp != nil {
				cpu, peak, hwm, err := smp.finish()
				if err != nil {
					return rep, fmt.Errorf("watching %s (pid %d): %w", t.Name, t.PID, err)
				}
				images := st.ImgPerSec * st.Seconds
				if images > 0 {
					st.CPUPerImg = ptr(ms(cpu) / images)
				}
				st.CPUCores = ptr(cpu.Seconds() / time.Since(wall0).Seconds())
				st.PeakRSS, st.HWM = ptr(float64(peak)/(1<<20)), ptr(float64(hwm)/(1<<20))
				st.Procs = smp.end.procs
			}
			if backend != nil {
				cpu, _, _, err := backend.finish()
				if err != nil {
					return rep, fmt.Errorf("watching -backend-pid %d: %w", o.backendPID, err)
				}
				if images := st.ImgPerSec * st.Seconds; images > 0 {
					st.BackendCPUPerImg = ptr(ms(cpu) / images)
				}
				st.BackendCores = ptr(cpu.Seconds() / time.Since(wall0).Seconds())
			}
			perTarget[i] = append(perTarget[i], st)
			rep.Rounds = append(rep.Rounds, st)
			tw.row(st)
			time.Sleep(o.pause)
		}
	}

	for i, t := range o.targets {
		rep.Summary = append(rep.Summary, summarizeTarget(t.Name, perTarget[i]))
	}
	rep.Comparisons = compareAll(o.targets, o.baselines, perTarget)
	rep.Finished = time.Now()
	rep.Machine.LoadAvgEnd = readTrim("/proc/loadavg")
	printSummary(stdout, rep)

	if o.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return rep, err
		}
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return rep, err
		}
		fmt.Fprintf(stdout, "wrote %s\n", o.jsonPath)
	}
	for _, s := range rep.Summary {
		if s.OK == 0 {
			return rep, fmt.Errorf("target %s answered no request correctly: %s", s.Target, errorList(s.Errors))
		}
	}
	return rep, nil
}

// compareAll compares every target with each baseline in turn, leaving out the
// baseline itself and the baselines before it (already compared with it).
func compareAll(targets []target, baselines []string, perTarget [][]stats) []comparison {
	index := map[string]int{}
	for i, t := range targets {
		index[t.Name] = i
	}
	var out []comparison
	for k, b := range baselines {
		base := index[b]
		for i, t := range targets {
			if i == base || slices.Contains(baselines[:k], t.Name) {
				continue
			}
			out = append(out, compare(t.Name, b, targets[base].grpc != "", perTarget[i], perTarget[base]))
		}
	}
	return out
}

// errorList prints error counts, most frequent first.
func errorList(errs map[string]int) string {
	if len(errs) == 0 {
		return "no requests"
	}
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if errs[a] != errs[b] {
			return errs[b] - errs[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d× %s", errs[k], k)
	}
	return strings.Join(parts, ", ")
}
