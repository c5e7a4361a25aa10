package tritontest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

// shmObject writes data as a shared-memory object named name in dir (the
// server's WithSharedMemoryDir), as shm_open plus a write would.
func shmObject(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// sharedRequest asks for the model's output on batch items that lie at off in
// region.
func sharedRequest(m tritontest.Model, items int, region string, off, size int64) *kserve.ModelInferRequest {
	req := inferRequest(m, make([][]byte, items)...)
	req.RawInputContents = nil
	req.Inputs[0].Parameters = map[string]*kserve.InferParameter{
		tritontest.ParamSharedMemoryRegion:   {ParameterChoice: &kserve.InferParameter_StringParam{StringParam: region}},
		tritontest.ParamSharedMemoryOffset:   {ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: off}},
		tritontest.ParamSharedMemoryByteSize: {ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: size}},
	}
	return req
}

func register(t *testing.T, client kserve.GRPCInferenceServiceClient, name, key string, size uint64) error {
	t.Helper()
	_, err := client.SystemSharedMemoryRegister(callCtx(t), &kserve.SystemSharedMemoryRegisterRequest{Name: name, Key: key, ByteSize: size})
	return err
}

func TestSharedMemoryInputIsReadFromTheRegion(t *testing.T) {
	m := smallModel()
	dir := t.TempDir()
	srv := tritontest.Start(t, m, tritontest.WithSharedMemoryDir(dir))
	client := dial(t, srv.Addr())

	items := [][]byte{randomItem(m, 1), randomItem(m, 2), randomItem(m, 3)}
	const pad = 100 // the tensor starts inside the object
	object := append(bytes.Repeat([]byte{0xee}, pad), bytes.Join(items, nil)...)
	shmObject(t, dir, "obj", object)
	if err := register(t, client, "r1", "/obj", uint64(len(object))); err != nil {
		t.Fatalf("register: %v", err)
	}
	if got := srv.SharedMemoryRegions(); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("SharedMemoryRegions = %v, want [r1]", got)
	}
	if srv.SharedMemoryRegisterCount() != 1 {
		t.Errorf("SharedMemoryRegisterCount = %d, want 1", srv.SharedMemoryRegisterCount())
	}

	viaRaw, err := client.ModelInfer(callCtx(t), inferRequest(m, items...))
	if err != nil {
		t.Fatal(err)
	}
	viaShm, err := client.ModelInfer(callCtx(t), sharedRequest(m, 3, "r1", pad, int64(3*m.ItemSize())))
	if err != nil {
		t.Fatalf("ModelInfer by shared memory: %v", err)
	}
	if !bytes.Equal(viaShm.GetRawOutputContents()[0], viaRaw.GetRawOutputContents()[0]) {
		t.Error("the scores of the region's tensor differ from those of the same tensor sent raw")
	}
	rec, _ := srv.LastRequest()
	if !bytes.Equal(rec.Input, bytes.Join(items, nil)) {
		t.Error("the recorded input is not the region's bytes at the offset")
	}
	want := &tritontest.SharedMemoryInput{Region: "r1", Offset: pad, ByteSize: int64(3 * m.ItemSize())}
	if rec.SharedMemory == nil || *rec.SharedMemory != *want {
		t.Errorf("recorded SharedMemory %v, want %v", rec.SharedMemory, want)
	}
	if first := srv.Requests()[0]; first.SharedMemory != nil || !bytes.Equal(first.Input, bytes.Join(items, nil)) {
		t.Errorf("the raw request is recorded as %v with %d input bytes", first.SharedMemory, len(first.Input))
	}

	// The bytes are read when the request arrives: a later change of the
	// object does not change what was recorded.
	shmObject(t, dir, "obj", make([]byte, len(object)))
	if rec2, _ := srv.LastRequest(); !bytes.Equal(rec2.Input, bytes.Join(items, nil)) {
		t.Error("the recorded input changed with the object")
	}
}

func TestSharedMemoryStatusAndUnregister(t *testing.T) {
	dir := t.TempDir()
	srv := tritontest.Start(t, smallModel(), tritontest.WithSharedMemoryDir(dir))
	client := dial(t, srv.Addr())
	for _, name := range []string{"a", "b"} {
		shmObject(t, dir, "obj-"+name, make([]byte, 4096))
		if err := register(t, client, name, "/obj-"+name, 4096); err != nil {
			t.Fatal(err)
		}
	}
	all, err := client.SystemSharedMemoryStatus(callCtx(t), &kserve.SystemSharedMemoryStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &kserve.SystemSharedMemoryStatusResponse{Regions: map[string]*kserve.SystemSharedMemoryStatusResponse_RegionStatus{
		"a": {Name: "a", Key: "/obj-a", ByteSize: 4096},
		"b": {Name: "b", Key: "/obj-b", ByteSize: 4096},
	}}
	if !proto.Equal(all, want) {
		t.Errorf("status %v, want %v", all, want)
	}
	one, err := client.SystemSharedMemoryStatus(callCtx(t), &kserve.SystemSharedMemoryStatusRequest{Name: "b"})
	if err != nil || len(one.GetRegions()) != 1 || one.GetRegions()["b"] == nil {
		t.Errorf("status of b: %v, %v", one, err)
	}
	_, err = client.SystemSharedMemoryStatus(callCtx(t), &kserve.SystemSharedMemoryStatusRequest{Name: "zz"})
	wantCode(t, err, codes.NotFound)

	if _, err := client.SystemSharedMemoryUnregister(callCtx(t), &kserve.SystemSharedMemoryUnregisterRequest{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SystemSharedMemoryUnregister(callCtx(t), &kserve.SystemSharedMemoryUnregisterRequest{Name: "a"}); err != nil {
		t.Errorf("unregistering an unknown region: %v, want success as Triton answers", err)
	}
	if got := srv.SharedMemoryRegions(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("regions after unregistering a: %v", got)
	}
	if _, err := client.SystemSharedMemoryUnregister(callCtx(t), &kserve.SystemSharedMemoryUnregisterRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := srv.SharedMemoryRegions(); len(got) != 0 {
		t.Errorf("regions after unregistering all: %v", got)
	}
}

func TestSharedMemoryErrorsAreTritons(t *testing.T) {
	m := smallModel()
	dir := t.TempDir()
	srv := tritontest.Start(t, m, tritontest.WithSharedMemoryDir(dir))
	client := dial(t, srv.Addr())
	size := int64(m.ItemSize())
	shmObject(t, dir, "obj", make([]byte, 2*size))
	if err := register(t, client, "r", "/obj", uint64(2*size)); err != nil {
		t.Fatal(err)
	}

	registrations := []struct {
		name, key string
		size      uint64
		code      codes.Code
		msg       string
	}{
		{"r", "/obj", uint64(size), codes.AlreadyExists, "shared memory region 'r' already in manager"},
		{"x", "/missing", 10, codes.Internal, "Unable to open shared memory region: '/missing'"},
		{"x", "/obj", uint64(3 * size), codes.Internal, "Invalid shared memory region: '/obj'"},
		{"x", "/../obj", 10, codes.Internal, "Unable to open shared memory region"},
		{"", "/obj", 10, codes.InvalidArgument, "name"},
	}
	for _, r := range registrations {
		err := register(t, client, r.name, r.key, r.size)
		if status.Code(err) != r.code || !strings.Contains(status.Convert(err).Message(), r.msg) {
			t.Errorf("register %q %q %d: %v, want %v %q", r.name, r.key, r.size, err, r.code, r.msg)
		}
	}

	param := func(req *kserve.ModelInferRequest, edit func(map[string]*kserve.InferParameter)) *kserve.ModelInferRequest {
		edit(req.Inputs[0].Parameters)
		return req
	}
	infers := []struct {
		what string
		req  *kserve.ModelInferRequest
		code codes.Code
		msg  string
	}{
		{"unknown region", sharedRequest(m, 1, "nope", 0, size), codes.NotFound, "Unable to find shared memory region: 'nope'"},
		{"past the end", sharedRequest(m, 1, "r", size+1, size), codes.InvalidArgument, "Invalid offset + byte size for shared memory region: 'r'"},
		{"wrong size", sharedRequest(m, 1, "r", 0, size-4), codes.InvalidArgument, "input byte size mismatch for input 'input'"},
		{"size for another batch", sharedRequest(m, 2, "r", 0, size), codes.InvalidArgument, "input byte size mismatch"},
		{"no byte size", param(sharedRequest(m, 1, "r", 0, size), func(p map[string]*kserve.InferParameter) {
			delete(p, tritontest.ParamSharedMemoryByteSize)
		}), codes.InvalidArgument, "'shared_memory_byte_size' must be specified along with 'shared_memory_region'"},
		{"offset without region", param(sharedRequest(m, 1, "r", 0, size), func(p map[string]*kserve.InferParameter) {
			delete(p, tritontest.ParamSharedMemoryRegion)
		}), codes.InvalidArgument, "can not be specified without 'shared_memory_region'"},
		{"region not a string", param(sharedRequest(m, 1, "r", 0, size), func(p map[string]*kserve.InferParameter) {
			p[tritontest.ParamSharedMemoryRegion] = &kserve.InferParameter{ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: 1}}
		}), codes.InvalidArgument, "expected string_param"},
	}
	both := sharedRequest(m, 1, "r", 0, size)
	both.RawInputContents = [][]byte{make([]byte, size)}
	infers = append(infers, struct {
		what string
		req  *kserve.ModelInferRequest
		code codes.Code
		msg  string
	}{"region and raw contents", both, codes.InvalidArgument, "names a shared memory region and also carries contents"})
	for _, tc := range infers {
		_, err := client.ModelInfer(callCtx(t), tc.req)
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s: %v, want %v %q", tc.what, err, tc.code, tc.msg)
		}
	}
	// Without offset, the tensor starts at the region's beginning.
	noOffset := param(sharedRequest(m, 1, "r", 0, size), func(p map[string]*kserve.InferParameter) {
		delete(p, tritontest.ParamSharedMemoryOffset)
	})
	if _, err := client.ModelInfer(callCtx(t), noOffset); err != nil {
		t.Errorf("without offset: %v", err)
	}
}

// A server that does not see the client's objects (another host, another IPC
// namespace) cannot register them.
func TestSharedMemoryElsewhereCannotBeOpened(t *testing.T) {
	mine, theirs := t.TempDir(), t.TempDir()
	srv := tritontest.Start(t, smallModel(), tritontest.WithSharedMemoryDir(theirs))
	client := dial(t, srv.Addr())
	shmObject(t, mine, "obj", make([]byte, 4096))
	err := register(t, client, "r", "/obj", 4096)
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "Unable to open shared memory region: '/obj'") {
		t.Errorf("register: %v, want INTERNAL Unable to open", err)
	}
}

func TestRestartForgetsSharedMemoryRegions(t *testing.T) {
	m := smallModel()
	dir := t.TempDir()
	srv := tritontest.Start(t, m, tritontest.WithSharedMemoryDir(dir))
	client := dial(t, srv.Addr())
	item := randomItem(m, 7)
	shmObject(t, dir, "obj", item)
	if err := register(t, client, "r", "/obj", uint64(len(item))); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	srv.Restart()
	if got := srv.SharedMemoryRegions(); len(got) != 0 {
		t.Errorf("regions after a restart: %v, want none", got)
	}
	waitServing(t, client)
	_, err := client.ModelInfer(callCtx(t), sharedRequest(m, 1, "r", 0, int64(len(item))))
	wantCode(t, err, codes.NotFound)
	if err := register(t, client, "r", "/obj", uint64(len(item))); err != nil {
		t.Fatalf("register again after the restart: %v", err)
	}
	if _, err := client.ModelInfer(callCtx(t), sharedRequest(m, 1, "r", 0, int64(len(item)))); err != nil {
		t.Fatalf("ModelInfer after registering again: %v", err)
	}
}
