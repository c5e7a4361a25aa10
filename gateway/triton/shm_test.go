//go:build linux

package triton

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

// withShm turns system shared memory on: regions regions sharing bytes.
func withShm(bytes int64, regions int) func(*Config) {
	return func(c *Config) {
		c.SharedMemory = SharedMemorySystem
		c.SharedMemoryBytes = bytes
		c.SharedMemoryRegions = regions
	}
}

// ourObjects lists the objects of c's regions that exist in /dev/shm.
func ourObjects(t *testing.T, c *Client) []string {
	t.Helper()
	var out []string
	for _, r := range c.shm.regions {
		if _, err := os.Stat(filepath.Join(shmDir, r.name)); err == nil {
			out = append(out, r.name)
		}
	}
	return out
}

// allocItems takes n items of e's model from the client's regions and fills
// them with items for classes 0, 1, 2...
func allocItems(t *testing.T, e *env, n int) ([]byte, func()) {
	t.Helper()
	size := e.model.ItemSize()
	buf, free, ok := e.client.AllocTensor(n * size)
	if !ok {
		t.Fatalf("AllocTensor(%d items) found no room", n)
	}
	for i := range n {
		copy(buf[i*size:], tritontest.ItemForClass(e.model, i%e.model.NumClasses()))
	}
	return buf, free
}

func inputsSent(e *env, via string) float64 {
	return testutil.ToFloat64(e.client.metrics.inputs.WithLabelValues(via))
}

func TestSharedMemoryCarriesTheTensor(t *testing.T) {
	e := startEnv(t, smallModel(), withShm(1<<20, 2))
	names := e.srv.SharedMemoryRegions()
	if len(names) != 2 || !strings.HasPrefix(names[0], regionPrefix) {
		t.Fatalf("Triton has regions %v after Model, want the client's 2", names)
	}
	if got := ourObjects(t, e.client); len(got) != 2 {
		t.Fatalf("objects in /dev/shm: %v, want 2", got)
	}
	size := e.model.ItemSize()
	buf, free := allocItems(t, e, 3)
	defer free()
	sentBefore := inputsSent(e, viaMessage) // Model's classification call

	viaShm, err := e.client.Infer(callCtx(t), gateway.Batch{Size: 3, Data: buf, Model: &e.info})
	if err != nil {
		t.Fatalf("Infer by shared memory: %v", err)
	}
	rec, _ := e.srv.LastRequest()
	if rec.SharedMemory == nil || len(rec.Request.GetRawInputContents()) != 0 {
		t.Fatalf("sent %v with %d raw contents, want the region and none", rec.SharedMemory, len(rec.Request.GetRawInputContents()))
	}
	if !bytes.Equal(rec.Input, buf) {
		t.Error("Triton read other bytes than the batch from the region")
	}
	r, off, _ := e.client.shm.locate(buf)
	if rec.SharedMemory.Region != r.name || rec.SharedMemory.Offset != int64(off) || rec.SharedMemory.ByteSize != int64(len(buf)) {
		t.Errorf("request names %v, want %s at %d, %d bytes", rec.SharedMemory, r.name, off, len(buf))
	}

	// The same tensor in the message scores the same.
	inline, err := e.client.Infer(callCtx(t), gateway.Batch{Size: 3, Data: bytes.Clone(buf), Model: &e.info})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inline.Values, viaShm.Values) {
		t.Error("scores by shared memory differ from the scores of the same tensor in the message")
	}
	if rec, _ := e.srv.LastRequest(); rec.SharedMemory != nil {
		t.Error("a batch outside the regions was sent by shared memory")
	}

	// A part of an allocation (the Classifier sends chunks of its buffer) is
	// named by its own offset.
	if _, err := e.client.Infer(callCtx(t), gateway.Batch{Size: 2, Data: buf[size:], Model: &e.info}); err != nil {
		t.Fatal(err)
	}
	rec, _ = e.srv.LastRequest()
	if rec.SharedMemory == nil || rec.SharedMemory.Offset != int64(off+size) || !bytes.Equal(rec.Input, buf[size:]) {
		t.Errorf("chunk sent as %v, want offset %d", rec.SharedMemory, off+size)
	}
	if got := inputsSent(e, viaSharedMemory); got != 2 {
		t.Errorf("triton_infer_inputs_total{via=system_shared_memory} = %v, want 2", got)
	}
	if got := inputsSent(e, viaMessage) - sentBefore; got != 1 {
		t.Errorf("triton_infer_inputs_total{via=message} = %v, want 1", got)
	}
}

func TestSharedMemoryAllocator(t *testing.T) {
	e := startEnv(t, smallModel(), withShm(2*minRegionBytes, 2))
	p := e.client.shm
	fallbacks := func(reason string) float64 { return testutil.ToFloat64(p.metrics.fallbacks.WithLabelValues(reason)) }

	if _, _, ok := e.client.AllocTensor(minRegionBytes + 1); ok || fallbacks(fallbackTooLarge) != 1 {
		t.Errorf("a tensor larger than a region: ok %v, too_large %v; want false, 1", ok, fallbacks(fallbackTooLarge))
	}
	if _, _, ok := e.client.AllocTensor(0); ok {
		t.Error("AllocTensor(0) succeeded")
	}
	// 128 tensors of 64 bytes fill both regions; each is aligned and none
	// overlaps another.
	var frees []func()
	seen := map[uintptr]bool{}
	for range 2 * minRegionBytes / shmAlign {
		buf, free, ok := e.client.AllocTensor(shmAlign - 3)
		if !ok {
			t.Fatalf("allocation %d failed with room left", len(frees))
		}
		addr := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
		if addr%shmAlign != 0 || seen[addr] || len(buf) != shmAlign-3 || cap(buf) != len(buf) {
			t.Fatalf("allocation at %#x (len %d cap %d): misaligned, reused or wrongly sized", addr, len(buf), cap(buf))
		}
		seen[addr] = true
		frees = append(frees, free)
	}
	if got := testutil.ToFloat64(p.metrics.inUse); got != 2*minRegionBytes {
		t.Errorf("bytes in use %v, want %d", got, 2*minRegionBytes)
	}
	if _, _, ok := e.client.AllocTensor(1); ok || fallbacks(fallbackFull) != 1 {
		t.Errorf("allocation in full regions: ok %v, full %v; want false, 1", ok, fallbacks(fallbackFull))
	}
	// Freed in any order, the extents merge back into whole regions.
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(frees), func(i, j int) { frees[i], frees[j] = frees[j], frees[i] })
	for _, free := range frees {
		free()
		free() // a second call does nothing
	}
	for _, r := range p.regions {
		if r.freeBytes() != minRegionBytes || len(r.free) != 1 {
			t.Errorf("region %s: %d bytes free in %d extents, want %d in 1", r.name, r.freeBytes(), len(r.free), minRegionBytes)
		}
	}
	if got := testutil.ToFloat64(p.metrics.inUse); got != 0 {
		t.Errorf("bytes in use %v after freeing everything", got)
	}
	buf, free, ok := e.client.AllocTensor(minRegionBytes)
	if !ok || len(buf) != minRegionBytes {
		t.Fatal("a whole region cannot be taken after everything was freed")
	}
	free()
}

func TestSharedMemoryConcurrentUse(t *testing.T) {
	e := startEnv(t, smallModel(), withShm(64*minRegionBytes, 4))
	size := e.model.ItemSize()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				n := 1 + (g+i)%4
				buf, free, ok := e.client.AllocTensor(n * size)
				if !ok {
					t.Error("no room")
					return
				}
				for k := range n {
					copy(buf[k*size:], tritontest.ItemForClass(e.model, (g+k)%e.model.NumClasses()))
				}
				scores, err := e.client.Infer(callCtx(t), gateway.Batch{Size: n, Data: buf, Model: &e.info})
				free()
				if err != nil {
					t.Error(err)
					return
				}
				for k := range n {
					if best := slices.Index(scores.Row(k), slices.Max(scores.Row(k))); best != (g+k)%e.model.NumClasses() {
						t.Errorf("item %d: class %d, want %d (another request's bytes?)", k, best, (g+k)%e.model.NumClasses())
					}
				}
			}
		})
	}
	wg.Wait()
	if got := inputsSent(e, viaSharedMemory); got != 160 {
		t.Errorf("%v calls by shared memory, want 160", got)
	}
}

// After a restart Triton has no region: the first request that names one
// gets NOT_FOUND, the client registers the regions again and sends the
// request once more. Many requests failing together register them once.
func TestSharedMemoryRecoversFromATritonRestart(t *testing.T) {
	e := startEnv(t, smallModel(), withShm(1<<20, 2))
	p := e.client.shm
	registrations := func() float64 { return testutil.ToFloat64(p.metrics.registrations.WithLabelValues("ok")) }
	if registrations() != 1 || e.srv.SharedMemoryRegisterCount() != 2 {
		t.Fatalf("registrations %v, Register calls %d; want 1, 2", registrations(), e.srv.SharedMemoryRegisterCount())
	}
	e.srv.Stop()
	e.srv.Restart()
	waitUntil(t, "the client to reconnect", func() bool { return e.client.Ready(callCtx(t)) == nil })
	e.srv.ResetRequests()

	var wg sync.WaitGroup
	for range 6 {
		buf, free := allocItems(t, e, 2)
		wg.Go(func() {
			defer free()
			if _, err := e.client.Infer(callCtx(t), gateway.Batch{Size: 2, Data: buf, Model: &e.info}); err != nil {
				t.Errorf("Infer after the restart: %v", err)
			}
		})
	}
	wg.Wait()
	if registrations() != 2 || e.srv.SharedMemoryRegisterCount() != 4 {
		t.Errorf("registrations %v, Register calls %d after the restart; want 2, 4 (once for all requests)", registrations(), e.srv.SharedMemoryRegisterCount())
	}
	if got := len(e.srv.SharedMemoryRegions()); got != 2 {
		t.Errorf("Triton has %d regions, want 2", got)
	}
	// Each request succeeded once: by shared memory, or in the message when
	// it was sent while another one was registering the regions again (then
	// counted as a fallback).
	var ok, inline int
	for _, rec := range e.srv.Requests() {
		if rec.Finished && rec.Code == 0 {
			ok++
			if rec.SharedMemory == nil {
				inline++
			}
		}
	}
	if fallbacks := testutil.ToFloat64(p.metrics.fallbacks.WithLabelValues(fallbackUnregistered)); ok != 6 || float64(inline) != fallbacks {
		t.Errorf("%d successful calls, %d in the message, %v fallbacks; want 6, and as many fallbacks as calls in the message", ok, inline, fallbacks)
	}

	// Model (the periodic refresh) notices a restart by itself too.
	e.srv.Stop()
	e.srv.Restart()
	waitUntil(t, "the model to be read again", func() bool {
		_, err := e.client.Model(callCtx(t))
		return err == nil
	})
	if got := len(e.srv.SharedMemoryRegions()); got != 2 || registrations() != 3 {
		t.Errorf("after Model: Triton has %d regions, %v registrations; want 2, 3", got, registrations())
	}
}

// Regions unregistered behind the client's back (an operator, another tool)
// are registered again by the first request that misses them.
func TestSharedMemoryUnregisteredElsewhere(t *testing.T) {
	e := startEnv(t, smallModel(), withShm(1<<20, 1))
	conn, err := grpc.NewClient(e.srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := kserve.NewGRPCInferenceServiceClient(conn).SystemSharedMemoryUnregister(callCtx(t), &kserve.SystemSharedMemoryUnregisterRequest{}); err != nil {
		t.Fatal(err)
	}
	buf, free := allocItems(t, e, 1)
	defer free()
	if _, err := e.client.Infer(callCtx(t), gateway.Batch{Size: 1, Data: buf, Model: &e.info}); err != nil {
		t.Fatalf("Infer: %v", err)
	}
	if rec, _ := e.srv.LastRequest(); rec.SharedMemory == nil {
		t.Error("the retry went in the message")
	}
}

// A Triton that cannot open the regions (another host, another IPC
// namespace) makes Model fail with an error that says so; tensors then travel
// in the message.
func TestSharedMemoryTritonElsewhere(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m, tritontest.WithSharedMemoryDir(t.TempDir()))
	cfg := testConfig(srv.Addr(), m.Name)
	withShm(1<<20, 1)(&cfg)
	c, _ := newTestClient(t, cfg)
	_, err := c.Model(callCtx(t))
	e := wantKind(t, err, gateway.KindBadGateway, "could not register region", "Unable to open shared memory region", "IPC namespace")
	if !strings.Contains(e.Message, c.shm.regions[0].key()) {
		t.Errorf("message %q does not name the key", e.Message)
	}
	if got := testutil.ToFloat64(c.shm.metrics.registrations.WithLabelValues("error")); got != 1 {
		t.Errorf("registrations{result=error} = %v, want 1", got)
	}
	// Inference itself works, in the message, from the region's bytes (with
	// the description a client without shared memory read).
	plain, _ := newTestClient(t, testConfig(srv.Addr(), m.Name))
	info, err := plain.Model(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	buf, free, ok := c.AllocTensor(m.ItemSize())
	if !ok {
		t.Fatal("no room")
	}
	defer free()
	copy(buf, tritontest.ItemForClass(m, 1))
	if _, err := c.Infer(callCtx(t), gateway.Batch{Size: 1, Data: buf, Model: &info}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := srv.LastRequest(); rec.SharedMemory != nil || !bytes.Equal(rec.Input, buf) {
		t.Errorf("sent as %v, want the tensor's bytes in the message", rec.SharedMemory)
	}
	if got := testutil.ToFloat64(c.shm.metrics.fallbacks.WithLabelValues(fallbackUnregistered)); got != 1 {
		t.Errorf("fallbacks{reason=unregistered} = %v, want 1", got)
	}
}

func TestSharedMemoryCloseUnregistersAndRemoves(t *testing.T) {
	e := startEnv(t, smallModel(), withShm(1<<20, 3))
	if len(ourObjects(t, e.client)) != 3 {
		t.Fatal("the regions' objects are missing")
	}
	if err := e.client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := e.srv.SharedMemoryRegions(); len(got) != 0 {
		t.Errorf("Triton still has %v after Close", got)
	}
	if got := ourObjects(t, e.client); len(got) != 0 {
		t.Errorf("objects left in /dev/shm: %v", got)
	}
	if err := e.client.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, ok := e.client.AllocTensor(64); ok {
		t.Error("AllocTensor lent memory after Close")
	}
}

func TestSharedMemoryCloseWithTritonDown(t *testing.T) {
	e := startEnv(t, smallModel(), withShm(1<<20, 1))
	e.srv.Stop()
	err := e.client.Close()
	if err == nil || !strings.Contains(err.Error(), "unregister") {
		t.Errorf("Close with Triton down: %v, want the failed unregistration", err)
	}
	if got := ourObjects(t, e.client); len(got) != 0 {
		t.Errorf("objects left in /dev/shm: %v", got)
	}
}

// A killed gateway leaves its objects in /dev/shm and its regions in Triton.
// The next gateway removes the objects nobody holds (their lock is free),
// never a live gateway's, and unregisters the dead one's regions.
func TestSharedMemoryStaleRegionsOfAKilledGateway(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)

	// A live gateway's region: its object stays locked.
	live, err := createMapping(shmDir, regionPrefix+"test-live-"+t.Name(), minRegionBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer live.close()
	// A dead gateway's: an object nobody locks, registered with Triton.
	deadName := regionPrefix + "test-dead-" + t.Name()
	deadPath := filepath.Join(shmDir, deadName)
	if err := os.WriteFile(deadPath, make([]byte, minRegionBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(deadPath) })
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := kserve.NewGRPCInferenceServiceClient(conn)
	for _, name := range []string{deadName, live.path[len(shmDir)+1:]} {
		if _, err := api.SystemSharedMemoryRegister(callCtx(t), &kserve.SystemSharedMemoryRegisterRequest{Name: name, Key: "/" + name, ByteSize: minRegionBytes}); err != nil {
			t.Fatal(err)
		}
	}

	cfg := testConfig(srv.Addr(), m.Name)
	withShm(1<<20, 1)(&cfg)
	c, _ := newTestClient(t, cfg)
	if _, err := os.Stat(deadPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead gateway's object is still there: %v", err)
	}
	if _, err := os.Stat(live.path); err != nil {
		t.Errorf("the live gateway's object was removed: %v", err)
	}
	if _, err := c.Model(callCtx(t)); err != nil {
		t.Fatal(err)
	}
	regions := srv.SharedMemoryRegions()
	if slices.Contains(regions, deadName) {
		t.Errorf("Triton still has the dead gateway's region: %v", regions)
	}
	if !slices.Contains(regions, live.path[len(shmDir)+1:]) {
		t.Errorf("the live gateway's region was unregistered: %v", regions)
	}
	if got := testutil.ToFloat64(c.shm.metrics.staleUnregistered); got != 1 {
		t.Errorf("stale regions unregistered: %v, want 1", got)
	}
}

// A tensor whose region Triton reports missing with another name is no
// registration loss: the error stands.
func TestRegionLostNeedsTheRegionsName(t *testing.T) {
	r := &shmRegion{name: "fishgw-1-ab-0"}
	lost := status.Error(codes.NotFound, "Unable to find shared memory region: 'fishgw-1-ab-0'")
	cases := []struct {
		err  error
		want bool
	}{
		{lost, true},
		{mapError(context.Background(), rpcModelInfer, lost), true}, // as call returns it
		{status.Error(codes.NotFound, "Unable to find shared memory region: 'fishgw-1-ab-01'"), false},
		{status.Error(codes.NotFound, "Unable to find shared memory region: 'other'"), false},
		{status.Error(codes.NotFound, "Request for unknown model: 'm' is not found"), false},
		{status.Error(codes.InvalidArgument, "Invalid offset + byte size for shared memory region: 'fishgw-1-ab-0'"), false},
		{context.Canceled, false},
	}
	for _, tc := range cases {
		if got := regionLost(tc.err, r); got != tc.want {
			t.Errorf("regionLost(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// Memory still lent when Close gives up waiting stays mapped (its writer must
// not fault); the objects' names go all the same.
func TestSharedMemoryCloseWithATensorStillLent(t *testing.T) {
	e := startEnv(t, smallModel(), withShm(1<<20, 1))
	buf, free, ok := e.client.AllocTensor(e.model.ItemSize())
	if !ok {
		t.Fatal("no room")
	}
	err := e.client.closeShm(50 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "still lent") {
		t.Errorf("closeShm with a loan out: %v, want an error saying so", err)
	}
	buf[0] = 1 // still mapped: no fault
	free()
	if got := ourObjects(t, e.client); len(got) != 0 {
		t.Errorf("objects left in /dev/shm: %v", got)
	}
	if got := e.srv.SharedMemoryRegions(); len(got) != 0 {
		t.Errorf("Triton still has %v", got)
	}
	if _, _, ok := e.client.AllocTensor(64); ok {
		t.Error("AllocTensor lent memory after Close")
	}
}

// A KServe server without the extension makes Model fail, saying so.
func TestSharedMemoryServerWithoutTheExtension(t *testing.T) {
	meta, cfg := stubModel()
	addr := startStub(t, &stubServer{meta: meta, cfg: cfg})
	c, _ := newTestClient(t, func() Config {
		c := testConfig(addr, "stub")
		c.Labels = []string{"a", "b", "c"}
		withShm(1<<20, 1)(&c)
		return c
	}())
	_, err := c.Model(callCtx(t))
	wantKind(t, err, gateway.KindBadGateway, "did not answer SystemSharedMemoryStatus", "system_shared_memory extension", "TRITON_SHARED_MEMORY=none")
}
