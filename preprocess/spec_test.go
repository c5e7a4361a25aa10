package preprocess

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	valid := ImageNetSpec()
	tests := []struct {
		name    string
		mutate  func(*Spec)
		wantErr []string // substrings the error must contain; nil means valid
	}{
		{"imagenet", func(*Spec) {}, nil},
		{"stretch uint8", func(s *Spec) {
			*s = Spec{Width: 64, Height: 32, Resize: ResizeStretch, Scale: 1, Std: [3]float32{1, 1, 1}, DataType: UINT8}
		}, nil},
		{"zero width", func(s *Spec) { s.Width = 0 }, []string{"Width 0"}},
		{"huge height", func(s *Spec) { s.Height = 100000 }, []string{"Height 100000"}},
		{"crop larger than shorter side", func(s *Spec) { s.ShorterSide = 200 }, []string{"ShorterSide 200"}},
		{"shorter side without crop", func(s *Spec) { s.Resize = ResizeStretch }, []string{"ShorterSide 256 is only used"}},
		{"zero std", func(s *Spec) { s.Std[1] = 0 }, []string{"Std[1]"}},
		{"nan mean", func(s *Spec) { s.Mean[2] = float32(math.NaN()) }, []string{"Mean[2]"}},
		{"negative scale", func(s *Spec) { s.Scale = -1 }, []string{"Scale -1"}},
		{"bad enums", func(s *Spec) { s.Filter = 9; s.Layout = 7; s.Order = 5; s.DataType = 4 },
			[]string{"Filter 9", "Layout 7", "Order 5", "DataType 4"}},
		{"uint8 with normalisation", func(s *Spec) { s.DataType = UINT8 }, []string{"UINT8 tensors carry raw pixels"}},
		{"every problem at once", func(s *Spec) { s.Width = -1; s.Std[0] = -2 }, []string{"Width -1", "Std[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid
			tt.mutate(&s)
			err := s.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("Validate() = %v, want an ErrInvalidSpec", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestLimitsCheck(t *testing.T) {
	l := Limits{MaxBytes: 1 << 20, MaxPixels: 1000 * 1000, MaxSide: 2000, MinSide: 8}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		w, h int
		want error
	}{
		{"fits", 1000, 1000, nil},
		{"minimum", 8, 8, nil},
		{"too many pixels", 1001, 1000, ErrTooManyPixels},
		{"side too long", 2001, 10, ErrTooManyPixels},
		{"65500 square", 65500, 65500, ErrTooManyPixels},
		{"too narrow", 7, 100, ErrTooSmall},
		{"zero", 0, 100, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.check(tt.w, tt.h); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("check(%d, %d) = %v, want %v", tt.w, tt.h, err, tt.want)
			}
		})
	}
	if err := (Limits{}).Validate(); err == nil || !strings.Contains(err.Error(), "MaxBytes") {
		t.Errorf("zero Limits: Validate() = %v, want an error naming MaxBytes", err)
	}
}

func TestParseEnums(t *testing.T) {
	if f, err := ParseFilter(" Bicubic "); err != nil || f != FilterBicubic {
		t.Errorf("ParseFilter = %v, %v", f, err)
	}
	if d, err := ParseDataType("fp16"); err != nil || d != FP16 {
		t.Errorf("ParseDataType = %v, %v", d, err)
	}
	if m, err := ParseResizeMode("shorter_crop"); err != nil || m != ResizeShorterCrop {
		t.Errorf("ParseResizeMode = %v, %v", m, err)
	}
	if _, err := ParseLayout("chw"); !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "nchw, nhwc") {
		t.Errorf("ParseLayout(chw) = %v, want an error listing the choices", err)
	}
	for _, s := range []Spec{ImageNetSpec()} {
		for _, name := range []string{s.Resize.String(), s.Filter.String(), s.Order.String(), s.Layout.String(), s.DataType.String()} {
			if strings.HasPrefix(name, "invalid") {
				t.Errorf("String() = %q", name)
			}
		}
	}
}

func TestTarget(t *testing.T) {
	tests := []struct {
		name       string
		spec       Spec
		srcW, srcH int
		want       resizeTarget
	}{
		{"stretch", Spec{Width: 224, Height: 224}, 640, 480, resizeTarget{224, 224, rect{0, 0, 224, 224}, 0, 0}},
		// torchvision Resize(256) on 640×480: (341, 256); CenterCrop(224): left round(117/2)=58 (58.5 → 58), top 16.
		{"shorter crop landscape", Spec{Width: 224, Height: 224, Resize: ResizeShorterCrop, ShorterSide: 256}, 640, 480,
			resizeTarget{341, 256, rect{58, 16, 224, 224}, 0, 0}},
		// 480×643: (256, 342); top round(118/2)=59; 59.5 would round to 60.
		{"shorter crop portrait", Spec{Width: 224, Height: 224, Resize: ResizeShorterCrop, ShorterSide: 256}, 480, 643,
			resizeTarget{256, 342, rect{16, 59, 224, 224}, 0, 0}},
		{"half to even rounds up from odd", Spec{Width: 10, Height: 10, Resize: ResizeShorterCrop, ShorterSide: 10}, 10, 13,
			resizeTarget{10, 13, rect{0, 2, 10, 10}, 0, 0}}, // round(1.5) = 2
		{"letterbox wide", Spec{Width: 100, Height: 100, Resize: ResizeLetterbox}, 300, 100,
			resizeTarget{100, 33, rect{0, 0, 100, 33}, 0, 33}},
		{"letterbox tall", Spec{Width: 100, Height: 50, Resize: ResizeLetterbox}, 20, 200,
			resizeTarget{5, 50, rect{0, 0, 5, 50}, 47, 0}},
		{"letterbox never zero", Spec{Width: 10, Height: 10, Resize: ResizeLetterbox}, 1000, 8,
			resizeTarget{10, 1, rect{0, 0, 10, 1}, 0, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.spec.target(tt.srcW, tt.srcH); got != tt.want {
				t.Errorf("target(%d, %d) = %+v, want %+v", tt.srcW, tt.srcH, got, tt.want)
			}
		})
	}
}
