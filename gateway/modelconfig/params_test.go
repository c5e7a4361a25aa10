package modelconfig

import (
	"strings"
	"testing"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

func TestProvenanceFromParameters(t *testing.T) {
	sum := strings.Repeat("0123456789abcdef", 4)
	for _, tt := range []struct {
		name    string
		params  map[string]string
		want    gateway.Provenance
		wantErr string
	}{
		{"none declared", map[string]string{"output_kind": "logits"}, gateway.Provenance{}, ""},
		{"all declared", map[string]string{ParamModelSHA256: " " + strings.ToUpper(sum) + " ", ParamModelSource: "PyPI pkg==1.0", ParamModelLicense: "Apache-2.0"},
			gateway.Provenance{SHA256: sum, Source: "PyPI pkg==1.0", License: "Apache-2.0"}, ""},
		{"short sha256", map[string]string{ParamModelSHA256: sum[:63]}, gateway.Provenance{}, "model_sha256"},
		{"not hex", map[string]string{ParamModelSHA256: strings.Repeat("g", 64)}, gateway.Provenance{}, "not a sha256"},
		{"published from MLflow", map[string]string{ParamMLflowRunID: strings.ToUpper(sum[:32]), ParamMLflowModelVersion: "12"},
			gateway.Provenance{MLflowRunID: sum[:32], MLflowModelVersion: "12"}, ""},
		{"run id not 32 hex digits", map[string]string{ParamMLflowRunID: "run-1"}, gateway.Provenance{}, "mlflow_run_id"},
		{"version not a positive integer", map[string]string{ParamMLflowModelVersion: "0"}, gateway.Provenance{}, "mlflow_model_version"},
		{"version with a sign", map[string]string{ParamMLflowModelVersion: "+3"}, gateway.Provenance{}, "not a model version"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProvenanceFromParameters(tt.params)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestContractFromParameters(t *testing.T) {
	in := gateway.TensorInfo{Name: "input", Datatype: "FP32", Shape: []int64{3, 224, 224}}
	spec, logits, err := ContractFromParameters(in, "", map[string]string{
		ParamResize: "shorter_crop", ParamFilter: "bicubic", ParamScale: "1/255",
		ParamMean: "0.485, 0.456, 0.406", ParamStd: "0.229,0.224,0.225", ParamOutputKind: "probabilities",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := preprocess.ImageNetSpec()
	want.Filter = preprocess.FilterBicubic
	if spec != want || logits {
		t.Errorf("spec = %+v, logits %v; want %+v, false", spec, logits, want)
	}

	nhwc := gateway.TensorInfo{Name: "x", Datatype: "UINT8", Shape: []int64{160, 128, 3}}
	spec, logits, err = ContractFromParameters(nhwc, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Layout != preprocess.NHWC || spec.Width != 128 || spec.Height != 160 || spec.Scale != 1 || !logits {
		t.Errorf("defaults for a UINT8 NHWC input: %+v logits=%v", spec, logits)
	}

	_, _, err = ContractFromParameters(in, "", map[string]string{
		ParamResize: "zoom", ParamMean: "1,2", ParamDCTScaling: "maybe", ParamOutputKind: "odds",
	})
	for _, key := range []string{ParamResize, ParamMean, ParamDCTScaling, ParamOutputKind} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
	if _, _, err := ContractFromParameters(gateway.TensorInfo{Name: "x", Datatype: "FP32", Shape: []int64{1, 224, 224}}, LayoutNCHW, nil); err == nil {
		t.Error("a 1-channel input was accepted")
	}
}
