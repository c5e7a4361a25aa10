package tritontest

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fish-classifier/fish-classifier/gateway/triton/inferencepb"
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
			v = float64(float16ToFloat32(binary.LittleEndian.Uint16(e)))
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
	if m.Input.Format == inferencepb.ModelInput_FORMAT_NHWC {
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
			binary.LittleEndian.PutUint16(e, float32ToFloat16(float32(means[c])))
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

// float16ToFloat32 decodes an IEEE 754 binary16 value.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant × 2^-24
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// float32ToFloat16 encodes f as IEEE 754 binary16, rounding to nearest even.
func float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp32 := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp32 == 0xff { // infinity or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	exp := exp32 - 127 + 15
	switch {
	case exp >= 0x1f:
		return sign | 0x7c00 // overflow to infinity
	case exp <= 0: // subnormal or zero
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint(14 - exp)
		half := mant >> shift
		rem := mant & (1<<shift - 1)
		halfway := uint32(1) << (shift - 1)
		if rem > halfway || (rem == halfway && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(exp)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // a carry into the exponent is still the right rounding
	}
	return sign | uint16(half)
}
