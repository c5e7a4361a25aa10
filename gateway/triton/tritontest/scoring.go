package tritontest

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/internal/float16"
)

// The served model is deterministic and cheap, yet every score depends on the
// bytes of the input tensor, so that a test can prove which tensor the gateway
// sent:
//
//  1. ChannelMeans reads one batch item's elements per datatype (FP32, FP16
//     little-endian, UINT8 divided by 255) and averages each colour channel
//     (channel axis per format: plane c for NCHW, every third element from c
//     for NHWC).
//  2. Each class k has a fixed centroid, ClassMeans(m, k), in [0,1]^3.
//  3. Logits: score[k] = -LogitScale × squared distance(means, centroid k).
//
// So the class whose centroid is nearest the item's channel means wins;
// ItemForClass builds an item that lands on a chosen class. Swapped channels,
// the wrong layout or the wrong scale move the means and change the scores.

// LogitScale multiplies the negative squared distance between an item's channel
// means and a class centroid to make that class's logit.
const LogitScale = 10

// Logits returns the scores the server answers for one batch item: item is the
// item's slice of raw_input_contents (m.ItemSize() bytes, little-endian, in the
// model's datatype and format). It panics when item has the wrong size.
func Logits(m Model, item []byte) []float32 {
	means := ChannelMeans(m, item)
	logits := make([]float32, m.NumClasses())
	for k := range logits {
		c := ClassMeans(m, k)
		var d2 float64
		for ch := range 3 {
			d := means[ch] - c[ch]
			d2 += d * d
		}
		if d2 != 0 { // -0 would print as "-0.000000" in classifications
			logits[k] = float32(-LogitScale * d2)
		}
	}
	return logits
}

// ChannelMeans returns the mean of each of the three channels of one batch item,
// in the order the tensor stores them. UINT8 elements count as value/255, so that
// the means of every datatype are on the same scale as ClassMeans. It panics when
// item is not m.ItemSize() bytes long.
func ChannelMeans(m Model, item []byte) [3]float64 {
	if len(item) != m.ItemSize() {
		panic(fmt.Sprintf("tritontest: item of %d bytes, model %q wants %d", len(item), m.Name, m.ItemSize()))
	}
	n := m.itemElements()
	size := elementSize(m.Input.Datatype)
	channelOf := channelIndexer(m)
	var sums [3]float64
	for i := range n {
		e := item[i*size : (i+1)*size]
		var v float64
		switch m.Input.Datatype {
		case "FP32":
			v = float64(math.Float32frombits(binary.LittleEndian.Uint32(e)))
		case "FP16":
			v = float64(float16.ToFloat32(binary.LittleEndian.Uint16(e)))
		case "UINT8":
			v = float64(e[0]) / 255
		}
		sums[channelOf(i)] += v
	}
	per := float64(n / 3)
	return [3]float64{sums[0] / per, sums[1] / per, sums[2] / per}
}

// channelIndexer returns the function that gives the channel of an item's i-th
// element.
func channelIndexer(m Model) func(i int) int {
	if m.Input.Format == kserve.ModelInput_FORMAT_NHWC {
		return func(i int) int { return i % 3 }
	}
	plane := m.itemElements() / 3
	return func(i int) int { return i / plane }
}

// ClassMeans returns the centroid of class k: the channel means an item must
// have for its logit k to be 0, the highest possible. Centroids lie in [0,1]^3
// and the first coordinates of neighbouring classes are 1/classes apart.
func ClassMeans(m Model, k int) [3]float64 {
	n := float64(m.NumClasses())
	a := (float64(k) + 0.5) / n
	_, c := math.Modf(0.5 + float64(k)*0.6180339887498949)
	return [3]float64{a, 1 - a, c}
}

// ItemForClass returns one batch item that the model classifies as class k: its
// channel means are ClassMeans(m, k).
func ItemForClass(m Model, k int) []byte {
	return ItemWithMeans(m, ClassMeans(m, k))
}

// ItemWithMeans returns one batch item (m.ItemSize() bytes, in the model's
// datatype and format) whose channel means, as ChannelMeans computes them, are
// means, up to the datatype's precision. Every element of a channel holds the
// mean, except for UINT8, which spreads the rounding over the elements so that
// the mean is exact to 1/(255 × elements per channel). Means are clamped to what
// the datatype can hold.
func ItemWithMeans(m Model, means [3]float64) []byte {
	n := m.itemElements()
	size := elementSize(m.Input.Datatype)
	item := make([]byte, n*size)
	perChannel := n / 3

	// For UINT8: channel c needs a total of totals[c]; element j of the channel
	// holds base+1 while j < extra, base after.
	var base, extra [3]int
	for c := range 3 {
		total := int(math.Round(min(max(means[c], 0), 1) * 255 * float64(perChannel)))
		base[c], extra[c] = total/perChannel, total%perChannel
	}
	channelOf := channelIndexer(m)
	var seen [3]int
	for i := range n {
		c := channelOf(i)
		e := item[i*size : (i+1)*size]
		switch m.Input.Datatype {
		case "FP32":
			binary.LittleEndian.PutUint32(e, math.Float32bits(float32(means[c])))
		case "FP16":
			binary.LittleEndian.PutUint16(e, float16.FromFloat32(float32(means[c])))
		case "UINT8":
			v := base[c]
			if seen[c] < extra[c] {
				v++
			}
			e[0] = byte(v)
		}
		seen[c]++
	}
	return item
}
