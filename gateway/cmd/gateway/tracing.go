package main

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// The tracing configuration is OpenTelemetry's own environment variables,
// read here (validated, in the start-up log) and applied explicitly, so that
// what the gateway logs is what it does. The SDK and the OTLP exporters still
// read the variables this file does not (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _CERTIFICATE and the other TLS settings, _COMPRESSION, OTEL_BSP_*): secrets
// among them never reach the log.

// defaultServiceName is the service.name of the gateway's spans without
// OTEL_SERVICE_NAME.
const defaultServiceName = "fish-classifier-gateway"

// The protocols of OTEL_EXPORTER_OTLP_PROTOCOL the gateway exports with.
const (
	protocolHTTP = "http/protobuf"
	protocolGRPC = "grpc"
)

// samplers are the values of OTEL_TRACES_SAMPLER, and whether the sampler
// takes OTEL_TRACES_SAMPLER_ARG (a ratio).
var samplers = map[string]bool{
	"always_on": false, "always_off": false, "traceidratio": true,
	"parentbased_always_on": false, "parentbased_always_off": false, "parentbased_traceidratio": true,
}

// tracingConfig is how the gateway exports traces.
type tracingConfig struct {
	// Endpoint is the URL spans are sent to (for http/protobuf the full
	// traces URL, /v1/traces included); "": tracing off.
	Endpoint    string
	Protocol    string
	ServiceName string
	Sampler     string
	SamplerArg  float64
}

// Enabled says whether spans are recorded and exported.
func (t tracingConfig) Enabled() bool { return t.Endpoint != "" }

// readTracing reads the OpenTelemetry variables. Tracing is on when an OTLP
// endpoint is set (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
// OTEL_EXPORTER_OTLP_ENDPOINT, to which /v1/traces is added for HTTP) and
// OTEL_SDK_DISABLED is not true.
func readTracing(e *env) tracingConfig {
	var t tracingConfig
	disabled := e.Enum("OTEL_SDK_DISABLED", "false", "false", "true") == "true"
	base := e.String("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	traces := e.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Protocol = e.String("OTEL_EXPORTER_OTLP_PROTOCOL", protocolHTTP)
	t.ServiceName = e.String("OTEL_SERVICE_NAME", defaultServiceName)
	e.String("OTEL_RESOURCE_ATTRIBUTES", "") // parsed by the SDK (resource.WithFromEnv), logged here
	t.Sampler = e.Enum("OTEL_TRACES_SAMPLER", "parentbased_always_on", slices.Sorted(maps.Keys(samplers))...)
	t.SamplerArg = e.Float("OTEL_TRACES_SAMPLER_ARG", 1, 0, 1)

	switch t.Protocol {
	case protocolHTTP, protocolGRPC:
	case "http/json":
		e.fail("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json is not supported by the Go exporter: use http/protobuf or grpc")
	default:
		e.fail("OTEL_EXPORTER_OTLP_PROTOCOL", "%q is not one of http/protobuf, grpc", t.Protocol)
	}
	endpoint, name := traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	if endpoint == "" && base != "" {
		endpoint, name = base, "OTEL_EXPORTER_OTLP_ENDPOINT"
		if t.Protocol == protocolHTTP {
			endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
		}
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			e.fail(name, "%q is not an http:// or https:// URL", endpoint)
		}
	}
	if !disabled {
		t.Endpoint = endpoint
	}
	return t
}

// sampler is the configured sampler.
func (t tracingConfig) sampler() sdktrace.Sampler {
	ratio := sdktrace.TraceIDRatioBased(t.SamplerArg)
	switch t.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return ratio
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(ratio)
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

// String describes the configuration for the start-up log.
func (t tracingConfig) String() string {
	if !t.Enabled() {
		return "off (no OTEL_EXPORTER_OTLP_ENDPOINT)"
	}
	s := fmt.Sprintf("exporting spans of %s to %s (%s), sampler %s", t.ServiceName, t.Endpoint, t.Protocol, t.Sampler)
	if samplers[t.Sampler] {
		s += fmt.Sprintf(" %g", t.SamplerArg)
	}
	return s
}

// tracing is the gateway's tracer provider and propagator while tracing is
// on; a nil *tracing is tracing off.
type tracing struct {
	provider   *sdktrace.TracerProvider
	propagator propagation.TextMapPropagator
}

// startTracing builds the tracer provider cfg describes, exporting in batches
// in the background; nil when tracing is off. It does no network I/O: an
// unreachable endpoint costs dropped spans and an error in the log, never a
// request.
func startTracing(ctx context.Context, cfg tracingConfig) (*tracing, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	var exporter sdktrace.SpanExporter
	var err error
	if cfg.Protocol == protocolGRPC {
		exporter, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	} else {
		exporter, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// The environment's attributes (OTEL_RESOURCE_ATTRIBUTES) first, then the
	// service name, which OTEL_SERVICE_NAME already set or the default.
	res, err := resource.New(ctx,
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID(),
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)))
	if err != nil {
		// The detectors are the environment's, the SDK's and the host name's:
		// in practice a malformed OTEL_RESOURCE_ATTRIBUTES.
		_ = exporter.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(cfg.sampler()),
	)
	return &tracing{
		provider:   tp,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// tracerProvider is the provider, for the packages' options.
func (t *tracing) tracerProvider() trace.TracerProvider { return t.provider }

// tracingShutdownTimeout bounds the export of the last spans at exit.
const tracingShutdownTimeout = 5 * time.Second

// shutdown exports the spans still buffered (for at most 5 s) and stops the
// provider. A nil *tracing does nothing.
func (t *tracing) shutdown() error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	return t.provider.Shutdown(ctx)
}
