package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// table prints one row per target and round as they finish, in fixed-width
// columns (rows cannot wait for the whole run to be aligned).
type table struct {
	w     io.Writer
	width int // of the target column
}

func newTable(w io.Writer, names []string) *table {
	t := &table{w: w, width: len("target")}
	for _, n := range names {
		t.width = max(t.width, len(n))
	}
	return t
}

func opt(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

// columns: round, target, then right-aligned figures; errors last.
var columns = []struct {
	head  string
	width int
}{
	{"requests", 8}, {"ok %", 7}, {"req/s", 7}, {"img/s", 7}, {"p50", 7}, {"p90", 7}, {"p99", 7}, {"max", 7},
	{"pre p50", 7}, {"net p50", 7}, {"net p99", 7}, {"srv ms/img", 10}, {"srv cores", 9}, {"srv RSS", 7},
	{"bk ms/img", 9}, {"cli cores", 9},
}

func (t *table) line(round, name string, cells []string, errs string) {
	fmt.Fprintf(t.w, "%5s  %-*s", round, t.width, name)
	for i, c := range cells {
		fmt.Fprintf(t.w, "  %*s", columns[i].width, c)
	}
	if errs != "" {
		fmt.Fprintf(t.w, "  %s", errs)
	}
	fmt.Fprintln(t.w)
}

func (t *table) header() {
	heads := make([]string, len(columns))
	for i, c := range columns {
		heads[i] = c.head
	}
	fmt.Fprintln(t.w, "(latencies in ms; pre: preprocessing the gateway reported, net: latency minus it;"+
		" srv: the -pid process tree, CPU ms per image, cores busy, peak RSS MiB;"+
		" bk: the -backend-pid process tree, CPU ms per image; cli: this load generator)")
	t.line("round", "target", heads, "errors")
}

func (t *table) row(s stats) {
	errs := ""
	if len(s.Errors) > 0 {
		errs = errorList(s.Errors)
	}
	t.line(fmt.Sprint(s.Round), s.Target, []string{
		fmt.Sprint(s.Requests), fmt.Sprintf("%.2f", 100*s.SuccessRatio), fmt.Sprintf("%.1f", s.ReqPerSec),
		fmt.Sprintf("%.1f", s.ImgPerSec), fmt.Sprintf("%.2f", s.P50), fmt.Sprintf("%.2f", s.P90),
		fmt.Sprintf("%.2f", s.P99), fmt.Sprintf("%.2f", s.Max),
		opt(s.PreP50, "%.2f"), opt(s.NetP50, "%.2f"), opt(s.NetP99, "%.2f"),
		opt(s.CPUPerImg, "%.2f"), opt(s.CPUCores, "%.2f"), opt(s.PeakRSS, "%.0f"), opt(s.BackendCPUPerImg, "%.2f"),
		fmt.Sprintf("%.2f", s.ClientCores),
	}, errs)
}

// sp prints a median with its range.
func sp(s *spread, format string) string {
	if s == nil {
		return "-"
	}
	if len(s.Values) == 1 {
		return fmt.Sprintf(format, s.Median)
	}
	return fmt.Sprintf(format+" ["+format+"–"+format+"]", s.Median, s.Min, s.Max)
}

func printSummary(w io.Writer, rep report) {
	n := rep.Load.Rounds
	fmt.Fprintf(w, "\n## summary: median over %d round(s) [min–max]\n", n)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	backend := ""
	for _, s := range rep.Summary {
		if s.BackendCPU != nil {
			backend = "\tbackend cpu ms/img"
		}
	}
	fmt.Fprintln(tw, "target\trequests\tok %\timg/s\tp50 ms\tp99 ms\tnet p50 ms\tnet p99 ms\tsrv cpu ms/img\tsrv peak RSS MiB"+backend+"\terrors")
	for _, s := range rep.Summary {
		errs := ""
		if len(s.Errors) > 0 {
			errs = errorList(s.Errors)
		}
		bk := ""
		if backend != "" {
			bk = "\t" + sp(s.BackendCPU, "%.2f")
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s%s\t%s\n", s.Target, s.Requests, 100*s.SuccessRatio,
			sp(s.ImgPerSec, "%.1f"), sp(s.P50, "%.2f"), sp(s.P99, "%.2f"), sp(s.NetP50, "%.2f"), sp(s.NetP99, "%.2f"),
			sp(s.CPUPerImg, "%.2f"), opt(s.PeakRSS, "%.0f"), bk, errs)
	}
	_ = tw.Flush()
	if len(rep.Comparisons) == 0 {
		return
	}
	for i, c := range rep.Comparisons {
		if i == 0 || c.Baseline != rep.Comparisons[i-1].Baseline {
			fmt.Fprintf(w, "\n## against %s (×: target ÷ %s; ms: target − %s), round by round, then the median [min–max]\n",
				c.Baseline, c.Baseline, c.Baseline)
		}
		fmt.Fprintf(w, "%s: throughput ×%s; p50 %s ms (×%s); p99 %s ms (×%s)", c.Target,
			sp(c.ImgRatio, "%.2f"), sp(c.P50Diff, "%+.2f"), sp(c.P50Ratio, "%.2f"), sp(c.P99Diff, "%+.2f"), sp(c.P99Ratio, "%.2f"))
		if c.NetP50Diff != nil {
			fmt.Fprintf(w, "; net of its preprocessing: p50 %s ms, p99 %s ms", sp(c.NetP50Diff, "%+.2f"), sp(c.NetP99Diff, "%+.2f"))
		}
		if c.CPURatio != nil {
			fmt.Fprintf(w, "; server CPU per image ×%s", sp(c.CPURatio, "%.2f"))
		}
		fmt.Fprintln(w)
	}
}
