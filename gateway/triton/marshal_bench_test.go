package triton

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
)

// benchModel is the served model's input: FP32 3×224×224 (602,112 bytes an
// image), batches of up to 8.
func benchModel() *modelTensors {
	return &modelTensors{modelconfig.Tensors{
		InputName: "input", InputDatatype: "FP32", InputDims: []int64{3, 224, 224},
		ItemBytes: 3 * 224 * 224 * 4, Batched: true, MaxBatch: 8,
		OutputName: "logits", Classes: 17,
	}}
}

// BenchmarkInferMarshal is the work between a preprocessed batch and the bytes
// gRPC hands to HTTP/2: building the ModelInfer request and encoding it with
// the codec of the call. codec=proto is grpc-go's default codec, which the
// client used before inferCodec: it takes a buffer from gRPC's pool, clears
// it, and copies the tensor into it. codec=infer is the client's: the tensor
// stays where it is.
//
//	go test -run '^$' -bench InferMarshal -benchmem ./gateway/triton/
func BenchmarkInferMarshal(b *testing.B) {
	st := benchModel()
	c := &Client{cfg: Config{Model: "fish_classifier"}}
	codecs := []struct {
		name  string
		codec encoding.CodecV2
	}{
		{"proto", encoding.GetCodecV2(proto.Name)},
		{"infer", newInferCodec()},
	}
	for _, items := range []int{1, 8} {
		batch := gateway.Batch{Size: items, Data: make([]byte, items*st.ItemBytes)}
		for i := range batch.Data {
			batch.Data[i] = byte(i)
		}
		for _, cd := range codecs {
			b.Run(fmt.Sprintf("items=%d/codec=%s", items, cd.name), func(b *testing.B) {
				b.SetBytes(int64(len(batch.Data)))
				b.ReportAllocs()
				for b.Loop() {
					m := c.inferRequest(st, batch, "")
					var msg any = m
					if cd.name == "proto" { // the request as the client built it before
						m.req.RawInputContents, m.raw = m.raw, nil
						msg = m.req
					}
					data, err := cd.codec.Marshal(msg)
					if err != nil {
						b.Fatal(err)
					}
					if data.Len() < len(batch.Data) {
						b.Fatalf("%d bytes encoded for a %d-byte tensor", data.Len(), len(batch.Data))
					}
					data.Free()
				}
			})
		}
	}
}
