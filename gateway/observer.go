package gateway

import (
	"context"
	"time"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

// Observer receives what the Classifier measures and the model's lifecycle.
// The Prometheus implementation lives in package prom (cmd/gateway adds the
// log); tests use their own. Implementations must be safe for concurrent use
// and must not block.
type Observer interface {
	// Preprocessed reports one image that was decoded and turned into a tensor.
	Preprocessed(info preprocess.Info, encodedBytes int)
	// Inferred reports one backend call of batchSize items and its outcome
	// (err == nil on success); ctx is the call's, with its span (an exemplar's
	// trace id).
	Inferred(ctx context.Context, model ModelInfo, batchSize int, d time.Duration, err error)
	// Predicted reports the top prediction of one image.
	Predicted(model ModelInfo, top Prediction)
	// Waited reports how long a request (slot "inference") or an image (slot
	// "decode") waited for one of the Classifier's bounded slots: the queueing
	// that keeps memory flat under many connections.
	Waited(slot string, d time.Duration)
	// ModelLoaded reports the model the Classifier serves from now on: at the
	// first load, at each new description (another version, or another
	// backend's through a fallback), and at the first load after a loss.
	ModelLoaded(model ModelInfo)
	// ModelLost reports a load or refresh that failed (the model could not be
	// read or prepared, or is not ready), each time. The Classifier keeps
	// serving the model it had, if any.
	ModelLost(err error)
}

// The slots the Classifier bounds, as Observer.Waited names them.
const (
	SlotInference = "inference"
	SlotDecode    = "decode"
)

// NopObserver discards every observation.
type NopObserver struct{}

func (NopObserver) Preprocessed(preprocess.Info, int)                              {}
func (NopObserver) Inferred(context.Context, ModelInfo, int, time.Duration, error) {}
func (NopObserver) Predicted(ModelInfo, Prediction)                                {}
func (NopObserver) Waited(string, time.Duration)                                   {}
func (NopObserver) ModelLoaded(ModelInfo)                                          {}
func (NopObserver) ModelLost(error)                                                {}
