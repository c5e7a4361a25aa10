package triton

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/internal/float16"
)

// RequestIDHeader is the gRPC metadata key that carries the request id of the
// call's context (gateway.RequestID) to the inference server, beside the
// ModelInferRequest's id.
const RequestIDHeader = "x-request-id"

// Infer sends the batch to Triton in one ModelInfer call, its tensor bytes as
// they are (raw_input_contents), and returns the model's scores, one row per
// item, after checking the answer's output, datatype, shape and size. The
// request is built from in.Model, the description Model returned that the
// tensors were made for: input name, datatype and dimensions, the output, the
// batching. A batch without one, or one it does not fit, is KindInternal.
//
// The request id of ctx (gateway.RequestID), when there is one, becomes the
// ModelInferRequest's id, which Triton logs and echoes in its answer, and goes
// as x-request-id metadata too. Every call made for one HTTP request, a batch
// split in several calls included, carries that request's id. An answer
// echoing another id is a crossed answer: KindBadGateway.
func (c *Client) Infer(ctx context.Context, in gateway.Batch) (gateway.Scores, error) {
	st, err := tensorsOf(in.Model)
	if err != nil {
		return gateway.Scores{}, err
	}
	if err := st.checkBatch(in); err != nil {
		return gateway.Scores{}, err
	}
	id, hasID := gateway.RequestID(ctx)
	if hasID {
		ctx = metadata.AppendToOutgoingContext(ctx, RequestIDHeader, id)
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	msg := c.inferRequest(&st, in, id)
	var resp *kserve.ModelInferResponse
	if c.shm != nil {
		resp, err = c.inferShared(ctx, msg, in.Data)
	} else {
		resp, err = c.modelInfer(ctx, msg)
	}
	if err != nil {
		return gateway.Scores{}, err
	}
	if hasID && resp.GetId() != id {
		return gateway.Scores{}, badGateway("id %q for request %q", resp.GetId(), id)
	}
	scores, bad := st.decodeScores(resp, in.Size)
	if bad != nil {
		return gateway.Scores{}, bad
	}
	scores.Backend = Backend
	return scores, nil
}

// inferShared sends msg, whose tensor is data, by shared memory when data
// lies in a region Triton has registered, in the message otherwise. When
// Triton answers that it does not know the region (it restarted), the regions
// are registered again and the request is sent once more: by shared memory
// when that worked, in the message when not.
func (c *Client) inferShared(ctx context.Context, msg *inferMessage, data []byte) (*kserve.ModelInferResponse, error) {
	p := c.shm
	r, off, inRegion := p.locate(data)
	if !inRegion {
		return c.modelInfer(ctx, msg)
	}
	gen := p.gen.Load()
	if !p.registered.Load() {
		p.metrics.fallbacks.WithLabelValues(fallbackUnregistered).Inc()
		return c.modelInfer(ctx, msg)
	}
	msg.useRegion(r, off, len(data))
	resp, err := c.modelInfer(ctx, msg)
	if err == nil || !regionLost(err, r) {
		return resp, err
	}
	if c.recoverRegions(ctx, gen) == nil {
		return c.modelInfer(ctx, msg)
	}
	p.metrics.fallbacks.WithLabelValues(fallbackUnregistered).Inc()
	msg.useMessage(data)
	return c.modelInfer(ctx, msg)
}

// checkBatch rejects a batch the model cannot take (modelconfig.CheckBatch).
func (st *modelTensors) checkBatch(in gateway.Batch) error {
	return st.CheckBatch("triton", in)
}

// modelInfer makes the ModelInfer call of msg (with the retry policy, see
// call), encoded by inferCodec: msg's tensors go to the wire from where they
// are.
func (c *Client) modelInfer(ctx context.Context, msg *inferMessage) (*kserve.ModelInferResponse, error) {
	c.metrics.sent(msg.via())
	return call(ctx, c, rpcModelInfer, func(ctx context.Context) (*kserve.ModelInferResponse, error) {
		resp := new(kserve.ModelInferResponse)
		err := c.conn.Invoke(ctx, kserve.GRPCInferenceService_ModelInfer_FullMethodName, msg, resp,
			grpc.StaticMethod(), grpc.ForceCodecV2(c.codec))
		if err != nil {
			return nil, err
		}
		return resp, nil
	})
}

// inferRequest builds the ModelInfer request of a checked batch, with the
// request id id ("": none); its raw contents are in.Data itself, not a copy.
func (c *Client) inferRequest(st *modelTensors, in gateway.Batch, id string) *inferMessage {
	shape := st.InputDims
	if st.Batched {
		shape = append([]int64{int64(in.Size)}, st.InputDims...)
	}
	req := &kserve.ModelInferRequest{
		ModelName: c.cfg.Model,
		// The configured version, not the one Model resolved: with "" Triton
		// keeps serving whichever version is current, across model updates.
		ModelVersion: c.cfg.Version,
		Id:           id,
		Inputs: []*kserve.ModelInferRequest_InferInputTensor{{
			Name:     st.InputName,
			Datatype: st.InputDatatype,
			Shape:    shape,
		}},
		Outputs: []*kserve.ModelInferRequest_InferRequestedOutputTensor{{Name: st.OutputName}},
	}
	return &inferMessage{req: req, raw: [][]byte{in.Data}}
}

// decodeScores checks an answer for a batch of size items and reads its
// scores. Whatever the answer holds, it returns scores or a KindBadGateway
// error, never panics.
func (st *modelTensors) decodeScores(resp *kserve.ModelInferResponse, size int) (gateway.Scores, *gateway.Error) {
	outs := resp.GetOutputs()
	i := slices.IndexFunc(outs, func(o *kserve.ModelInferResponse_InferOutputTensor) bool {
		return o.GetName() == st.OutputName
	})
	if i < 0 {
		return gateway.Scores{}, badGateway("no output %q (%d outputs)", st.OutputName, len(outs))
	}
	out := outs[i]
	if err := st.checkShape(out.GetShape(), size); err != nil {
		return gateway.Scores{}, err
	}
	n := size * st.Classes
	var raw []byte
	hasRaw := i < len(resp.GetRawOutputContents())
	if hasRaw {
		raw = resp.GetRawOutputContents()[i]
	} else if out.GetContents() == nil {
		return gateway.Scores{}, badGateway("output %q without contents (%d raw_output_contents)", st.OutputName, len(resp.GetRawOutputContents()))
	}

	values := make([]float32, n)
	switch dt := out.GetDatatype(); {
	case dt == "FP32" && hasRaw:
		if len(raw) != 4*n {
			return gateway.Scores{}, badGateway("output %q of %d bytes, want %d (%d FP32)", st.OutputName, len(raw), 4*n, n)
		}
		for j := range values {
			values[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
	case dt == "FP16" && hasRaw:
		if len(raw) != 2*n {
			return gateway.Scores{}, badGateway("output %q of %d bytes, want %d (%d FP16)", st.OutputName, len(raw), 2*n, n)
		}
		for j := range values {
			values[j] = float16.ToFloat32(binary.LittleEndian.Uint16(raw[2*j:]))
		}
	case dt == "FP32":
		// A KServe server other than Triton may answer typed contents.
		typed := out.GetContents().GetFp32Contents()
		if len(typed) != n {
			return gateway.Scores{}, badGateway("output %q with %d fp32_contents, want %d", st.OutputName, len(typed), n)
		}
		copy(values, typed)
	default:
		return gateway.Scores{}, badGateway("output %q of datatype %q, want FP32 or FP16", st.OutputName, dt)
	}
	return gateway.Scores{Size: size, Classes: st.Classes, Values: values}, nil
}

// checkShape accepts the shapes of size items of st.Classes scores: with the
// batch dimension first when the model batches, then dimensions that are all
// 1 but one, which is the number of classes ([8, 9], [8, 1, 9], [8, 9, 1]).
func (st *modelTensors) checkShape(shape []int64, size int) *gateway.Error {
	item := shape
	if st.Batched {
		if len(shape) == 0 || shape[0] != int64(size) {
			return badGateway("output %q of shape %v for a batch of %d: want [%d, %d]", st.OutputName, shape, size, size, st.Classes)
		}
		item = shape[1:]
	}
	if classes, ok := modelconfig.ClassCount(item); !ok || classes != st.Classes {
		want := fmt.Sprintf("[%d]", st.Classes)
		if st.Batched {
			want = fmt.Sprintf("[%d, %d]", size, st.Classes)
		}
		return badGateway("output %q of shape %v: want %s", st.OutputName, shape, want)
	}
	return nil
}
