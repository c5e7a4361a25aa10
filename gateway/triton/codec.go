package triton

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// inferMessage is a ModelInfer request whose tensors travel apart from the
// message: req has no raw_input_contents, raw holds them in order. inferCodec
// writes it as the single message it stands for.
type inferMessage struct {
	req *kserve.ModelInferRequest
	raw [][]byte
}

// full returns the request inferMessage stands for, raw contents included
// (sharing their bytes), for tests and for code that wants a plain message.
func (m *inferMessage) full() *kserve.ModelInferRequest {
	r := proto.Clone(m.req).(*kserve.ModelInferRequest)
	r.RawInputContents = m.raw
	return r
}

// rawInputContentsField is raw_input_contents' field number in
// ModelInferRequest (7): the last field, so a message encoded without it and
// followed by its elements is the message encoded with them.
var rawInputContentsField = (&kserve.ModelInferRequest{}).ProtoReflect().Descriptor().
	Fields().ByName("raw_input_contents").Number()

// inferCodec is the gRPC codec of ModelInfer calls. grpc-go's default codec
// encodes a message into one buffer taken from its pool, which it clears
// first; for a request that carries tensors that is a clear of up to 1 MiB and
// a copy of every tensor byte per call. inferCodec encodes the small rest of
// the request and hands gRPC the tensors where they already are, as further
// buffers of the same message: the bytes on the wire are the same, the tensor
// is copied once, by HTTP/2 framing, instead of twice.
//
// gRPC reads the tensor buffers until the call's data is written, which is
// before the answer arrives: the caller must not change them until the call
// returns. (If a call fails before its data is written, gRPC may still be
// reading them when the call has returned; what it then sends belongs to a
// stream that is being reset, and the server discards it.)
//
// Every other message goes to grpc-go's proto codec.
type inferCodec struct{ proto encoding.CodecV2 }

var _ encoding.CodecV2 = inferCodec{}

func newInferCodec() inferCodec {
	c := encoding.GetCodecV2(grpcproto.Name)
	if c == nil {
		panic("triton: grpc-go's proto codec is not registered")
	}
	return inferCodec{proto: c}
}

// Name keeps the content-subtype of the proto codec: "application/grpc+proto".
func (inferCodec) Name() string { return grpcproto.Name }

func (c inferCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*inferMessage)
	if !ok {
		return c.proto.Marshal(v)
	}
	if m == nil || m.req == nil {
		return nil, errors.New("triton: nil ModelInfer request")
	}
	if len(m.req.GetRawInputContents()) > 0 {
		return nil, errors.New("triton: inferMessage with raw_input_contents inside the request")
	}
	head, err := proto.MarshalOptions{}.Marshal(m.req)
	if err != nil {
		return nil, fmt.Errorf("triton: encode ModelInfer request: %w", err)
	}
	out := make(mem.BufferSlice, 0, 1+2*len(m.raw))
	for _, raw := range m.raw {
		head = protowire.AppendTag(head, rawInputContentsField, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(len(raw)))
		if len(raw) == 0 {
			continue
		}
		out = append(out, mem.SliceBuffer(head), mem.SliceBuffer(raw))
		head = nil
	}
	if len(head) > 0 {
		out = append(out, mem.SliceBuffer(head))
	}
	return out, nil
}

func (c inferCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }
