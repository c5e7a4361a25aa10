// Command dashboard writes the Grafana dashboard "Fish Classifier API
// Monitoring" as JSON, the file Grafana's file provisioning loads.
//
// The dashboard is code so that it is reviewed like code and tested like code:
// the committed JSON must equal what this command prints, and the package's
// tests lint it (panel order and titles, rows, grid, datasource references,
// the instance filter of every gateway query).
//
// Usage, from the repository root:
//
//	go run ./monitoring/dashboard -out monitoring/grafana/provisioning/dashboards/fish-api-dashboard.json
//
// or `go generate ./monitoring/dashboard`.
package main

//go:generate go run . -out ../grafana/provisioning/dashboards/fish-api-dashboard.json

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	out := flag.String("out", "-", "file to write the dashboard JSON to; - for standard output")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "dashboard: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := run(*out, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// run renders the dashboard and writes it to path, or to stdout for "-".
func run(path string, stdout io.Writer) error {
	data, err := render()
	if err != nil {
		return err
	}
	if path == "-" {
		_, err := stdout.Write(data)
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write dashboard: %w", err)
	}
	return nil
}
