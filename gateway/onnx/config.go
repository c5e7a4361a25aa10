// Package onnx is the gateway's embedded backend: a gateway.Inferencer that runs
// the model of a Triton model repository in process on the CPU through ONNX
// Runtime (github.com/yalue/onnxruntime_go, which loads the runtime's shared
// library at run time).
//
// It reads the same triton-models/<model>/config.pbtxt that Triton serves, so
// both backends agree on the tensors, the labels and the preprocessing. The
// library comes from scripts/fetch-onnxruntime.sh (`make onnxruntime`); the
// backend needs cgo, and without it New returns an error saying so.
package onnx

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
)

// BackendName is the ModelInfo.Backend of this package.
const BackendName = "onnxruntime"

// Config says which library and which model to load.
type Config struct {
	// LibraryPath is ONNX Runtime's shared library, libonnxruntime.so.1 (>= 1.24),
	// as scripts/fetch-onnxruntime.sh prints it.
	LibraryPath string
	// ModelRepository is a Triton model repository; Model names a directory in it
	// holding config.pbtxt, the label file its output names, and version
	// directories holding model.onnx. Version picks one; "" picks the highest
	// numeric version directory.
	ModelRepository, Model, Version string
	// IntraOpThreads is the number of threads one inference may use, at least 1.
	IntraOpThreads int
	// MaxConcurrentRuns bounds the inferences that run at once, at least 1;
	// more wait (until their deadline). See DefaultMaxConcurrentRuns.
	MaxConcurrentRuns int
}

// DefaultConfig is the default of every setting: an intra-op thread a core
// (runtime.GOMAXPROCS) and DefaultMaxConcurrentRuns of them. LibraryPath,
// ModelRepository and Model have none: they name the caller's library and
// model; Version "" picks the highest version.
func DefaultConfig() Config {
	threads := runtime.GOMAXPROCS(0)
	return Config{IntraOpThreads: threads, MaxConcurrentRuns: DefaultMaxConcurrentRuns(threads)}
}

// DefaultMaxConcurrentRuns is the default MaxConcurrentRuns of runs of
// intraOpThreads threads: max(2, GOMAXPROCS / intraOpThreads). Every
// concurrent run holds its own activations in ONNX Runtime's arena, which
// keeps its high-water mark: with EfficientNet-Lite0, 8 concurrent batches of
// 8 took the process to 731-779 MiB unbounded, 362-365 MiB with 2 runs,
// 289-300 MiB with 1. Runs beyond the cores' worth of threads add no
// throughput, but a second one fills the cores while the first is in its
// serial parts (one run alone lost ~20% of the images/s on 2 cores).
func DefaultMaxConcurrentRuns(intraOpThreads int) int {
	return max(2, runtime.GOMAXPROCS(0)/max(1, intraOpThreads))
}

// Validate reports every problem of the configuration at once, each naming its
// field. The library and the repository are checked when New loads them.
func (c Config) Validate() error {
	var errs []error
	if c.ModelRepository == "" {
		errs = append(errs, errors.New("onnx: ModelRepository is empty: want a Triton model repository"))
	}
	if c.Model == "" {
		errs = append(errs, errors.New("onnx: Model is empty: want the model's directory in the repository"))
	}
	if c.IntraOpThreads < 1 {
		errs = append(errs, fmt.Errorf("onnx: IntraOpThreads %d is less than 1", c.IntraOpThreads))
	}
	if c.MaxConcurrentRuns < 1 {
		errs = append(errs, fmt.Errorf("onnx: MaxConcurrentRuns %d is less than 1", c.MaxConcurrentRuns))
	}
	return errors.Join(errs...)
}

// modelSpec is what the repository says about the model.
type modelSpec struct {
	info      gateway.ModelInfo
	modelPath string // <repo>/<model>/<version>/model.onnx
	modelconfig.Tensors
}

// readRepository reads cfg's model from its repository: config.pbtxt, the labels,
// and the version directory. It does not open model.onnx.
func readRepository(cfg Config) (*modelSpec, error) {
	dir := filepath.Join(cfg.ModelRepository, cfg.Model)
	cfgPath := filepath.Join(dir, "config.pbtxt")
	mc, err := modelconfig.ReadFile(cfgPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("onnx: model %q: %w", cfg.Model, err)
	}
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	spec, err := describe(cfg.Model, mc)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", cfgPath, err)
	}

	version := cfg.Version
	if version == "" {
		if version, err = highestVersion(dir); err != nil {
			return nil, fmt.Errorf("onnx: model %q: %w", cfg.Model, err)
		}
	} else if n, err := strconv.ParseInt(version, 10, 64); err != nil || n < 0 {
		return nil, fmt.Errorf("onnx: model %q: version %q is not a non-negative integer", cfg.Model, version)
	}
	spec.info.Version = version
	spec.modelPath = filepath.Join(dir, version, "model.onnx")
	if st, err := os.Stat(spec.modelPath); err != nil {
		return nil, fmt.Errorf("onnx: model %q version %s: %w", cfg.Model, version, err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("onnx: %s is not a file", spec.modelPath)
	}
	if want := spec.info.Provenance.SHA256; want != "" {
		if err := checkSHA256(spec.modelPath, want); err != nil {
			return nil, fmt.Errorf("onnx: model %q version %s: %w", cfg.Model, version, err)
		}
	}

	out := mc.GetOutput()[slices.IndexFunc(mc.GetOutput(), func(o *kserve.ModelOutput) bool { return o.GetName() == spec.OutputName })]
	if lf := out.GetLabelFilename(); lf != "" {
		labels, err := modelconfig.ReadLabels(filepath.Join(dir, lf))
		if err != nil {
			return nil, fmt.Errorf("onnx: model %q: output %q's label_filename: %w", cfg.Model, out.GetName(), err)
		}
		if len(labels) != spec.Classes {
			return nil, fmt.Errorf("onnx: model %q: %s has %d labels for %d output classes", cfg.Model, lf, len(labels), spec.Classes)
		}
		spec.info.Labels = labels
	}
	return spec, nil
}

// describe checks a model configuration the way the Triton adapter does
// (gateway/triton/model.go) and builds the model's description from it.
func describe(model string, mc *kserve.ModelConfig) (*modelSpec, error) {
	if mc.GetName() != "" && mc.GetName() != model {
		return nil, fmt.Errorf("name %q differs from the model directory %q", mc.GetName(), model)
	}
	if p := mc.GetPlatform(); p != "" && p != "onnxruntime_onnx" {
		return nil, fmt.Errorf("platform %q: the embedded backend runs ONNX models only (onnxruntime_onnx)", p)
	}
	if b := mc.GetBackend(); b != "" && b != "onnxruntime" {
		return nil, fmt.Errorf("backend %q: the embedded backend runs ONNX models only (onnxruntime)", b)
	}
	d, err := modelconfig.Describe(mc)
	if err != nil {
		return nil, err
	}
	if d.Info.Output.Datatype != "FP32" {
		return nil, fmt.Errorf("output %q is %s, want FP32 scores", d.OutputName, d.Info.Output.Datatype)
	}
	info := d.Info
	info.Name, info.Backend = model, BackendName
	return &modelSpec{
		info: info,
		Tensors: modelconfig.Tensors{
			Name: model, InputName: d.InputName, InputDatatype: d.InputDatatype, InputDims: d.InputDims,
			ItemBytes: d.ItemBytes, Batched: d.Batched, MaxBatch: d.MaxBatch,
			OutputName: d.OutputName, OutputDims: d.OutputDims, Classes: d.Classes,
		},
	}, nil
}

// highestVersion is the highest numeric subdirectory of dir: the version
// Triton's default policy (latest, one version) serves.
func highestVersion(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	best, bestN := "", int64(-1)
	for _, e := range entries {
		n, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || n < 0 || !e.IsDir() {
			continue
		}
		if n > bestN {
			best, bestN = e.Name(), n
		}
	}
	if best == "" {
		return "", fmt.Errorf("no version directory (1/, 2/...) in %s", dir)
	}
	return best, nil
}

// checkSHA256 fails unless the file at path has the sha256 want (hex): the
// weights on disk must be the ones config.pbtxt declares (model_sha256).
func checkSHA256(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s has sha256 %s, config.pbtxt declares %s=%s: rebuild or replace the model file", path, got, modelconfig.ParamModelSHA256, want)
	}
	return nil
}
