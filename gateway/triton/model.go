package triton

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
)

// Backend is the ModelInfo.Backend of this adapter.
const Backend = "triton"

// classificationParameter is the requested-output parameter of Triton's
// classification extension: InferParameter{int64_param: N} answers the top N
// classes as BYTES "<value>:<index>[:<label>]".
const classificationParameter = "classification"

// modelTensors is what Infer needs of the model, derived per call from the
// description the batch carries (modelconfig.TensorsOf).
type modelTensors struct{ modelconfig.Tensors }

// tensorsOf derives a call's tensors from m, the description Model returned.
func tensorsOf(m *gateway.ModelInfo) (modelTensors, error) {
	t, err := modelconfig.TensorsOf("triton", m)
	return modelTensors{t}, err
}

// Model reads the model's metadata and configuration from Triton and returns
// its description; labels come from Config.Labels, or else from Triton's
// classification extension (empty when Triton has none). With shared memory,
// it also registers the regions Triton lacks. The Client keeps nothing of the
// description: Infer takes it with each batch (gateway.Batch.Model). Errors:
// the call's (see mapError), or KindBadGateway for a model the gateway cannot
// serve, saying why.
func (c *Client) Model(ctx context.Context) (gateway.ModelInfo, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	meta, err := call(ctx, c, rpcModelMetadata, func(ctx context.Context) (*kserve.ModelMetadataResponse, error) {
		return c.api.ModelMetadata(ctx, &kserve.ModelMetadataRequest{Name: c.cfg.Model, Version: c.cfg.Version})
	})
	if err != nil {
		return gateway.ModelInfo{}, err
	}
	cfgResp, err := call(ctx, c, rpcModelConfig, func(ctx context.Context) (*kserve.ModelConfigResponse, error) {
		return c.api.ModelConfig(ctx, &kserve.ModelConfigRequest{Name: c.cfg.Model, Version: c.cfg.Version})
	})
	if err != nil {
		return gateway.ModelInfo{}, err
	}
	info, err := describe(c.cfg, meta, cfgResp.GetConfig())
	var tensors modelTensors
	if err == nil {
		tensors, err = tensorsOf(&info)
	}
	if err != nil {
		return gateway.ModelInfo{}, &gateway.Error{
			Kind:    gateway.KindBadGateway,
			Message: fmt.Sprintf("%s cannot be served: %v", c.modelName(), err),
			Err:     err,
		}
	}
	switch {
	case len(c.cfg.Labels) > 0:
		if len(c.cfg.Labels) != tensors.Classes {
			return gateway.ModelInfo{}, &gateway.Error{
				Kind:    gateway.KindBadGateway,
				Message: fmt.Sprintf("%s: %d labels configured for %d output classes", c.modelName(), len(c.cfg.Labels), tensors.Classes),
			}
		}
		info.Labels = slices.Clone(c.cfg.Labels)
	default:
		labels, err := c.classificationLabels(ctx, tensors)
		if err != nil {
			// The server did not answer: the labels are unknown, not absent.
			// Returning no model beats serving class_N until the next reload.
			return gateway.ModelInfo{}, err
		}
		info.Labels = labels
	}
	if c.shm != nil {
		// Every refresh checks that Triton still has the regions (a restarted
		// Triton has none) and registers what it lacks.
		if err := c.ensureRegistered(ctx); err != nil {
			return gateway.ModelInfo{}, err
		}
	}
	return info, nil
}

// describe builds the model's description from Triton's metadata and
// configuration, reporting what makes the model unusable.
func describe(cfg Config, meta *kserve.ModelMetadataResponse, mc *kserve.ModelConfig) (gateway.ModelInfo, error) {
	d, err := modelconfig.Describe(mc)
	if err != nil {
		return gateway.ModelInfo{}, err
	}
	info := d.Info
	info.Name, info.Version, info.Backend = meta.GetName(), cfg.Version, Backend
	if info.Name == "" {
		info.Name = cfg.Model
	}
	if info.Version == "" {
		info.Version = servedVersion(meta.GetVersions())
	}
	if p := meta.GetPlatform(); p != "" {
		info.Platform = p
	}
	return info, nil
}

// servedVersion is the version Triton serves for an unpinned request: the
// highest of the ready versions ModelMetadata lists (usually just one).
func servedVersion(versions []string) string {
	if len(versions) == 0 {
		return ""
	}
	best, bestN := versions[0], int64(-1)
	for _, v := range versions {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > bestN {
			best, bestN = v, n
		}
	}
	return best
}

// classificationLabels asks Triton for every class of a zero tensor through
// the classification extension and reads the labels out of the answer:
// "<value>:<index>:<label>" for each class. A server that answers without
// labels, or with something else, leaves them empty (nil, nil): the gateway
// then names classes class_N. An error is returned only when the call itself
// failed for want of a server or of time (unavailable, deadline, canceled).
func (c *Client) classificationLabels(ctx context.Context, st modelTensors) ([]string, error) {
	msg := c.inferRequest(&st, gateway.Batch{Size: 1, Data: make([]byte, st.ItemBytes)}, "")
	msg.req.Outputs[0].Parameters = map[string]*kserve.InferParameter{
		classificationParameter: {ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: int64(st.Classes)}},
	}
	resp, err := c.modelInfer(ctx, msg)
	if err != nil {
		switch gateway.KindOf(err) {
		case gateway.KindUnavailable, gateway.KindDeadline, gateway.KindCanceled:
			return nil, err
		}
		return nil, nil
	}
	return parseClassification(resp, &st), nil
}

// parseClassification reads labels by index from a classification answer for
// one item; nil unless it names every class exactly once and at least one
// label. Classes the answer leaves unlabelled get "".
func parseClassification(resp *kserve.ModelInferResponse, st *modelTensors) []string {
	i := slices.IndexFunc(resp.GetOutputs(), func(o *kserve.ModelInferResponse_InferOutputTensor) bool {
		return o.GetName() == st.OutputName
	})
	if i < 0 || i >= len(resp.GetRawOutputContents()) || resp.GetOutputs()[i].GetDatatype() != "BYTES" {
		return nil
	}
	raw := resp.GetRawOutputContents()[i]
	labels := make([]string, st.Classes)
	seen := make([]bool, st.Classes)
	count, labelled := 0, false
	for len(raw) > 0 {
		if len(raw) < 4 {
			return nil
		}
		n := binary.LittleEndian.Uint32(raw)
		if uint64(n) > uint64(len(raw)-4) {
			return nil
		}
		elem := string(raw[4 : 4+n])
		raw = raw[4+n:]
		parts := strings.SplitN(elem, ":", 3) // a label may hold colons
		if len(parts) < 2 {
			return nil
		}
		idx, err := strconv.Atoi(parts[1])
		if err != nil || idx < 0 || idx >= st.Classes || seen[idx] {
			return nil
		}
		seen[idx] = true
		count++
		if len(parts) == 3 {
			labels[idx] = parts[2]
			labelled = labelled || parts[2] != ""
		}
	}
	if count != st.Classes || !labelled {
		return nil
	}
	return labels
}
