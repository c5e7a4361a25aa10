package main

import (
	"math"
	"slices"
	"sort"
	"time"
)

// stats is one target's figures in one round. Latencies are in milliseconds,
// nearest-rank percentiles over the successful requests; throughput counts
// successful requests (and the images they classified) over the time from the
// first send to the last answer.
type stats struct {
	Target       string         `json:"target"`
	Round        int            `json:"round"`
	Requests     int            `json:"requests"`
	OK           int            `json:"ok"`
	Errors       map[string]int `json:"errors,omitempty"`
	SuccessRatio float64        `json:"success_ratio"`
	Seconds      float64        `json:"seconds"`
	ReqPerSec    float64        `json:"req_per_s"`
	ImgPerSec    float64        `json:"img_per_s"`
	P50          float64        `json:"p50_ms"`
	P90          float64        `json:"p90_ms"`
	P95          float64        `json:"p95_ms"`
	P99          float64        `json:"p99_ms"`
	Max          float64        `json:"max_ms"`
	// Present when the answers reported their preprocessing (the Go gateway's
	// timings_ms): its median, and the latency percentiles of each request's
	// latency minus its own preprocessing.
	PreP50 *float64 `json:"pre_p50_ms,omitempty"`
	NetP50 *float64 `json:"net_p50_ms,omitempty"`
	NetP99 *float64 `json:"net_p99_ms,omitempty"`
	// Present with -pid: the server's process tree during the round.
	CPUPerImg *float64 `json:"server_cpu_ms_per_img,omitempty"`
	CPUCores  *float64 `json:"server_cpu_cores,omitempty"`
	PeakRSS   *float64 `json:"peak_rss_mib,omitempty"` // peak of the tree's summed VmRSS, polled
	HWM       *float64 `json:"vmhwm_mib,omitempty"`    // summed VmHWM at the end of the round
	Procs     int      `json:"procs,omitempty"`
	// Present with -backend-pid: the inference server's process tree during the
	// round (it serves this target only while the target is under load).
	BackendCPUPerImg *float64 `json:"backend_cpu_ms_per_img,omitempty"`
	BackendCores     *float64 `json:"backend_cpu_cores,omitempty"`
	// The load generator's own CPU during the round, in cores.
	ClientCores float64 `json:"client_cpu_cores"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr(v float64) *float64 { return &v }

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// summarize computes a round's figures from its samples.
func summarize(name string, round int, samples []sample) stats {
	st := stats{Target: name, Round: round, Requests: len(samples)}
	var lat, pre, net []time.Duration
	var first, last time.Time
	images := 0
	for _, s := range samples {
		if first.IsZero() || s.start.Before(first) {
			first = s.start
		}
		if end := s.start.Add(s.lat); end.After(last) {
			last = end
		}
		if s.err != "" {
			if st.Errors == nil {
				st.Errors = map[string]int{}
			}
			st.Errors[s.err]++
			continue
		}
		st.OK++
		images += s.images
		lat = append(lat, s.lat)
		if s.pre >= 0 {
			pre = append(pre, s.pre)
			net = append(net, s.lat-s.pre)
		}
	}
	if st.Requests > 0 {
		st.SuccessRatio = float64(st.OK) / float64(st.Requests)
	}
	if secs := last.Sub(first).Seconds(); secs > 0 {
		st.Seconds = secs
		st.ReqPerSec = float64(st.OK) / secs
		st.ImgPerSec = float64(images) / secs
	}
	slices.Sort(lat)
	st.P50, st.P90, st.P95 = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 95))
	st.P99, st.Max = ms(percentile(lat, 99)), ms(percentile(lat, 100))
	if len(pre) > 0 && len(pre) == len(lat) {
		slices.Sort(pre)
		slices.Sort(net)
		st.PreP50 = ptr(ms(percentile(pre, 50)))
		st.NetP50 = ptr(ms(percentile(net, 50)))
		st.NetP99 = ptr(ms(percentile(net, 99)))
	}
	return st
}

// spread is a median with its range, over rounds.
type spread struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values"`
}

func spreadOf(v []float64) *spread {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &spread{Median: m, Min: s[0], Max: s[len(s)-1], Values: v}
}

// targetSummary is one target over all rounds.
type targetSummary struct {
	Target       string         `json:"target"`
	Requests     int            `json:"requests"`
	OK           int            `json:"ok"`
	Errors       map[string]int `json:"errors,omitempty"`
	SuccessRatio float64        `json:"success_ratio"`
	ImgPerSec    *spread        `json:"img_per_s"`
	ReqPerSec    *spread        `json:"req_per_s"`
	P50          *spread        `json:"p50_ms"`
	P99          *spread        `json:"p99_ms"`
	Max          *spread        `json:"max_ms"`
	PreP50       *spread        `json:"pre_p50_ms,omitempty"`
	NetP50       *spread        `json:"net_p50_ms,omitempty"`
	NetP99       *spread        `json:"net_p99_ms,omitempty"`
	CPUPerImg    *spread        `json:"server_cpu_ms_per_img,omitempty"`
	BackendCPU   *spread        `json:"backend_cpu_ms_per_img,omitempty"`
	PeakRSS      *float64       `json:"peak_rss_mib,omitempty"` // highest of the rounds
	HWM          *float64       `json:"vmhwm_mib,omitempty"`
}

// comparison is a target against the baseline, round by round (each round's
// two figures were measured minutes apart at most), then the median.
type comparison struct {
	Target   string  `json:"target"`
	Baseline string  `json:"baseline"`
	ImgRatio *spread `json:"throughput_ratio"` // target img/s ÷ baseline img/s
	P50Diff  *spread `json:"p50_diff_ms"`      // target − baseline
	P99Diff  *spread `json:"p99_diff_ms"`
	P50Ratio *spread `json:"p50_ratio"`
	P99Ratio *spread `json:"p99_ratio"`
	// The target's latency net of its reported preprocessing minus the
	// baseline's latency: the gateway's overhead over a direct call.
	NetP50Diff *spread `json:"net_p50_diff_ms,omitempty"`
	NetP99Diff *spread `json:"net_p99_diff_ms,omitempty"`
	// Server CPU per image: target ÷ baseline.
	CPURatio *spread `json:"server_cpu_ratio,omitempty"`
}

func summarizeTarget(name string, rounds []stats) targetSummary {
	ts := targetSummary{Target: name}
	var img, req, p50, p99, mx, pre, np50, np99, cpu, bk []float64
	for _, r := range rounds {
		ts.Requests += r.Requests
		ts.OK += r.OK
		for k, v := range r.Errors {
			if ts.Errors == nil {
				ts.Errors = map[string]int{}
			}
			ts.Errors[k] += v
		}
		img, req = append(img, r.ImgPerSec), append(req, r.ReqPerSec)
		p50, p99, mx = append(p50, r.P50), append(p99, r.P99), append(mx, r.Max)
		if r.PreP50 != nil {
			pre, np50, np99 = append(pre, *r.PreP50), append(np50, *r.NetP50), append(np99, *r.NetP99)
		}
		if r.CPUPerImg != nil {
			cpu = append(cpu, *r.CPUPerImg)
		}
		if r.BackendCPUPerImg != nil {
			bk = append(bk, *r.BackendCPUPerImg)
		}
		if r.PeakRSS != nil && (ts.PeakRSS == nil || *r.PeakRSS > *ts.PeakRSS) {
			ts.PeakRSS = ptr(*r.PeakRSS)
		}
		if r.HWM != nil && (ts.HWM == nil || *r.HWM > *ts.HWM) {
			ts.HWM = ptr(*r.HWM)
		}
	}
	if ts.Requests > 0 {
		ts.SuccessRatio = float64(ts.OK) / float64(ts.Requests)
	}
	ts.ImgPerSec, ts.ReqPerSec = spreadOf(img), spreadOf(req)
	ts.P50, ts.P99, ts.Max = spreadOf(p50), spreadOf(p99), spreadOf(mx)
	ts.PreP50, ts.NetP50, ts.NetP99 = spreadOf(pre), spreadOf(np50), spreadOf(np99)
	ts.CPUPerImg, ts.BackendCPU = spreadOf(cpu), spreadOf(bk)
	return ts
}

// compare sets the net-of-preprocessing differences only against a direct
// baseline (one that does no preprocessing).
func compare(name, base string, direct bool, target, baseline []stats) comparison {
	c := comparison{Target: name, Baseline: base}
	var ratio, d50, d99, r50, r99, n50, n99, cpu []float64
	for i := range min(len(target), len(baseline)) {
		t, b := target[i], baseline[i]
		if b.ImgPerSec > 0 {
			ratio = append(ratio, t.ImgPerSec/b.ImgPerSec)
		}
		d50, d99 = append(d50, t.P50-b.P50), append(d99, t.P99-b.P99)
		if b.P50 > 0 && b.P99 > 0 {
			r50, r99 = append(r50, t.P50/b.P50), append(r99, t.P99/b.P99)
		}
		if direct && t.NetP50 != nil {
			n50, n99 = append(n50, *t.NetP50-b.P50), append(n99, *t.NetP99-b.P99)
		}
		if t.CPUPerImg != nil && b.CPUPerImg != nil && *b.CPUPerImg > 0 {
			cpu = append(cpu, *t.CPUPerImg / *b.CPUPerImg)
		}
	}
	c.ImgRatio, c.P50Diff, c.P99Diff = spreadOf(ratio), spreadOf(d50), spreadOf(d99)
	c.P50Ratio, c.P99Ratio = spreadOf(r50), spreadOf(r99)
	c.NetP50Diff, c.NetP99Diff = spreadOf(n50), spreadOf(n99)
	c.CPURatio = spreadOf(cpu)
	return c
}
