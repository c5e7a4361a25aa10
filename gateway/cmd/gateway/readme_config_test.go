package main

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestREADMEConfigurationTable holds the README's configuration table and the
// gateway's real defaults together: every variable the gateway reads is in the
// table, every variable of the table is read, and each default the table gives
// is the value the gateway uses when the variable is unset.
func TestREADMEConfigurationTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := readmeDefaults(t, string(readme))

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

// readmeDefaults reads the table of the README's Configuration section: each
// variable with its default, as the gateway would print it. A row may name
// several variables (`A`, `B` | `1`, `2`). Defaults that are computed from the
// machine are written in words; they are translated here to what the gateway
// records.
func readmeDefaults(t *testing.T, readme string) map[string]string {
	t.Helper()
	start := strings.Index(readme, "\n## Configuration\n")
	if start < 0 {
		t.Fatal("README has no Configuration section")
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	cores := runtime.GOMAXPROCS(0)
	words := map[string]string{
		"(off)":                                "",
		"(latest)":                             "",
		"4 × cores":                            strconv.Itoa(4 * cores),
		"cores":                                strconv.Itoa(cores),
		"cores / intra-op threads, at least 2": strconv.Itoa(max(2, cores/cores)), // with the default threads: cores
		"90% of the container's memory limit":  "",
	}
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	out := map[string]string{}
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		names := name.FindAllStringSubmatch(cells[1], -1)
		defaults := []string{strings.TrimSpace(cells[2])}
		if len(names) > 1 {
			defaults = strings.Split(defaults[0], ", ")
		}
		if len(names) == 0 || len(names) != len(defaults) {
			t.Fatalf("README configuration row %q: %d variables, %d defaults", line, len(names), len(defaults))
		}
		for i, n := range names {
			d := strings.TrimSpace(defaults[i])
			if v, ok := words[d]; ok {
				d = v
			} else {
				// `value` with an optional note after it: `0` (off).
				m := regexp.MustCompile("^`([^`]*)`").FindStringSubmatch(d)
				if m == nil {
					t.Fatalf("README: the default of %s, %q, is neither `a value` nor a known phrase", n[1], d)
				}
				d = m[1]
			}
			out[n[1]] = d
		}
		rows++
	}
	if rows < 20 {
		t.Fatalf("found only %d rows in the README's configuration table", rows)
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
