package triton

import (
	"bytes"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// patterned returns n bytes that differ from position to position.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestInferCodecWritesTheBytesProtoWould(t *testing.T) {
	st := benchModel()
	c := &Client{cfg: Config{Model: "fish_classifier", Version: "3"}}
	codec := newInferCodec()
	classify := func(m *inferMessage) *inferMessage {
		m.req.Id = "req-1"
		m.req.Outputs[0].Parameters = map[string]*kserve.InferParameter{
			classificationParameter: {ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: 17}},
		}
		return m
	}
	twoInputs := func(m *inferMessage) *inferMessage {
		m.req.Inputs = append(m.req.Inputs, &kserve.ModelInferRequest_InferInputTensor{Name: "second", Datatype: "UINT8", Shape: []int64{3}})
		m.raw = append(m.raw, []byte{1, 2, 3})
		return m
	}
	emptyTensor := func(m *inferMessage) *inferMessage {
		m.raw = [][]byte{{}}
		return m
	}
	noTensor := func(m *inferMessage) *inferMessage {
		m.raw = nil
		return m
	}
	cases := []struct {
		name  string
		items int
		edit  func(*inferMessage) *inferMessage
	}{
		{"one image", 1, nil},
		{"batch of 8", 8, nil},
		{"id and an output parameter", 1, classify},
		{"two raw inputs", 2, twoInputs},
		{"empty raw input", 1, emptyTensor},
		{"no raw input", 1, noTensor},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := patterned(tc.items * st.ItemBytes)
			msg := c.inferRequest(st, gateway.Batch{Size: tc.items, Data: data}, "")
			if tc.edit != nil {
				msg = tc.edit(msg)
			}
			// The maps here have at most one entry, so the deterministic
			// encoding is the only one.
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg.full())
			if err != nil {
				t.Fatal(err)
			}
			out, err := codec.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Free()
			if got := out.Materialize(); !bytes.Equal(got, want) {
				t.Fatalf("codec wrote %d bytes that differ from proto's %d", len(got), len(want))
			}
			var back kserve.ModelInferRequest
			if err := proto.Unmarshal(out.Materialize(), &back); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&back, msg.full()) {
				t.Error("the decoded message differs from the request")
			}
		})
	}
}

func TestInferCodecHandsGRPCTheTensorItself(t *testing.T) {
	st := benchModel()
	c := &Client{cfg: Config{Model: "fish_classifier"}}
	data := patterned(8 * st.ItemBytes)
	out, err := newInferCodec().Marshal(c.inferRequest(st, gateway.Batch{Size: 8, Data: data}, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	var shared, copied int
	for _, b := range out {
		d := b.ReadOnlyData()
		if len(d) > 0 && unsafe.SliceData(d) == unsafe.SliceData(data) && len(d) == len(data) {
			shared++
		} else {
			copied += len(d)
		}
	}
	if shared != 1 {
		t.Errorf("%d buffers are the batch's own bytes, want 1", shared)
	}
	if copied > 512 {
		t.Errorf("%d bytes besides the tensor, want the request's few hundred", copied)
	}
}

func TestInferCodecLeavesOtherMessagesToProto(t *testing.T) {
	codec := newInferCodec()
	resp := &kserve.ModelInferResponse{ModelName: "m", RawOutputContents: [][]byte{patterned(100)}}
	out, err := codec.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(resp)
	if !bytes.Equal(out.Materialize(), want) {
		t.Error("a plain message is encoded otherwise than by proto")
	}
	var back kserve.ModelInferResponse
	if err := codec.Unmarshal(out, &back); err != nil || !proto.Equal(&back, resp) {
		t.Errorf("Unmarshal: %v, equal %v", err, proto.Equal(&back, resp))
	}
	out.Free()
	if codec.Name() != "proto" {
		t.Errorf("Name %q: the content-subtype must stay proto's", codec.Name())
	}
	for _, bad := range []any{(*inferMessage)(nil), &inferMessage{}, &inferMessage{req: &kserve.ModelInferRequest{RawInputContents: [][]byte{{1}}}, raw: [][]byte{{2}}}} {
		if _, err := codec.Marshal(bad); err == nil {
			t.Errorf("Marshal(%+v) succeeded, want an error", bad)
		}
	}
}
