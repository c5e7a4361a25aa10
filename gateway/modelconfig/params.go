package modelconfig

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// The model repository carries the preprocessing a model was trained with in its
// config.pbtxt parameters, so the model and its preprocessing travel together and
// every backend reads the same contract. Keys and defaults:
//
//	preprocess_resize         stretch | shorter_crop | letterbox        (stretch)
//	preprocess_shorter_side   shorter side before the centre crop       (max(W,H)·256/224)
//	preprocess_filter         nearest | bilinear | bicubic              (bilinear)
//	preprocess_fill           letterbox colour "R,G,B"                  (0,0,0)
//	preprocess_scale          multiplier of the 0..255 pixel            (1/255; 1 for UINT8)
//	preprocess_mean           three numbers, tensor channel order       (0,0,0)
//	preprocess_std            three numbers, tensor channel order       (1,1,1)
//	preprocess_channel_order  rgb | bgr                                 (rgb)
//	preprocess_dct_scaling    true | false: fast JPEG decode            (false)
//	output_kind               logits | probabilities                    (logits)
//	output_name               the output holding the scores             (the first output)
//
// and where the weights come from (ProvenanceFromParameters), all optional:
//
//	model_sha256              sha256 of the model file, 64 hex digits
//	model_source              where the weights were obtained
//	model_license             the weights' licence
//	mlflow_run_id             the MLflow run that logged them, 32 hex digits
//	mlflow_model_version      the registered model version they were published as
//
// The tensor's size, layout and data type come from the model input itself.
const (
	ParamResize       = "preprocess_resize"
	ParamShorterSide  = "preprocess_shorter_side"
	ParamFilter       = "preprocess_filter"
	ParamFill         = "preprocess_fill"
	ParamScale        = "preprocess_scale"
	ParamMean         = "preprocess_mean"
	ParamStd          = "preprocess_std"
	ParamChannelOrder = "preprocess_channel_order"
	ParamDCTScaling   = "preprocess_dct_scaling"
	ParamOutputKind   = "output_kind"
	ParamOutputName   = "output_name"
	ParamModelSHA256  = "model_sha256"
	ParamModelSource  = "model_source"
	ParamModelLicense = "model_license"
	// Written by make publish-model (scripts/mlflow_model.py).
	ParamMLflowRunID        = "mlflow_run_id"
	ParamMLflowModelVersion = "mlflow_model_version"
)

// ProvenanceFromParameters reads where a model's weights come from out of its
// configuration parameters. A model_sha256 that is not 64 hex digits, an
// mlflow_run_id that is not 32, or an mlflow_model_version that is not a
// positive integer is an error naming the parameter: they become label
// values and must not carry arbitrary text.
func ProvenanceFromParameters(params map[string]string) (gateway.Provenance, error) {
	p := gateway.Provenance{
		SHA256:             strings.ToLower(strings.TrimSpace(params[ParamModelSHA256])),
		Source:             strings.TrimSpace(params[ParamModelSource]),
		License:            strings.TrimSpace(params[ParamModelLicense]),
		MLflowRunID:        strings.ToLower(strings.TrimSpace(params[ParamMLflowRunID])),
		MLflowModelVersion: strings.TrimSpace(params[ParamMLflowModelVersion]),
	}
	if p.SHA256 != "" && !isHex(p.SHA256, 64) {
		return gateway.Provenance{}, fmt.Errorf("%s: %.80q is not a sha256 (64 hex digits)", ParamModelSHA256, params[ParamModelSHA256])
	}
	if p.MLflowRunID != "" && !isHex(p.MLflowRunID, 32) {
		return gateway.Provenance{}, fmt.Errorf("%s: %.80q is not an MLflow run id (32 hex digits)", ParamMLflowRunID, params[ParamMLflowRunID])
	}
	if v := p.MLflowModelVersion; v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || strconv.Itoa(n) != v {
			return gateway.Provenance{}, fmt.Errorf("%s: %.80q is not a model version (a positive integer)", ParamMLflowModelVersion, params[ParamMLflowModelVersion])
		}
	}
	return p, nil
}

// isHex says whether s is n lower-case hex digits.
func isHex(s string, n int) bool {
	return len(s) == n && strings.Trim(s, "0123456789abcdef") == ""
}

// InputLayout names the layout of a model input; "" lets ContractFromParameters
// infer it from a shape whose first or last dimension is 3.
type InputLayout string

const (
	LayoutNCHW InputLayout = "NCHW"
	LayoutNHWC InputLayout = "NHWC"
)

// ContractFromParameters builds the preprocessing Spec and the output kind of a
// model from its input tensor (shape without batch dimension, KServe datatype),
// its layout, and its configuration parameters. Every problem is reported at once,
// each naming its parameter.
func ContractFromParameters(input gateway.TensorInfo, layout InputLayout, params map[string]string) (spec preprocess.Spec, outputIsLogits bool, err error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(input.Shape) != 3 {
		bad("input %q has shape %v: want 3 dimensions besides the batch (CHW or HWC)", input.Name, input.Shape)
		return spec, false, errors.Join(errs...)
	}
	if layout == "" {
		switch {
		case input.Shape[0] == 3:
			layout = LayoutNCHW
		case input.Shape[2] == 3:
			layout = LayoutNHWC
		}
	}
	var c, h, w int64
	switch layout {
	case LayoutNCHW:
		spec.Layout = preprocess.NCHW
		c, h, w = input.Shape[0], input.Shape[1], input.Shape[2]
	case LayoutNHWC:
		spec.Layout = preprocess.NHWC
		h, w, c = input.Shape[0], input.Shape[1], input.Shape[2]
	default:
		bad("input %q: cannot tell NCHW from NHWC in shape %v; declare the format", input.Name, input.Shape)
	}
	if c != 3 && layout != "" {
		bad("input %q has %d channels; the gateway feeds RGB (3)", input.Name, c)
	}
	spec.Width, spec.Height = int(w), int(h)
	dt, dtErr := preprocess.ParseDataType(input.Datatype)
	if dtErr != nil {
		bad("input %q: datatype %q is not one the gateway can produce (FP32, FP16, UINT8)", input.Name, input.Datatype)
	}
	spec.DataType = dt

	get := func(key, def string) string {
		if v, ok := params[key]; ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	if spec.Resize, err = preprocess.ParseResizeMode(get(ParamResize, "stretch")); err != nil {
		bad("%s: %v", ParamResize, err)
	}
	if spec.Filter, err = preprocess.ParseFilter(get(ParamFilter, "bilinear")); err != nil {
		bad("%s: %v", ParamFilter, err)
	}
	if spec.Order, err = preprocess.ParseChannelOrder(get(ParamChannelOrder, "rgb")); err != nil {
		bad("%s: %v", ParamChannelOrder, err)
	}
	if spec.Resize == preprocess.ResizeShorterCrop {
		def := strconv.Itoa((max(spec.Width, spec.Height)*256 + 112) / 224)
		if spec.ShorterSide, err = strconv.Atoi(get(ParamShorterSide, def)); err != nil {
			bad("%s: %q is not an integer", ParamShorterSide, params[ParamShorterSide])
		}
	}
	fill, fErr := parseNumbers(get(ParamFill, "0,0,0"), 0, 255)
	if fErr != nil {
		bad("%s: %v", ParamFill, fErr)
	}
	for i := range 3 {
		spec.Fill[i] = uint8(fill[i])
	}
	defScale := "0.00392156862745098" // 1/255
	if dt == preprocess.UINT8 {
		defScale = "1"
	}
	scale, sErr := strconv.ParseFloat(get(ParamScale, defScale), 32)
	if sErr != nil {
		if v, ok := parseFraction(get(ParamScale, defScale)); ok {
			scale, sErr = v, nil
		} else {
			bad("%s: %q is not a number (e.g. 0.00392156862745098 or 1/255)", ParamScale, params[ParamScale])
		}
	}
	spec.Scale = float32(scale)
	mean, mErr := parseNumbers(get(ParamMean, "0,0,0"), -1e9, 1e9)
	if mErr != nil {
		bad("%s: %v", ParamMean, mErr)
	}
	std, stdErr := parseNumbers(get(ParamStd, "1,1,1"), -1e9, 1e9)
	if stdErr != nil {
		bad("%s: %v", ParamStd, stdErr)
	}
	for i := range 3 {
		spec.Mean[i], spec.Std[i] = float32(mean[i]), float32(std[i])
	}
	switch v := strings.ToLower(get(ParamDCTScaling, "false")); v {
	case "true", "1", "yes":
		spec.AllowDCTScaling = true
	case "false", "0", "no":
	default:
		bad("%s: %q is not true or false", ParamDCTScaling, v)
	}
	switch v := strings.ToLower(get(ParamOutputKind, "logits")); v {
	case "logits":
		outputIsLogits = true
	case "probabilities":
	default:
		bad("%s: %q is not logits or probabilities", ParamOutputKind, v)
	}
	if len(errs) == 0 {
		if vErr := spec.Validate(); vErr != nil {
			bad("%v", vErr)
		}
	}
	return spec, outputIsLogits, errors.Join(errs...)
}

// parseNumbers reads three comma-separated numbers within [lo, hi].
func parseNumbers(s string, lo, hi float64) ([3]float64, error) {
	var out [3]float64
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return out, fmt.Errorf("%q: want three comma-separated numbers", s)
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < lo || v > hi {
			return out, fmt.Errorf("%q: element %d is not a number in [%g, %g]", s, i, lo, hi)
		}
		out[i] = v
	}
	return out, nil
}

// parseFraction reads "a/b".
func parseFraction(s string) (float64, bool) {
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	a, err1 := strconv.ParseFloat(strings.TrimSpace(num), 64)
	b, err2 := strconv.ParseFloat(strings.TrimSpace(den), 64)
	if err1 != nil || err2 != nil || b == 0 {
		return 0, false
	}
	return a / b, true
}
