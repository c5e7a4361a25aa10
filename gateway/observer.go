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
}

// NopObserver discards every observation.
type NopObserver struct{}

func (NopObserver) Preprocessed(preprocess.Info, int)             {}
func (NopObserver) Inferred(ModelInfo, int, time.Duration, error) {}
func (NopObserver) Predicted(ModelInfo, Prediction)               {}
