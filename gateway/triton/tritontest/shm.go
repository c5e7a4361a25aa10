package tritontest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// Triton's system shared-memory extension, as Triton 2.51 answers it (checked
// against the real server): a region is registered under a name with the
// shm_open key of a POSIX shared-memory object on the server's host, an
// offset into it and a byte size; an input then names region, offset and
// size in its parameters instead of carrying its bytes. Where Triton maps the
// object, this server keeps it open and reads the tensor's bytes from it when
// the request arrives: the same bytes, from the same memory of the host.

// DefaultSharedMemoryDir is where shm_open's objects live on Linux, and where
// Triton opens a region's key.
const DefaultSharedMemoryDir = "/dev/shm"

// The input parameters of the extension.
const (
	ParamSharedMemoryRegion   = "shared_memory_region"
	ParamSharedMemoryOffset   = "shared_memory_offset"
	ParamSharedMemoryByteSize = "shared_memory_byte_size"
)

// WithSharedMemoryDir makes the server open the keys of registered regions in
// dir instead of /dev/shm: a server that does not see the client's /dev/shm,
// as a Triton on another host or in another IPC namespace.
func WithSharedMemoryDir(dir string) Option {
	return func(o *options) { o.shmDir = dir }
}

// SharedMemoryInput is where an input's bytes were read from when the request
// named a shared-memory region.
type SharedMemoryInput struct {
	Region           string
	Offset, ByteSize int64
}

// region is one registered region: the object, open, and its part in use.
type region struct {
	name, key        string
	offset, byteSize uint64
	file             *os.File
}

// SharedMemoryRegions returns the names of the registered regions, sorted.
func (s *Server) SharedMemoryRegions() []string {
	s.service.mu.Lock()
	defer s.service.mu.Unlock()
	names := make([]string, 0, len(s.service.regions))
	for n := range s.service.regions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// dropRegions forgets every registration, as a server process that ends.
func (s *service) dropRegions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range s.regions {
		_ = r.file.Close()
		delete(s.regions, name)
	}
}

func (s *service) SystemSharedMemoryStatus(_ context.Context, req *kserve.SystemSharedMemoryStatusRequest) (*kserve.SystemSharedMemoryStatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &kserve.SystemSharedMemoryStatusResponse{Regions: map[string]*kserve.SystemSharedMemoryStatusResponse_RegionStatus{}}
	for name, r := range s.regions {
		if req.GetName() != "" && req.GetName() != name {
			continue
		}
		resp.Regions[name] = &kserve.SystemSharedMemoryStatusResponse_RegionStatus{
			Name: name, Key: r.key, Offset: r.offset, ByteSize: r.byteSize,
		}
	}
	if req.GetName() != "" && len(resp.Regions) == 0 {
		return nil, status.Errorf(codes.NotFound, "Unable to find system shared memory region: '%s'", req.GetName())
	}
	return resp, nil
}

func (s *service) SystemSharedMemoryRegister(_ context.Context, req *kserve.SystemSharedMemoryRegisterRequest) (*kserve.SystemSharedMemoryRegisterResponse, error) {
	s.shmCalls.Add(1)
	name, key := req.GetName(), req.GetKey()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "shared memory region name must not be empty")
	}
	s.mu.Lock()
	_, exists := s.regions[name]
	s.mu.Unlock()
	if exists {
		return nil, status.Errorf(codes.AlreadyExists, "shared memory region '%s' already in manager", name)
	}
	// shm_open ignores the key's leading slashes; a key naming a path below
	// them is not an object of the directory.
	object := strings.TrimLeft(key, "/")
	if object == "" || strings.Contains(object, "/") {
		return nil, status.Errorf(codes.Internal, "Unable to open shared memory region: '%s'", key)
	}
	f, err := os.Open(filepath.Join(s.shmDir, object))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "Unable to open shared memory region: '%s'", key)
	}
	info, err := f.Stat()
	if err != nil || uint64(info.Size()) < req.GetOffset()+req.GetByteSize() || req.GetOffset()+req.GetByteSize() < req.GetOffset() {
		_ = f.Close()
		return nil, status.Errorf(codes.Internal, "Invalid shared memory region: '%s'", key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.regions[name]; exists {
		_ = f.Close()
		return nil, status.Errorf(codes.AlreadyExists, "shared memory region '%s' already in manager", name)
	}
	s.regions[name] = &region{name: name, key: key, offset: req.GetOffset(), byteSize: req.GetByteSize(), file: f}
	return &kserve.SystemSharedMemoryRegisterResponse{}, nil
}

// SystemSharedMemoryUnregister forgets the named region, or every region for
// an empty name; an unknown name is no error, as in Triton.
func (s *service) SystemSharedMemoryUnregister(_ context.Context, req *kserve.SystemSharedMemoryUnregisterRequest) (*kserve.SystemSharedMemoryUnregisterResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range s.regions {
		if req.GetName() == "" || req.GetName() == name {
			_ = r.file.Close()
			delete(s.regions, name)
		}
	}
	return &kserve.SystemSharedMemoryUnregisterResponse{}, nil
}

// sharedInput reads the bytes of an input that names a shared-memory region
// in its parameters; ok is false for an input that names none. Errors are
// Triton's codes and messages.
func (s *service) sharedInput(in *kserve.ModelInferRequest_InferInputTensor, wantBytes int) (data []byte, where *SharedMemoryInput, ok bool, err error) {
	params := in.GetParameters()
	regionParam, named := params[ParamSharedMemoryRegion]
	if !named {
		for _, p := range []string{ParamSharedMemoryOffset, ParamSharedMemoryByteSize} {
			if _, set := params[p]; set {
				return nil, nil, true, status.Errorf(codes.InvalidArgument,
					"'%s' can not be specified without '%s' parameter for tensor '%s'", p, ParamSharedMemoryRegion, in.GetName())
			}
		}
		return nil, nil, false, nil
	}
	name, isString := regionParam.GetParameterChoice().(*kserve.InferParameter_StringParam)
	if !isString {
		return nil, nil, true, status.Errorf(codes.InvalidArgument,
			"invalid value type for '%s' parameter for tensor '%s', expected string_param.", ParamSharedMemoryRegion, in.GetName())
	}
	intParam := func(key string, required bool) (int64, error) {
		p, set := params[key]
		if !set {
			if required {
				return 0, status.Errorf(codes.InvalidArgument,
					"'%s' must be specified along with '%s' parameter for tensor '%s'", key, ParamSharedMemoryRegion, in.GetName())
			}
			return 0, nil
		}
		v, isInt := p.GetParameterChoice().(*kserve.InferParameter_Int64Param)
		if !isInt || v.Int64Param < 0 {
			return 0, status.Errorf(codes.InvalidArgument,
				"invalid value type for '%s' parameter for tensor '%s', expected a non-negative int64_param.", key, in.GetName())
		}
		return v.Int64Param, nil
	}
	offset, err := intParam(ParamSharedMemoryOffset, false)
	if err != nil {
		return nil, nil, true, err
	}
	size, err := intParam(ParamSharedMemoryByteSize, true)
	if err != nil {
		return nil, nil, true, err
	}
	s.mu.Lock()
	r, found := s.regions[name.StringParam]
	s.mu.Unlock()
	if !found {
		return nil, nil, true, status.Errorf(codes.NotFound, "Unable to find shared memory region: '%s'", name.StringParam)
	}
	if uint64(offset)+uint64(size) > r.byteSize {
		return nil, nil, true, status.Errorf(codes.InvalidArgument, "Invalid offset + byte size for shared memory region: '%s'", name.StringParam)
	}
	if int(size) != wantBytes {
		return nil, nil, true, status.Errorf(codes.InvalidArgument,
			"input byte size mismatch for input '%s' for model '%s'. Expected %d, got %d", in.GetName(), s.model.Name, wantBytes, size)
	}
	data = make([]byte, size)
	if _, err := r.file.ReadAt(data, int64(r.offset)+offset); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, true, status.Errorf(codes.Internal, "read shared memory region '%s': %v", name.StringParam, err)
	}
	return data, &SharedMemoryInput{Region: name.StringParam, Offset: offset, ByteSize: size}, true, nil
}

// String describes where an input was read from, for test messages.
func (w *SharedMemoryInput) String() string {
	if w == nil {
		return "raw_input_contents"
	}
	return fmt.Sprintf("region %s [%d, +%d)", w.Region, w.Offset, w.ByteSize)
}
