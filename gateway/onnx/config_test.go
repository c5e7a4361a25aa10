package onnx

import (
	"runtime"
	"strings"
	"testing"
)

func TestDefaultConfig(t *testing.T) {
	cores := runtime.GOMAXPROCS(0)
	d := DefaultConfig()
	if d != (Config{IntraOpThreads: cores, MaxConcurrentRuns: 2}) {
		t.Errorf("DefaultConfig() = %+v, want %d intra-op threads and 2 runs (max(2, cores / threads))", d, cores)
	}
	for threads, want := range map[int]int{1: max(2, cores), cores: 2, 2 * cores: 2} {
		if got := DefaultMaxConcurrentRuns(threads); got != want {
			t.Errorf("DefaultMaxConcurrentRuns(%d) = %d with %d cores, want %d", threads, got, cores, want)
		}
	}
	d.ModelRepository, d.Model = "triton-models", "fish_classifier"
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig with a model: %v", err)
	}
}

// Zero is not "the default": a Config built field by field must say every
// value.
func TestValidate(t *testing.T) {
	err := Config{MaxConcurrentRuns: -1}.Validate()
	for _, want := range []string{"ModelRepository is empty", "Model is empty", "IntraOpThreads 0 is less than 1", "MaxConcurrentRuns -1 is less than 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to say %q", err, want)
		}
	}
	if err != nil && strings.Count(err.Error(), "\n") != 3 {
		t.Errorf("Validate reported other problems than the four:\n%v", err)
	}
}
