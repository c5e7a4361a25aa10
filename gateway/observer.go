package gateway

import (
	"time"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

// Observer receives what the Classifier measures. The Prometheus implementation
// lives in package prom; tests use their own. Implementations must be safe for
// concurrent use and must not block.
type Observer interface {
	// Preprocessed reports one image that was decoded and turned into a tensor.
	Preprocessed(info preprocess.Info, encodedBytes int)
	// Inferred reports one backend call of batchSize items and its outcome
	// (err == nil on success).
	Inferred(model ModelInfo, batchSize int, d time.Duration, err error)
	// Predicted reports the top prediction of one image.
	Predicted(model ModelInfo, top Prediction)
	// Waited reports how long a request (slot "inference") or an image (slot
	// "decode") waited for one of the Classifier's bounded slots: the queueing
	// that keeps memory flat under many connections.
	Waited(slot string, d time.Duration)
}

// The slots the Classifier bounds, as Observer.Waited names them.
const (
	SlotInference = "inference"
	SlotDecode    = "decode"
)

// NopObserver discards every observation.
type NopObserver struct{}

func (NopObserver) Preprocessed(preprocess.Info, int)             {}
func (NopObserver) Inferred(ModelInfo, int, time.Duration, error) {}
func (NopObserver) Predicted(ModelInfo, Prediction)               {}
func (NopObserver) Waited(string, time.Duration)                  {}
