package monitoring_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

const composeShmFile = "docker-compose.shm.yml"

// The shared-memory override puts the gateway into Triton's IPC namespace and
// turns TRITON_SHARED_MEMORY on, over the GPU stack and over the CPU one,
// changing nothing else.
func TestComposeSharedMemoryOverride(t *testing.T) {
	reads := gatewayVariables(t)
	for _, files := range [][]string{
		{composeBaseFile, composeShmFile},
		{composeBaseFile, composeCPUFile, composeShmFile},
	} {
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			p := composeLoad(t, nil, []string{"loadtest"}, files...)
			without := composeLoad(t, nil, []string{"loadtest"}, files[:len(files)-1]...)
			api, triton := composeService(t, p, "fish_api"), composeService(t, p, "triton")
			if triton.Ipc != "shareable" {
				t.Errorf("triton ipc %q, want shareable", triton.Ipc)
			}
			if api.Ipc != "service:triton" {
				t.Errorf("fish_api ipc %q, want service:triton (Triton's /dev/shm)", api.Ipc)
			}
			if got := composeEnvValue(t, api, "TRITON_SHARED_MEMORY"); got != "system" {
				t.Errorf("TRITON_SHARED_MEMORY=%q, want system", got)
			}
			size, err := strconv.ParseInt(composeEnvValue(t, api, "TRITON_SHARED_MEMORY_BYTES"), 10, 64)
			if err != nil || size <= 0 || size > int64(triton.ShmSize)/4 {
				t.Errorf("TRITON_SHARED_MEMORY_BYTES %d (%v): want positive and at most a quarter of triton's shm_size %d", size, err, triton.ShmSize)
			}
			for k := range api.Environment {
				if !reads[k] {
					t.Errorf("fish_api sets %s, which the gateway does not read (not in the README's configuration table)", k)
				}
			}
			// Nothing else changes.
			if got, want := composeServiceNames(p.Services), composeServiceNames(without.Services); !slices.Equal(got, want) {
				t.Errorf("services %v, want %v", got, want)
			}
			base := composeService(t, without, "fish_api")
			for k, v := range base.Environment {
				if got := api.Environment[k]; got == nil || v == nil || *got != *v {
					t.Errorf("fish_api %s changed by the override", k)
				}
			}
			if len(api.Environment) != len(base.Environment)+2 {
				t.Errorf("the override sets %d variables, want 2", len(api.Environment)-len(base.Environment))
			}
			if !slices.Equal(triton.Command, composeService(t, without, "triton").Command) {
				t.Error("the override changes triton's command")
			}
		})
	}
	// Without the override, nothing shares memory.
	for _, s := range composeStack(t).Services {
		if s.Ipc != "" {
			t.Errorf("%s: ipc %q in the base file", s.Name, s.Ipc)
		}
		if v, ok := s.Environment["TRITON_SHARED_MEMORY"]; ok && v != nil && *v != "none" {
			t.Errorf("%s: TRITON_SHARED_MEMORY=%s in the base file", s.Name, *v)
		}
	}
}
