package main

import (
	"strings"
	"testing"

	"github.com/fish-classifier/fish-classifier/gateway/triton"
)

func TestSharedMemoryConfig(t *testing.T) {
	c, err := loadConfig(lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Triton.SharedMemory != triton.SharedMemoryNone || c.Triton.SharedMemoryBytes != 64<<20 || c.Triton.SharedMemoryRegions != 1 {
		t.Errorf("defaults: %q %d %d, want none, 64 MiB, 1 region", c.Triton.SharedMemory, c.Triton.SharedMemoryBytes, c.Triton.SharedMemoryRegions)
	}

	c, err = loadConfig(lookupFrom(map[string]string{
		"BACKEND": "triton", "TRITON_SHARED_MEMORY": "SYSTEM",
		"TRITON_SHARED_MEMORY_BYTES": "33554432", "TRITON_SHARED_MEMORY_REGIONS": "4",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Triton.SharedMemory != triton.SharedMemorySystem || c.Triton.SharedMemoryBytes != 32<<20 || c.Triton.SharedMemoryRegions != 4 {
		t.Errorf("read %q %d %d, want system, 32 MiB, 4 regions", c.Triton.SharedMemory, c.Triton.SharedMemoryBytes, c.Triton.SharedMemoryRegions)
	}

	bad := []struct {
		env    map[string]string
		wantIn []string
	}{
		{map[string]string{"TRITON_SHARED_MEMORY": "system"}, []string{"TRITON_SHARED_MEMORY: system", "needs BACKEND=triton"}},
		{map[string]string{"BACKEND": "triton", "TRITON_SHARED_MEMORY": "cuda"}, []string{`TRITON_SHARED_MEMORY: "cuda" is not one of none, system`}},
		{map[string]string{"BACKEND": "triton", "TRITON_SHARED_MEMORY_BYTES": "100"}, []string{"TRITON_SHARED_MEMORY_BYTES", "[4096, 1099511627776]"}},
		{map[string]string{"BACKEND": "triton", "TRITON_SHARED_MEMORY_REGIONS": "0"}, []string{"TRITON_SHARED_MEMORY_REGIONS", "[1, 64]"}},
		{map[string]string{"BACKEND": "triton", "TRITON_SHARED_MEMORY_REGIONS": "65"}, []string{"TRITON_SHARED_MEMORY_REGIONS"}},
		{map[string]string{"BACKEND": "triton", "TRITON_SHARED_MEMORY": "system", "TRITON_SHARED_MEMORY_BYTES": "8192", "TRITON_SHARED_MEMORY_REGIONS": "4"},
			[]string{"TRITON_SHARED_MEMORY_BYTES: 8192 bytes leave less than a 4096-byte page to each of the 4 TRITON_SHARED_MEMORY_REGIONS"}},
	}
	for _, tc := range bad {
		_, err := loadConfig(lookupFrom(tc.env))
		if err == nil {
			t.Errorf("%v: accepted", tc.env)
			continue
		}
		for _, s := range tc.wantIn {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%v: error does not say %q:\n%v", tc.env, s, err)
			}
		}
	}
}
