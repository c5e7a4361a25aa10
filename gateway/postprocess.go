package gateway

import (
	"math"
	"sort"
	"strconv"
)

// softmax writes the probabilities of logits into out (same length), computed in
// float64 with the maximum subtracted so large logits cannot overflow.
func softmax(logits []float32, out []float64) {
	maxV := math.Inf(-1)
	for _, v := range logits {
		maxV = math.Max(maxV, float64(v))
	}
	var sum float64
	for i, v := range logits {
		e := math.Exp(float64(v) - maxV)
		out[i] = e
		sum += e
	}
	for i := range out {
		out[i] /= sum
	}
}

// topK returns the k highest scores with their labels, highest first; ties keep
// the lower index first. k is clamped to [1, len(scores)].
func topK(scores []float64, labels []string, k int) []Prediction {
	k = max(1, min(k, len(scores)))
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	out := make([]Prediction, k)
	for i := range out {
		j := idx[i]
		out[i] = Prediction{Index: j, Confidence: scores[j], Label: labelOf(labels, j)}
	}
	return out
}

func labelOf(labels []string, i int) string {
	if i < len(labels) && labels[i] != "" {
		return labels[i]
	}
	return "class_" + strconv.Itoa(i)
}
