//go:build linux

package triton

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// TestRealTritonRequestID sends a request id to the real Triton (2.51, on the
// CPU: testenv.StartTriton): Triton echoes the ModelInferRequest's id in its
// answer, which Infer checks (a mismatch is an error, see
// TestInferRequestID), so a successful Infer carrying an id is one whose
// answer echoed it.
func TestRealTritonRequestID(t *testing.T) {
	tr := testenv.StartTriton(t)
	c, _ := newTestClient(t, testConfig(tr.GRPCAddr, "fish_classifier"))
	info, err := c.Model(callCtx(t))
	if err != nil {
		t.Fatalf("Model: %v", err)
	}
	tensors, err := tensorsOf(&info)
	if err != nil {
		t.Fatal(err)
	}
	st := &tensors
	zeros := make([]byte, 2*st.ItemBytes)

	t.Run("the raw answer echoes the id", func(t *testing.T) {
		conn, err := grpc.NewClient(tr.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := c.inferRequest(st, gateway.Batch{Size: 1, Data: zeros[:st.ItemBytes]}, "abc-123").req
		req.RawInputContents = [][]byte{zeros[:st.ItemBytes]}
		resp, err := kserve.NewGRPCInferenceServiceClient(conn).ModelInfer(callCtx(t), req)
		if err != nil {
			t.Fatalf("ModelInfer: %v", err)
		}
		if resp.GetId() != "abc-123" {
			t.Errorf("ModelInferResponse.id %q, want abc-123", resp.GetId())
		}
	})
	t.Run("Infer with an id", func(t *testing.T) {
		scores, err := c.Infer(gateway.WithRequestID(callCtx(t), "abc-124"), gateway.Batch{Size: 2, Data: zeros, Model: &info})
		if err != nil {
			t.Fatalf("Infer: %v", err)
		}
		if scores.Size != 2 || scores.Classes != st.Classes {
			t.Errorf("scores %d×%d, want 2×%d", scores.Size, scores.Classes, st.Classes)
		}
	})
}
