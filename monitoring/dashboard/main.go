// Command dashboard writes the Grafana dashboards of the stack as JSON, the
// files Grafana's file provisioning loads: "Fish Classifier API Monitoring"
// (the gateway, Triton, the model in service), "MinIO" and "MariaDB / MySQL"
// (the model lifecycle's stores, the compose stack's mlops profile).
//
// The dashboards are code so that they are reviewed like code and tested like
// code: the committed JSON must equal what this command writes, and the
// package's tests lint it (panel order and titles, rows, grid, datasource
// references, the source and instance filter of every query).
//
// Usage, from the repository root:
//
//	go run ./monitoring/dashboard -dir monitoring/grafana/provisioning/dashboards
//
// or `go generate ./monitoring/dashboard`; `-print FILE` writes one of them
// (by file name, e.g. minio-dashboard.json) to standard output.
package main

//go:generate go run . -dir ../grafana/provisioning/dashboards

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	dir := flag.String("dir", "", "folder to write every dashboard's JSON file into")
	one := flag.String("print", "", "file name of one dashboard to write to standard output instead")
	flag.Parse()
	if flag.NArg() > 0 || (*dir == "") == (*one == "") {
		fmt.Fprintln(os.Stderr, "usage: dashboard -dir DIR | -print FILE")
		os.Exit(2)
	}
	var err error
	if *one != "" {
		err = printOne(*one, os.Stdout)
	} else {
		err = writeAll(*dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// writeAll renders every dashboard into dir, one file each.
func writeAll(dir string) error {
	for _, g := range dashboards {
		data, err := renderDashboard(g.build)
		if err != nil {
			return fmt.Errorf("%s: %w", g.file, err)
		}
		if err := os.WriteFile(filepath.Join(dir, g.file), data, 0o644); err != nil {
			return fmt.Errorf("write dashboard: %w", err)
		}
	}
	return nil
}

// printOne renders the dashboard of that file name to w.
func printOne(file string, w io.Writer) error {
	for _, g := range dashboards {
		if g.file == file {
			data, err := renderDashboard(g.build)
			if err != nil {
				return err
			}
			_, err = w.Write(data)
			return err
		}
	}
	return fmt.Errorf("no dashboard is written to %q", file)
}
