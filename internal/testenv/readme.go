package testenv

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ConfigRow is one row of the README's configuration table: the variables it
// names (a row may name several: `A`, `B`) and its default cell, split the same
// way ("`1`, `2`"), each as written.
type ConfigRow struct {
	Names    []string
	Defaults []string
	Line     string
}

var configName = regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")

// ConfigTable reads the table of the README's "## Configuration" section, the
// one place the gateway's environment variables and their defaults are
// documented; the tests that hold the gateway, the compose file and the Helm
// chart to it read it here.
func ConfigTable(tb testing.TB) []ConfigRow {
	tb.Helper()
	readme, err := os.ReadFile(filepath.Join(RepoRoot(tb), "README.md"))
	if err != nil {
		tb.Fatal(err)
	}
	start := strings.Index(string(readme), "\n## Configuration\n")
	if start < 0 {
		tb.Fatal("README has no Configuration section")
	}
	section := string(readme[start+1:])
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	var rows []ConfigRow
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		row := ConfigRow{Line: line, Defaults: []string{strings.TrimSpace(cells[2])}}
		for _, m := range configName.FindAllStringSubmatch(cells[1], -1) {
			row.Names = append(row.Names, m[1])
		}
		if len(row.Names) > 1 {
			row.Defaults = strings.Split(row.Defaults[0], ", ")
		}
		if len(row.Names) == 0 || len(row.Names) != len(row.Defaults) {
			tb.Fatalf("README configuration row %q: %d variables, %d defaults", line, len(row.Names), len(row.Defaults))
		}
		rows = append(rows, row)
	}
	if len(rows) < 20 {
		tb.Fatalf("found only %d rows in the README's configuration table", len(rows))
	}
	return rows
}

// ConfigVariables is the set of variables ConfigTable names.
func ConfigVariables(tb testing.TB) map[string]bool {
	tb.Helper()
	vars := map[string]bool{}
	for _, row := range ConfigTable(tb) {
		for _, n := range row.Names {
			vars[n] = true
		}
	}
	return vars
}
