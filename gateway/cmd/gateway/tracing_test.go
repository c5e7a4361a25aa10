package main

import (
	"context"
	"strings"
	"testing"
)

func TestTracingConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    tracingConfig
		wantErr []string
	}{
		{"off by default", nil,
			tracingConfig{Protocol: protocolHTTP, ServiceName: defaultServiceName, Sampler: "parentbased_always_on", SamplerArg: 1}, nil},
		{"base endpoint gets the traces path over HTTP",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318/"},
			tracingConfig{Endpoint: "http://jaeger:4318/v1/traces", Protocol: protocolHTTP, ServiceName: defaultServiceName, Sampler: "parentbased_always_on", SamplerArg: 1}, nil},
		{"base endpoint as it is over gRPC",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			tracingConfig{Endpoint: "http://jaeger:4317", Protocol: protocolGRPC, ServiceName: defaultServiceName, Sampler: "parentbased_always_on", SamplerArg: 1}, nil},
		{"the traces endpoint wins and is used as it is",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/otlp/traces",
				"OTEL_SERVICE_NAME": "fish-eu", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			tracingConfig{Endpoint: "https://b/otlp/traces", Protocol: protocolHTTP, ServiceName: "fish-eu", Sampler: "parentbased_traceidratio", SamplerArg: 0.25}, nil},
		{"disabled wins over an endpoint",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_SDK_DISABLED": "true"},
			tracingConfig{Protocol: protocolHTTP, ServiceName: defaultServiceName, Sampler: "parentbased_always_on", SamplerArg: 1}, nil},
		{"every mistake named",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "jaeger:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
				"OTEL_TRACES_SAMPLER": "sometimes", "OTEL_TRACES_SAMPLER_ARG": "2", "OTEL_SDK_DISABLED": "yes"},
			tracingConfig{}, []string{
				"OTEL_EXPORTER_OTLP_ENDPOINT: \"jaeger:4318\" is not an http:// or https:// URL",
				"OTEL_EXPORTER_OTLP_PROTOCOL: http/json is not supported by the Go exporter",
				"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(lookupFrom(tt.env))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("loaded without an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not name %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Tracing != tt.want {
				t.Errorf("tracing = %+v, want %+v", c.Tracing, tt.want)
			}
		})
	}
}

func TestTracingOffBuildsNothing(t *testing.T) {
	tr, err := startTracing(context.Background(), tracingConfig{})
	if err != nil || tr != nil {
		t.Fatalf("startTracing(off) = %v, %v; want nil, nil", tr, err)
	}
	if err := tr.shutdown(); err != nil {
		t.Errorf("shutdown of no tracing: %v", err)
	}
	if s := (tracingConfig{}).String(); !strings.HasPrefix(s, "off") {
		t.Errorf("String() = %q", s)
	}
}
