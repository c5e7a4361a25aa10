// Command crdschema writes the JSON schemas kubeconform validates custom
// resources against, from CustomResourceDefinition manifests: one file per
// served version, named as kubeconform names the built-in kinds' schemas
// (<kind>-<first label of the group>-<version>.json, lower case), so that one
// -schema-location template finds both.
//
//	go run ./deploy/helm/crdschema -out DIR crd.yaml...
//
// Strict, as kubeconform's own converter is with -strict: objects that list
// their properties and say nothing of others get additionalProperties false,
// and x-kubernetes-int-or-string becomes integer or string.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

type crd struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Group string `yaml:"group"`
		Names struct {
			Kind string `yaml:"kind"`
		} `yaml:"names"`
		Versions []struct {
			Name   string `yaml:"name"`
			Served bool   `yaml:"served"`
			Schema struct {
				OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
			} `yaml:"schema"`
		} `yaml:"versions"`
	} `yaml:"spec"`
}

func main() {
	out := flag.String("out", "", "directory the schemas are written to")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: crdschema -out DIR crd.yaml...")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "crdschema:", err)
		os.Exit(1)
	}
	for _, path := range flag.Args() {
		if err := convert(path, *out); err != nil {
			fmt.Fprintf(os.Stderr, "crdschema: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

// convert writes the schemas of every CustomResourceDefinition in path.
func convert(path, out string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	written := 0
	for {
		var c crd
		if err := dec.Decode(&c); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		if c.Kind != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := strings.Cut(c.Spec.Group, ".")
		for _, v := range c.Spec.Versions {
			if !v.Served || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			schema := strict(v.Schema.OpenAPIV3Schema).(map[string]any)
			data, err := json.MarshalIndent(schema, "", "  ")
			if err != nil {
				return err
			}
			name := strings.ToLower(fmt.Sprintf("%s-%s-%s.json", c.Spec.Names.Kind, group, v.Name))
			if err := os.WriteFile(filepath.Join(out, name), append(data, '\n'), 0o644); err != nil {
				return err
			}
			written++
		}
	}
	if written == 0 {
		return errors.New("no served version with a schema")
	}
	return nil
}

// strict rewrites an OpenAPI v3 schema node for JSON-schema validation.
func strict(node any) any {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			n[k] = strict(v)
		}
		if n["x-kubernetes-int-or-string"] == true {
			delete(n, "type")
			n["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
		}
		if _, hasProps := n["properties"]; hasProps {
			if _, said := n["additionalProperties"]; !said && n["x-kubernetes-preserve-unknown-fields"] != true {
				n["additionalProperties"] = false
			}
		}
		return n
	case []any:
		for i, v := range n {
			n[i] = strict(v)
		}
		return n
	}
	return node
}
