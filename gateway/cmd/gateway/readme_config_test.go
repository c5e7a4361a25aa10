package main

import (
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// TestREADMEConfigurationTable holds the README's configuration table and the
// gateway's real defaults together: every variable the gateway reads is in the
// table, every variable of the table is read, and each default the table gives
// is the value the gateway uses when the variable is unset.
func TestREADMEConfigurationTable(t *testing.T) {
	documented := readmeDefaults(t)

	c, err := loadConfig(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("the defaults do not load: %v", err)
	}
	read := map[string]string{}
	for _, s := range c.settings {
		read[s.Name] = s.Value
	}
	// Read by the Go runtime and automemlimit, not through the gateway's env.
	outside := map[string]bool{"GOMEMLIMIT": true}

	for name, want := range documented {
		if outside[name] {
			continue
		}
		got, ok := read[name]
		if !ok {
			t.Errorf("README documents %s, which the gateway does not read", name)
			continue
		}
		if !sameDefault(got, want) {
			t.Errorf("%s: README says the default is %q, the gateway uses %q", name, want, got)
		}
	}
	for name := range read {
		if _, ok := documented[name]; !ok {
			t.Errorf("the gateway reads %s, which the README's configuration table does not document", name)
		}
	}
}

// readmeDefaults is the README configuration table's default of each
// variable, as the gateway would print it. Defaults that are computed from the
// machine are written in words; they are translated here to what the gateway
// records.
func readmeDefaults(t *testing.T) map[string]string {
	t.Helper()
	cores := runtime.GOMAXPROCS(0)
	words := map[string]string{
		"(off)":                                "",
		"(latest)":                             "",
		"4 × cores":                            strconv.Itoa(4 * cores),
		"cores":                                strconv.Itoa(cores),
		"cores / intra-op threads, at least 2": strconv.Itoa(max(2, cores/cores)), // with the default threads: cores
		"90% of the container's memory limit":  "",
	}
	value := regexp.MustCompile("^`([^`]*)`")
	out := map[string]string{}
	for _, row := range testenv.ConfigTable(t) {
		for i, n := range row.Names {
			d := strings.TrimSpace(row.Defaults[i])
			if v, ok := words[d]; ok {
				d = v
			} else {
				// `value` with an optional note after it: `0` (off).
				m := value.FindStringSubmatch(d)
				if m == nil {
					t.Fatalf("README: the default of %s, %q, is neither `a value` nor a known phrase", n, d)
				}
				d = m[1]
			}
			out[n] = d
		}
	}
	return out
}

// sameDefault compares a recorded default with a documented one: equal text, or
// equal as durations (60s and 1m0s), or equal as numbers.
func sameDefault(got, want string) bool {
	if got == want {
		return true
	}
	if g, err := time.ParseDuration(got); err == nil {
		if w, err := time.ParseDuration(want); err == nil {
			return g == w
		}
	}
	if g, err := strconv.ParseFloat(got, 64); err == nil {
		if w, err := strconv.ParseFloat(want, 64); err == nil {
			return g == w
		}
	}
	return false
}
