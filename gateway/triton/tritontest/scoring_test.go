package tritontest

import (
	"math"
	"testing"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

func TestItemWithMeansHitsTheMeans(t *testing.T) {
	base := DefaultModel()
	base.Input.Dims = []int64{3, 5, 7}
	nhwc := base
	nhwc.Input = TensorSpec{Name: "input", Datatype: "FP32", Dims: []int64{5, 7, 3}, Format: kserve.ModelInput_FORMAT_NHWC}

	tests := []struct {
		name     string
		datatype string
		model    Model
		tol      float64
	}{
		{"FP32 NCHW", "FP32", base, 1e-6},
		{"FP16 NCHW", "FP16", base, 1e-3},
		{"UINT8 NCHW", "UINT8", base, 1.0 / (255 * 35)},
		{"FP32 NHWC", "FP32", nhwc, 1e-6},
		{"UINT8 NHWC", "UINT8", nhwc, 1.0 / (255 * 35)},
	}
	targets := [][3]float64{{0, 1, 0.5}, {0.123, 0.456, 0.789}, {1, 1, 1}, {0.3333, 0.0001, 0.9999}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model
			m.Input.Datatype = tt.datatype
			for _, want := range targets {
				got := ChannelMeans(m, ItemWithMeans(m, want))
				for c := range 3 {
					if math.Abs(got[c]-want[c]) > tt.tol {
						t.Errorf("means %v, want %v (±%g)", got, want, tt.tol)
						break
					}
				}
			}
		})
	}
}

func TestLogitsPeakAtTheClassCentroid(t *testing.T) {
	m := DefaultModel()
	m.Input.Dims = []int64{3, 2, 2}
	for k := range m.NumClasses() {
		logits := Logits(m, ItemForClass(m, k))
		for j, v := range logits {
			if j != k && v >= logits[k] {
				t.Errorf("class %d: logit %d = %v not below %v", k, j, v, logits[k])
			}
		}
	}
}

func TestChannelMeansPanicsOnAWrongSize(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for an item of the wrong size")
		}
	}()
	ChannelMeans(DefaultModel(), make([]byte, 12))
}
