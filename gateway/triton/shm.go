package triton

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// Values of Config.SharedMemory.
const (
	// SharedMemoryNone sends input tensors inside the gRPC message (the default).
	SharedMemoryNone = "none"
	// SharedMemorySystem writes input tensors into POSIX shared-memory regions
	// registered with Triton (its system shared-memory extension); the request
	// only names region, offset and size.
	SharedMemorySystem = "system"
)

// Bounds of the shared-memory settings.
const (
	// MaxSharedMemoryRegions bounds the regions Triton is asked to map.
	MaxSharedMemoryRegions = 64
	// minRegionBytes is the smallest region: one 4 KiB page.
	minRegionBytes = 4 << 10
	// maxSharedMemoryBytes bounds SharedMemoryBytes (1 TiB).
	maxSharedMemoryBytes = 1 << 40
)

// shmDir is where shm_open creates its objects on Linux, and where Triton
// opens a region's key.
const shmDir = "/dev/shm"

// regionPrefix starts the name of every region a gateway creates; a region
// left by a killed gateway is found by it (removeStale).
const regionPrefix = "fishgw-"

// shmAlign is the alignment of every tensor in a region: a cache line, more
// than any element type needs.
const shmAlign = 64

// The input parameters of Triton's system shared-memory extension.
const (
	paramRegion   = "shared_memory_region"
	paramOffset   = "shared_memory_offset"
	paramByteSize = "shared_memory_byte_size"
)

// The shared-memory RPCs: values of the rpc label.
const (
	rpcShmStatus     = "SystemSharedMemoryStatus"
	rpcShmRegister   = "SystemSharedMemoryRegister"
	rpcShmUnregister = "SystemSharedMemoryUnregister"
)

var shmRPCNames = []string{rpcShmStatus, rpcShmRegister, rpcShmUnregister}

// Reasons a tensor that could have gone through shared memory went in the
// message: values of the reason label of triton_shared_memory_fallbacks_total.
const (
	fallbackFull         = "full"         // no free space of the size in any region
	fallbackTooLarge     = "too_large"    // larger than a region
	fallbackUnregistered = "unregistered" // Triton does not have the regions (now)
)

// Values of the via label of triton_infer_inputs_total.
const (
	viaMessage      = "message"
	viaSharedMemory = "system_shared_memory"
)

// shmPool is the client's shared-memory regions: created and mapped by New,
// registered with Triton by Model (and again whenever Triton turns out to
// have lost them), carved into tensors by AllocTensor, unregistered and
// removed by Close.
type shmPool struct {
	regions []*shmRegion
	// stale are the names of regions of killed gateways that New removed
	// from /dev/shm; Triton may still have them registered.
	stale   []string
	metrics *shmMetrics
	next    atomic.Uint32 // the region AllocTensor tries first

	mu         sync.Mutex // serialises registration
	registered atomic.Bool
	gen        atomic.Uint64 // counts the registrations that registered something
	closed     atomic.Bool   // set by Close: no more loans, no registration
	loans      sync.WaitGroup
}

// shmRegion is one region and the allocator of its bytes.
type shmRegion struct {
	name string // Triton's name for it, and the object's name in /dev/shm
	m    *mapping
	base uintptr // address of m.mem[0]

	mu   sync.Mutex
	free []extent // free extents, by offset, never adjacent
}

// extent is a byte range of a region.
type extent struct{ off, n int }

// key is the region's shm_open key, as Triton is given it.
func (r *shmRegion) key() string { return "/" + r.name }

func (r *shmRegion) size() int { return len(r.m.mem) }

// newShmPool removes the regions killed gateways left in /dev/shm, then
// creates and maps this process's: cfg.SharedMemoryRegions regions sharing
// cfg.SharedMemoryBytes, named fishgw-<pid>-<random>-<i>.
func newShmPool(cfg Config, m *shmMetrics) (*shmPool, error) {
	stale, err := removeStale(shmDir, regionPrefix)
	if err != nil {
		return nil, fmt.Errorf("triton: system shared memory: %w", err)
	}
	var nonce [4]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("triton: system shared memory: %w", err)
	}
	prefix := fmt.Sprintf("%s%d-%s-", regionPrefix, os.Getpid(), hex.EncodeToString(nonce[:]))
	per := regionBytes(cfg.SharedMemoryBytes, cfg.SharedMemoryRegions)
	p := &shmPool{stale: stale, metrics: m}
	for i := range cfg.SharedMemoryRegions {
		name := fmt.Sprintf("%s%d", prefix, i)
		mp, err := createMapping(shmDir, name, per)
		if err != nil {
			_ = p.close()
			return nil, fmt.Errorf("triton: system shared memory region %d of %d (%d bytes): %w", i+1, cfg.SharedMemoryRegions, per, err)
		}
		p.regions = append(p.regions, &shmRegion{
			name: name, m: mp,
			base: uintptr(unsafe.Pointer(unsafe.SliceData(mp.mem))),
			free: []extent{{0, per}},
		})
	}
	m.size.Set(float64(per * len(p.regions)))
	return p, nil
}

// regionBytes is the size of each of regions regions sharing total bytes:
// whole pages, rounded down.
func regionBytes(total int64, regions int) int {
	per := total / int64(regions)
	return int(per &^ (minRegionBytes - 1))
}

// names are the regions' names.
func (p *shmPool) names() []string {
	out := make([]string, len(p.regions))
	for i, r := range p.regions {
		out[i] = r.name
	}
	return out
}

// alloc takes n bytes (rounded up to shmAlign) from the first region with a
// free extent that large, starting with a different region each time; ok is
// false when none has one (counted as a fallback). free gives the bytes back;
// calling it more than once does nothing.
func (p *shmPool) alloc(n int) (buf []byte, free func(), ok bool) {
	if n <= 0 {
		return nil, nil, false
	}
	need := (n + shmAlign - 1) &^ (shmAlign - 1)
	if need > p.regions[0].size() {
		p.metrics.fallbacks.WithLabelValues(fallbackTooLarge).Inc()
		return nil, nil, false
	}
	first := int(p.next.Add(1)) % len(p.regions)
	for i := range p.regions {
		r := p.regions[(first+i)%len(p.regions)]
		off, ok := r.take(need)
		if !ok {
			continue
		}
		p.metrics.inUse.Add(float64(need))
		p.loans.Add(1)
		var once sync.Once
		return r.m.mem[off : off+n : off+n], func() {
			once.Do(func() {
				r.give(extent{off, need})
				p.metrics.inUse.Sub(float64(need))
				p.loans.Done()
			})
		}, true
	}
	p.metrics.fallbacks.WithLabelValues(fallbackFull).Inc()
	return nil, nil, false
}

// take removes need bytes from the first free extent that holds them.
func (r *shmRegion) take(need int) (off int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.free {
		if e.n < need {
			continue
		}
		if e.n == need {
			r.free = slices.Delete(r.free, i, i+1)
		} else {
			r.free[i] = extent{e.off + need, e.n - need}
		}
		return e.off, true
	}
	return 0, false
}

// give returns an extent to the free list, merging it with its neighbours.
func (r *shmRegion) give(x extent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, _ := slices.BinarySearchFunc(r.free, x.off, func(e extent, off int) int { return e.off - off })
	if i > 0 && r.free[i-1].off+r.free[i-1].n == x.off {
		i--
		x = extent{r.free[i].off, r.free[i].n + x.n}
		r.free = slices.Delete(r.free, i, i+1)
	}
	if i < len(r.free) && x.off+x.n == r.free[i].off {
		x.n += r.free[i].n
		r.free = slices.Delete(r.free, i, i+1)
	}
	r.free = slices.Insert(r.free, i, x)
}

// freeBytes is the free space of the region, for tests.
func (r *shmRegion) freeBytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.free {
		n += e.n
	}
	return n
}

// locate finds the region data lies in and its offset there; ok is false for
// bytes outside every region (the Classifier's own buffers).
func (p *shmPool) locate(data []byte) (r *shmRegion, off int, ok bool) {
	if len(data) == 0 {
		return nil, 0, false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	for _, r := range p.regions {
		if start >= r.base && start-r.base+uintptr(len(data)) <= uintptr(r.size()) {
			return r, int(start - r.base), true
		}
	}
	return nil, 0, false
}

// close removes the regions from this process and from /dev/shm.
func (p *shmPool) close() error {
	var errs []error
	for _, r := range p.regions {
		errs = append(errs, r.m.close())
	}
	return errors.Join(errs...)
}

// AllocTensor lends n bytes of a shared-memory region for a batch tensor
// (gateway.TensorMemory): a tensor preprocessed into them reaches Triton
// without being copied into the request. ok is false when shared memory is
// off or closed, or no region has n bytes free; the caller then uses memory of
// its own, which travels in the message. Should Triton not have the regions
// registered when the tensor is sent (Triton restarting), Infer sends it in
// the message, from the region. free must be called once the last Infer with
// the bytes has returned.
func (c *Client) AllocTensor(n int) (buf []byte, free func(), ok bool) {
	p := c.shm
	if p == nil || p.closed.Load() {
		return nil, nil, false
	}
	return p.alloc(n)
}

var _ gateway.TensorMemory = (*Client)(nil)

// useRegion makes msg's input name bytes [off, off+n) of region r instead of
// carrying them.
func (msg *inferMessage) useRegion(r *shmRegion, off, n int) {
	msg.req.Inputs[0].Parameters = map[string]*kserve.InferParameter{
		paramRegion:   {ParameterChoice: &kserve.InferParameter_StringParam{StringParam: r.name}},
		paramOffset:   {ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: int64(off)}},
		paramByteSize: {ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: int64(n)}},
	}
	msg.raw = nil
}

// via says how msg's input travels: a value of the via label.
func (msg *inferMessage) via() string {
	if _, ok := msg.req.GetInputs()[0].GetParameters()[paramRegion]; ok {
		return viaSharedMemory
	}
	return viaMessage
}

// useMessage puts data back into msg as raw contents.
func (msg *inferMessage) useMessage(data []byte) {
	msg.req.Inputs[0].Parameters = nil
	msg.raw = [][]byte{data}
}

// ensureRegistered makes sure Triton has every region registered under its
// key: it asks Triton which it has (one SystemSharedMemoryStatus call) and
// registers the others. The first time it succeeds, it also unregisters the
// regions of killed gateways (removed from /dev/shm by New, or missing there)
// that Triton still maps. Errors: the calls' (see mapError), or KindBadGateway
// when Triton cannot map a region, saying why that usually is.
func (c *Client) ensureRegistered(ctx context.Context) error {
	p := c.shm
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.ensureRegisteredLocked(ctx)
}

// recoverRegions is ensureRegistered for a request that found its region
// missing in Triton; seen is the registration generation when the request was
// sent. When the regions were registered again since, by another request or
// Model, it does nothing: many requests that fail at once after a restart of
// Triton register the regions once.
func (c *Client) recoverRegions(ctx context.Context, seen uint64) error {
	p := c.shm
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen.Load() != seen && p.registered.Load() {
		return nil
	}
	p.registered.Store(false)
	return c.ensureRegisteredLocked(ctx)
}

func (c *Client) ensureRegisteredLocked(ctx context.Context) error {
	p := c.shm
	if p.closed.Load() {
		return &gateway.Error{Kind: gateway.KindUnavailable, Message: "inference server unavailable: the client is closed"}
	}
	st, err := call(ctx, c, rpcShmStatus, func(ctx context.Context) (*kserve.SystemSharedMemoryStatusResponse, error) {
		return c.api.SystemSharedMemoryStatus(ctx, &kserve.SystemSharedMemoryStatusRequest{})
	})
	if err != nil {
		p.registered.Store(false)
		switch gateway.KindOf(err) {
		case gateway.KindUnavailable, gateway.KindDeadline, gateway.KindCanceled:
			return err
		}
		return &gateway.Error{
			Kind: gateway.KindBadGateway,
			Message: fmt.Sprintf("system shared memory: the inference server did not answer %s (%s): "+
				"it must be Triton with its system_shared_memory extension, or set TRITON_SHARED_MEMORY=none", rpcShmStatus, gateway.PublicMessage(err)),
			Err: err,
		}
	}
	have := st.GetRegions()
	var missing []*shmRegion
	for _, r := range p.regions {
		got, ok := have[r.name]
		if !ok || got.GetKey() != r.key() || got.GetOffset() != 0 || got.GetByteSize() != uint64(r.size()) {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		p.registered.Store(true)
		return nil
	}
	p.registered.Store(false)
	for _, r := range missing {
		if _, ok := have[r.name]; ok {
			// Registered otherwise than we would (cannot happen with our
			// unique names, short of a bug): replace it.
			if err := c.unregister(ctx, r.name); err != nil {
				return err
			}
		}
		if err := c.register(ctx, r); err != nil {
			p.metrics.registrations.WithLabelValues("error").Inc()
			return err
		}
	}
	p.metrics.registrations.WithLabelValues("ok").Inc()
	p.gen.Add(1)
	p.registered.Store(true)
	c.unregisterStale(ctx, have)
	return nil
}

// register registers one region.
func (c *Client) register(ctx context.Context, r *shmRegion) error {
	_, err := call(ctx, c, rpcShmRegister, func(ctx context.Context) (*kserve.SystemSharedMemoryRegisterResponse, error) {
		return c.api.SystemSharedMemoryRegister(ctx, &kserve.SystemSharedMemoryRegisterRequest{
			Name: r.name, Key: r.key(), Offset: 0, ByteSize: uint64(r.size()),
		})
	})
	if err == nil {
		return nil
	}
	switch gateway.KindOf(err) {
	case gateway.KindUnavailable, gateway.KindDeadline, gateway.KindCanceled:
		return err
	}
	msg := err.Error()
	if s, ok := grpcStatus(err); ok {
		msg = s.Message()
	}
	return &gateway.Error{
		Kind: gateway.KindBadGateway,
		Message: fmt.Sprintf("system shared memory: Triton could not register region %q (key %s, %d bytes): %s; "+
			"Triton must run on this host, see the gateway's /dev/shm (same IPC namespace) and be allowed to open "+
			"a mode-0600 file of uid %d", r.name, r.key(), r.size(), msg, os.Getuid()),
		Err: err,
	}
}

// unregister unregisters one region by name (Triton answers success for an
// unknown name).
func (c *Client) unregister(ctx context.Context, name string) error {
	_, err := call(ctx, c, rpcShmUnregister, func(ctx context.Context) (*kserve.SystemSharedMemoryUnregisterResponse, error) {
		return c.api.SystemSharedMemoryUnregister(ctx, &kserve.SystemSharedMemoryUnregisterRequest{Name: name})
	})
	return err
}

// unregisterStale unregisters, best effort, the regions of other gateways
// that Triton maps but whose objects are gone from /dev/shm: their gateway
// was killed, and New (here or in another gateway) removed its objects. Our
// own registration succeeding shows that Triton and this process see the same
// /dev/shm, so a missing object is really gone.
func (c *Client) unregisterStale(ctx context.Context, have map[string]*kserve.SystemSharedMemoryStatusResponse_RegionStatus) {
	p := c.shm
	ours := p.names()
	for name, r := range have {
		if !strings.HasPrefix(name, regionPrefix) || slices.Contains(ours, name) {
			continue
		}
		key := strings.TrimPrefix(r.GetKey(), "/")
		if slices.Contains(p.stale, key) || (key != "" && !strings.Contains(key, "/") && !objectExists(shmDir, key)) {
			if c.unregister(ctx, name) == nil {
				p.metrics.staleUnregistered.Inc()
			}
		}
	}
	p.stale = nil
}

// regionLost tells whether err, the answer to a request that named region r,
// says that Triton does not have r registered (Triton restarted, or someone
// unregistered it): NOT_FOUND "Unable to find shared memory region: '<name>'".
func regionLost(err error, r *shmRegion) bool {
	s, ok := grpcStatus(err)
	return ok && s.Code() == codes.NotFound && strings.Contains(s.Message(), "shared memory region") &&
		strings.Contains(s.Message(), "'"+r.name+"'")
}

// grpcStatus is the gRPC status anywhere in err's chain (mapError keeps the
// call's error in gateway.Error.Err).
func grpcStatus(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil, false
	}
	return se.GRPCStatus(), true
}

// shmMetrics are the shared-memory collectors, registered only when shared
// memory is on.
type shmMetrics struct {
	fallbacks         *prometheus.CounterVec // reason
	registrations     *prometheus.CounterVec // result
	staleUnregistered prometheus.Counter
	inUse             prometheus.Gauge
	size              prometheus.Gauge
}

// newShmMetrics builds the shared-memory collectors and registers them with
// reg (none when reg is nil), as newMetrics does.
func newShmMetrics(reg prometheus.Registerer) *shmMetrics {
	f := promauto.With(reg)
	m := &shmMetrics{
		fallbacks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triton_shared_memory_fallbacks_total",
			Help: "Batch tensors sent inside the gRPC message although system shared memory is on, by reason: full (no free space of the size), too_large (larger than a region), unregistered (Triton did not have the regions).",
		}, []string{"reason"}),
		registrations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triton_shared_memory_registrations_total",
			Help: "Registrations of the gateway's system shared-memory regions with Triton, by result; more than one ok means Triton lost them (a restart) and they were registered again.",
		}, []string{"result"}),
		staleUnregistered: f.NewCounter(prometheus.CounterOpts{
			Name: "triton_shared_memory_stale_unregistered_total",
			Help: "Regions of killed gateways that Triton still had registered, unregistered by this one.",
		}),
		inUse: f.NewGauge(prometheus.GaugeOpts{
			Name: "triton_shared_memory_bytes_in_use",
			Help: "Bytes of the system shared-memory regions lent to batch tensors now.",
		}),
		size: f.NewGauge(prometheus.GaugeOpts{
			Name: "triton_shared_memory_bytes",
			Help: "Size of the gateway's system shared-memory regions together.",
		}),
	}
	for _, r := range []string{fallbackFull, fallbackTooLarge, fallbackUnregistered} {
		m.fallbacks.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error"} {
		m.registrations.WithLabelValues(r)
	}
	return m
}

// closeShm unregisters the regions from Triton (best effort, within timeout:
// a Triton that is down has lost them anyway), waits for the tensors lent out
// to come back (within the same timeout), and removes the regions. Memory
// still lent after the timeout (a request that outlived the shutdown) stays
// mapped, so that its writer cannot fault; its name is removed all the same.
func (c *Client) closeShm(timeout time.Duration) error {
	p := c.shm
	p.mu.Lock() // a registration in progress ends first; none starts after
	first := !p.closed.Swap(true)
	p.registered.Store(false)
	p.mu.Unlock()
	if !first {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for _, r := range p.regions {
		if err := c.unregister(ctx, r.name); err != nil {
			errs = append(errs, fmt.Errorf("unregister %s: %w", r.name, err))
		}
	}
	returned := make(chan struct{})
	go func() {
		p.loans.Wait()
		close(returned)
	}()
	select {
	case <-returned:
		if err := p.close(); err != nil {
			errs = append(errs, err)
		}
	case <-ctx.Done():
		for _, r := range p.regions {
			if err := r.m.unlink(); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, errors.New("tensors still lent at the deadline: the regions stay mapped until the process ends"))
	}
	return errors.Join(errs...)
}
