package triton

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/keepalive"

	"github.com/fish-classifier/fish-classifier/gateway"
)

func TestConfigValidate(t *testing.T) {
	valid := Config{Address: "triton:8001", Model: "fish_classifier"}
	tests := []struct {
		name   string
		edit   func(*Config)
		wantIn []string // nil: valid
	}{
		{"minimal", func(*Config) {}, nil},
		{"dns target and pinned version", func(c *Config) { c.Address = "dns:///triton:8001"; c.Version = "3" }, nil},
		{"no retries", func(c *Config) { c.Retries = -1 }, nil},
		{"no address", func(c *Config) { c.Address = " " }, []string{"Address is empty"}},
		{"address with a space", func(c *Config) { c.Address = "triton: 8001" }, []string{"Address", "white space"}},
		{"no model", func(c *Config) { c.Model = "" }, []string{"Model is empty"}},
		{"version not a number", func(c *Config) { c.Version = "latest" }, []string{`Version "latest"`}},
		{"version zero", func(c *Config) { c.Version = "0" }, []string{`Version "0"`}},
		{"duplicate label", func(c *Config) { c.Labels = []string{"Trout", "Shrimp", "Trout"} }, []string{`"Trout" is both label 0 and label 2`}},
		{"negative sizes and durations", func(c *Config) {
			c.MaxRecvMsgBytes = -1
			c.RetryBackoff = -time.Second
			c.CallTimeout = -time.Second
			c.ConnectBackoffMax = -time.Second
		}, []string{"MaxRecvMsgBytes -1", "RetryBackoff -1s", "CallTimeout -1s", "ConnectBackoffMax -1s"}},
		{"too many retries", func(c *Config) { c.Retries = 11 }, []string{"Retries 11"}},
		{"every problem at once", func(c *Config) { *c = Config{Version: "x", Retries: 99} }, []string{"Address", "Model", "Version", "Retries"}},
		{"shared memory off by name", func(c *Config) { c.SharedMemory = SharedMemoryNone }, nil},
		{"unknown shared memory", func(c *Config) { c.SharedMemory = "cuda" }, []string{`SharedMemory "cuda" is not one of "none", "system"`}},
		{"negative shared memory sizes", func(c *Config) {
			c.SharedMemory, c.SharedMemoryBytes, c.SharedMemoryRegions = SharedMemorySystem, -1, -1
		}, []string{"SharedMemoryBytes -1 is negative", "SharedMemoryRegions -1 is not in [0, 64]"}},
		{"too many regions", func(c *Config) { c.SharedMemoryRegions = 65 }, []string{"SharedMemoryRegions 65"}},
		{"regions smaller than a page", func(c *Config) {
			c.SharedMemory, c.SharedMemoryBytes, c.SharedMemoryRegions = SharedMemorySystem, 8<<10, 4
		}, []string{"SharedMemoryBytes 8192 is less than 4096 bytes (a page) for each of 4 regions"}},
		{"shared memory over 1 TiB", func(c *Config) { c.SharedMemoryBytes = 1<<40 + 1 }, []string{"SharedMemoryBytes 1099511627777 is more than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.wantIn == nil {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want an error naming %q", tt.wantIn)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate: %q does not mention %q", err, s)
				}
			}
			if _, newErr := New(cfg, nil); newErr == nil {
				t.Error("New accepted an invalid configuration")
			}
		})
	}
}

func TestSharedMemoryNeedsLinux(t *testing.T) {
	err := Config{Address: "a:1", Model: "m", SharedMemory: SharedMemorySystem}.Validate()
	if shmSupported {
		if err != nil {
			t.Errorf("Validate on Linux: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "needs Linux") {
		t.Errorf("Validate elsewhere: %v, want an error saying it needs Linux", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{Address: "a:1", Model: "m"}.withDefaults()
	if got.MaxRecvMsgBytes != 64<<20 || got.Retries != 2 || got.RetryBackoff != 25*time.Millisecond ||
		got.CallTimeout != 10*time.Second || got.ConnectBackoffMax != 5*time.Second ||
		got.SharedMemory != SharedMemoryNone || got.SharedMemoryBytes != 64<<20 || got.SharedMemoryRegions != 1 {
		t.Errorf("defaults: %+v", got)
	}
	if got := (Config{Retries: -1}).withDefaults().Retries; got != 0 {
		t.Errorf("Retries -1 becomes %d, want 0", got)
	}
	if got := (Config{Retries: 4, CallTimeout: time.Second}).withDefaults(); got.Retries != 4 || got.CallTimeout != time.Second {
		t.Errorf("set fields changed: %+v", got)
	}
}

func TestDialSettings(t *testing.T) {
	s := Config{Address: "a:1", Model: "m", MaxRecvMsgBytes: 1 << 20, ConnectBackoffMax: 100 * time.Millisecond}.withDefaults().dialSettings()

	// Triton (C-core) sends GOAWAY too_many_pings to clients pinging more
	// often than every 5 minutes without calls.
	wantKeepalive := keepalive.ClientParameters{Time: 5 * time.Minute, Timeout: 20 * time.Second, PermitWithoutStream: false}
	if s.Keepalive != wantKeepalive {
		t.Errorf("Keepalive = %+v, want %+v", s.Keepalive, wantKeepalive)
	}
	if bo := s.Connect.Backoff; bo.MaxDelay != 100*time.Millisecond || bo.BaseDelay > bo.MaxDelay || bo.Multiplier < 1 {
		t.Errorf("connect backoff %+v: want MaxDelay 100ms and BaseDelay ≤ MaxDelay", bo)
	}
	if s.Connect.MinConnectTimeout != 20*time.Second {
		t.Errorf("MinConnectTimeout %v, want 20s", s.Connect.MinConnectTimeout)
	}
	if s.MaxRecvMsgBytes != 1<<20 || s.MaxSendMsgBytes != math.MaxInt32 {
		t.Errorf("message limits recv %d send %d, want %d, %d", s.MaxRecvMsgBytes, s.MaxSendMsgBytes, 1<<20, math.MaxInt32)
	}

	var sc struct {
		LoadBalancingConfig []map[string]json.RawMessage `json:"loadBalancingConfig"`
		HealthCheckConfig   json.RawMessage              `json:"healthCheckConfig"`
	}
	if err := json.Unmarshal([]byte(s.ServiceConfig), &sc); err != nil {
		t.Fatalf("service config %s: %v", s.ServiceConfig, err)
	}
	if len(sc.LoadBalancingConfig) != 1 || sc.LoadBalancingConfig[0]["round_robin"] == nil {
		t.Errorf("service config %s: want round_robin", s.ServiceConfig)
	}
	if sc.HealthCheckConfig != nil {
		t.Errorf("service config %s turns on client-side health checking, which Triton cannot answer", s.ServiceConfig)
	}

	def := Config{Address: "a:1", Model: "m"}.withDefaults().dialSettings()
	if def.Connect.Backoff.MaxDelay != 5*time.Second || def.Connect.Backoff.BaseDelay != time.Second {
		t.Errorf("default connect backoff %+v, want 1s base, 5s cap", def.Connect.Backoff)
	}
	if n := len(def.options()); n != 6 {
		t.Errorf("%d dial options, want 6", n)
	}
}

func TestNewDoesNoIO(t *testing.T) {
	// Nothing listens at port 1: New must still succeed (grpc.NewClient
	// connects lazily), and the first call fails UNAVAILABLE.
	c, err := New(Config{Address: "127.0.0.1:1", Model: "m", Retries: -1}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	wantKind(t, c.Ready(callCtx(t)), gateway.KindUnavailable, "inference server unavailable")
}

func ExampleConfig_Validate() {
	err := Config{Address: "triton:8001", Version: "latest"}.Validate()
	fmt.Println(err)
	// Output:
	// triton: Model is empty: want the model's name in Triton's repository
	// triton: Version "latest" is not a positive integer (or empty for the latest)
}
