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
	valid := DefaultConfig()
	valid.Model = "fish_classifier"
	tests := []struct {
		name   string
		edit   func(*Config)
		wantIn []string // nil: valid
	}{
		{"the defaults and a model", func(*Config) {}, nil},
		{"dns target and pinned version", func(c *Config) { c.Address = "dns:///triton:8001"; c.Version = "3" }, nil},
		{"no retries", func(c *Config) { c.Retries = 0 }, nil},
		{"negative retries", func(c *Config) { c.Retries = -1 }, []string{"Retries -1 is not in [0, 10]"}},
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
		}, []string{"MaxRecvMsgBytes -1 is not positive", "RetryBackoff -1s is not positive", "CallTimeout -1s", "ConnectBackoffMax -1s"}},
		{"too many retries", func(c *Config) { c.Retries = 11 }, []string{"Retries 11"}},
		// Zero is not "the default": a Config built field by field must say
		// every value.
		{"the zero Config", func(c *Config) { *c = Config{} }, []string{"Address is empty", "Model is empty",
			"MaxRecvMsgBytes 0 is not positive", "RetryBackoff 0s is not positive", "CallTimeout 0s is not positive",
			"ConnectBackoffMax 0s is not positive", `SharedMemory "" is not one of "none", "system"`}},
		{"every problem at once", func(c *Config) { *c = Config{Version: "x", Retries: 99} }, []string{"Address", "Model", "Version", "Retries"}},
		{"unknown shared memory", func(c *Config) { c.SharedMemory = "cuda" }, []string{`SharedMemory "cuda" is not one of "none", "system"`}},
		{"shared memory sizes unread when off", func(c *Config) { c.SharedMemoryBytes, c.SharedMemoryRegions = 0, 0 }, nil},
		{"zero shared memory sizes", func(c *Config) {
			c.SharedMemory, c.SharedMemoryBytes, c.SharedMemoryRegions = SharedMemorySystem, 0, 0
		}, []string{"SharedMemoryRegions 0 is not in [1, 64]"}},
		{"no shared memory bytes", func(c *Config) {
			c.SharedMemory, c.SharedMemoryBytes = SharedMemorySystem, 0
		}, []string{"SharedMemoryBytes 0 is less than 4096 bytes (a page) for each of 1 regions"}},
		{"too many regions", func(c *Config) { c.SharedMemory, c.SharedMemoryRegions = SharedMemorySystem, 65 }, []string{"SharedMemoryRegions 65"}},
		{"regions smaller than a page", func(c *Config) {
			c.SharedMemory, c.SharedMemoryBytes, c.SharedMemoryRegions = SharedMemorySystem, 8<<10, 4
		}, []string{"SharedMemoryBytes 8192 is less than 4096 bytes (a page) for each of 4 regions"}},
		{"shared memory over 1 TiB", func(c *Config) { c.SharedMemory, c.SharedMemoryBytes = SharedMemorySystem, 1<<40+1 }, []string{"SharedMemoryBytes 1099511627777 is more than"}},
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
	c := DefaultConfig()
	c.Model, c.SharedMemory = "m", SharedMemorySystem
	err := c.Validate()
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

func TestDefaultConfig(t *testing.T) {
	got := DefaultConfig()
	if got.Address != "localhost:8001" || got.Model != "" || got.Version != "" || got.Labels != nil ||
		got.MaxRecvMsgBytes != 64<<20 || got.Retries != 2 || got.RetryBackoff != 25*time.Millisecond ||
		got.CallTimeout != 10*time.Second || got.ConnectBackoffMax != 5*time.Second ||
		got.SharedMemory != SharedMemoryNone || got.SharedMemoryBytes != 64<<20 || got.SharedMemoryRegions != 1 {
		t.Errorf("DefaultConfig() = %+v", got)
	}
	got.Model = "m"
	if err := got.Validate(); err != nil {
		t.Errorf("DefaultConfig with a model: %v", err)
	}
	got.SharedMemory = SharedMemorySystem
	if err := got.Validate(); shmSupported && err != nil {
		t.Errorf("DefaultConfig with a model and shared memory: %v", err)
	}
}

func TestDialSettings(t *testing.T) {
	c := DefaultConfig()
	c.MaxRecvMsgBytes, c.ConnectBackoffMax = 1<<20, 100*time.Millisecond
	s := c.dialSettings()

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

	def := DefaultConfig().dialSettings()
	if def.Connect.Backoff.MaxDelay != 5*time.Second || def.Connect.Backoff.BaseDelay != time.Second {
		t.Errorf("default connect backoff %+v, want 1s base, 5s cap", def.Connect.Backoff)
	}
	// Credentials, keepalive, connect parameters, service config, the polled
	// resolver, no health check, call options.
	if n := len(def.options()); n != 7 {
		t.Errorf("%d dial options, want 7", n)
	}
}

func TestNewDoesNoIO(t *testing.T) {
	// Nothing listens at port 1: New must still succeed (grpc.NewClient
	// connects lazily), and the first call fails UNAVAILABLE.
	cfg := DefaultConfig()
	cfg.Address, cfg.Model, cfg.Retries = "127.0.0.1:1", "m", 0
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	wantKind(t, c.Ready(callCtx(t)), gateway.KindUnavailable, "inference server unavailable")
}

func ExampleConfig_Validate() {
	c := DefaultConfig()
	c.Address, c.Version, c.Retries = "triton:8001", "latest", -1
	fmt.Println(c.Validate())
	// Output:
	// triton: Model is empty: want the model's name in Triton's repository
	// triton: Version "latest" is not a positive integer (or empty for the latest)
	// triton: Retries -1 is not in [0, 10] (0: no retries; more multiply the load on a failing server)
}
